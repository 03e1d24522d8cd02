"""PromptIR (Potlapalli et al., "PromptIR: Prompting for All-in-One Blind Image Restoration", NeurIPS 2023).

A Restormer U-Net (MDTA attention + GDFN feed-forward transformer blocks) whose decoder is conditioned on
*prompts*: at each decoder level a prompt generation block mixes ``prompt_len`` learned components with
weights predicted from the features, and a prompt interaction block (transformer block + 1x1 conv) fuses the
prompt with the features.

Module names follow the official code (va1shn9v/PromptIR, ``net/model.py``), so ``state_dict()`` has the
official names and shapes, minus six layers the official module builds but never calls (``DEAD_LAYERS``).
``load_official_checkpoint`` reads the official Lightning checkpoint.

Differences from the official module (none changes the maths for inputs whose sides are multiples of 8):

- any H, W: the input is reflection-padded to a multiple of 8 and the output cropped back;
- faster on CPU (``benchmarks/bench_model.py`` measures it against ``benchmarks/official_promptir.py``):
  channels-last memory layout, the fused LayerNorm kernel, an MDTA that divides q k^T by the outer product
  of the norms instead of normalising q and k and whose backward writes one gradient buffer, a GDFN gate
  likewise, and a prompt that is one small matrix product instead of a batch ``repeat``;
- ``model.last_prompt_weights`` holds the softmax prompt weights of the last forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from torch.autograd.function import once_differentiable

__all__ = [
    "PromptIR",
    "PRESETS",
    "DEAD_LAYERS",
    "CheckpointError",
    "build_model",
    "count_parameters",
    "load_official_checkpoint",
]

# names of the official layers that forward never calls (215,296 parameters; see the architecture notes)
DEAD_LAYERS = (
    "chnl_reduce1.weight",
    "chnl_reduce2.weight",
    "chnl_reduce3.weight",
    "reduce_noise_channel_1.weight",
    "reduce_noise_channel_2.weight",
    "reduce_noise_channel_3.weight",
)
_DEAD_MODULES = frozenset(name.split(".")[0] for name in DEAD_LAYERS)
_MULTIPLE = 8  # three 2x downsamplings


# ----------------------------------------------------------------------------------------------------------
# helpers


def _pad_to_multiple(x: torch.Tensor, multiple: int = _MULTIPLE) -> torch.Tensor:
    """Pad H and W at the bottom/right up to a multiple; reflection where the image is large enough."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"  # reflect needs pad < size
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------------------------------------
# LayerNorm over channels


class WithBiasLayerNorm(nn.Module):
    """LayerNorm over the last axis (channels at each pixel): fused kernel, eps 1e-5 as the official."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, eps=1e-5)


class BiasFreeLayerNorm(nn.Module):
    """Restormer's bias-free variant: x (not x - mean) divided by the standard deviation."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5) * self.weight


class LayerNorm(nn.Module):
    """Normalise (B, C, H, W) over C. The channels-last view is free when the tensor is channels-last."""

    def __init__(self, dim: int, LayerNorm_type: str = "WithBias") -> None:  # noqa: N803 (official spelling)
        super().__init__()
        if LayerNorm_type not in ("WithBias", "BiasFree"):
            raise ValueError(f"LayerNorm_type must be 'WithBias' or 'BiasFree', got {LayerNorm_type!r}")
        self.body = WithBiasLayerNorm(dim) if LayerNorm_type == "WithBias" else BiasFreeLayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(self.body(rearrange(x, "b c h w -> b h w c")), "b h w c -> b c h w")


# ----------------------------------------------------------------------------------------------------------
# MDTA: multi-Dconv head transposed attention (attention across channels, linear in H*W)


def _pixel_major(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C): a view of the same memory when ``x`` is channels-last."""
    return rearrange(x, "b c h w -> b (h w) c")


def _heads(x: torch.Tensor, part: int, num_heads: int) -> torch.Tensor:
    """Part ``part`` (q, k, v = 0, 1, 2) of a pixel-major (HW, 3C) qkv matrix as a (head, HW, c) view."""
    width = x.shape[-1] // 3
    return rearrange(x[:, part * width : (part + 1) * width], "hw (head c) -> head hw c", head=num_heads)


def _column_norms(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """L2 norms over dim 1 of a (B, N, C) tensor, as sums of squares over blocks of rows.

    Over this (outer) axis torch's norm kernel is not vectorised (~10x slower), and squaring all of a large
    tensor at once costs a fresh allocation; blocks of ~4 M elements avoid both.
    """
    b, n, c = x.shape
    rows = max(1, 2**22 // (b * c))
    total = x.new_zeros((b, c), dtype=dtype)
    for start in range(0, n, rows):
        total += x[:, start : start + rows].to(dtype).square().sum(dim=1)
    return total.sqrt()


class _TransposedAttention(torch.autograd.Function):
    """MDTA core on qkv = (B, 3C, H, W): per head, out = softmax(T * cos(q_i, k_j)) @ v over channels.

    Same maths as the official (F.normalize on q and k, then q @ k^T), written so that nothing of image size
    is copied: q k^T is divided by the outer product of the norms, all products read and write channels-last
    memory in place, and the backward fills one (B, 3C, H, W) gradient buffer. The products run in the dtype
    of qkv (half precision under autocast), the small (c, c) maths in at least float32.
    """

    @staticmethod
    def forward(ctx: Any, qkv: torch.Tensor, temperature: torch.Tensor, num_heads: int) -> torch.Tensor:
        b, _, h, w = qkv.shape
        qkv = _channels_last(qkv)
        x = _pixel_major(qkv)  # b (h w) (3 head c)
        width = x.shape[-1] // 3
        acc = torch.promote_types(x.dtype, torch.float32)  # float32 for half-precision qkv
        with torch.autocast(qkv.device.type, enabled=False):
            norms = _column_norms(x[..., : 2 * width], acc)  # b (2 head c): |q_i|, |k_j| over pixels
            inv = norms.clamp_min(1e-12).reciprocal().unflatten(1, (2, num_heads, -1))  # b 2 head c
            scale = temperature.to(acc) * inv[:, 0, :, :, None] * inv[:, 1, :, None, :]  # b head c c
            scores = x.new_empty(scale.shape)  # q_i . k_j
            for i in range(b):
                q, k = _heads(x[i], 0, num_heads), _heads(x[i], 1, num_heads)  # head hw c
                torch.bmm(q.transpose(1, 2), k, out=scores[i])
            attn = torch.softmax(scores.to(acc) * scale, dim=-1)  # b head c c
            attn_x = attn.to(x.dtype)
            out = x.new_empty(b, h * w, width)
            for i in range(b):  # out^T = v^T attn^T, written pixel-major
                out_i = rearrange(out[i], "hw (head c) -> head hw c", head=num_heads)
                torch.bmm(_heads(x[i], 2, num_heads), attn_x[i].transpose(1, 2), out=out_i)
        ctx.num_heads = num_heads
        ctx.save_for_backward(qkv, temperature, norms, scores, scale, attn)
        return rearrange(out, "b (h w) c -> b c h w", h=h)  # channels-last

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        qkv, temperature, norms, scores, scale, attn = ctx.saved_tensors
        n, b = ctx.num_heads, qkv.shape[0]
        x = _pixel_major(qkv)  # b (h w) 3C
        g = _pixel_major(_channels_last(grad_out.to(x.dtype)))  # b (h w) C
        width = x.shape[-1] // 3
        with torch.autocast(qkv.device.type, enabled=False):
            grad_x = torch.empty_like(x)
            grad_attn = x.new_empty(attn.shape)
            attn_x = attn.to(x.dtype)
            for i in range(b):
                g_i = rearrange(g[i], "hw (head c) -> head hw c", head=n)
                torch.bmm(g_i, attn_x[i], out=_heads(grad_x[i], 2, n))  # dv = g attn
                torch.bmm(g_i.transpose(1, 2), _heads(x[i], 2, n), out=grad_attn[i])  # dattn = g^T v
            grad_attn = grad_attn.to(attn.dtype)
            grad_logits = attn * (grad_attn - (grad_attn * attn).sum(-1, keepdim=True))  # softmax backward
            grad_scores = grad_logits * scale  # b head c c
            inv = norms.clamp_min(1e-12).reciprocal().unflatten(1, (2, n, -1))  # b 2 head c
            cosine = scores.to(attn.dtype) * inv[:, 0, :, :, None] * inv[:, 1, :, None, :]
            grad_temperature = (grad_logits * cosine).sum(dim=(0, 2, 3)).view_as(temperature)
            # through the norms: logits = scores * T / (|q_i| |k_j|), and d|q|/dq = q / |q|
            logit_grad = grad_scores * scores.to(attn.dtype)  # b head c c
            inv_sq = torch.where(norms > 1e-12, norms.clamp_min(1e-12).pow(-2), 0.0)  # b 2C
            radial = -torch.cat([logit_grad.sum(-1).flatten(1), logit_grad.sum(-2).flatten(1)], 1) * inv_sq
            torch.mul(x[..., : 2 * width], radial[:, None, :].to(x.dtype), out=grad_x[..., : 2 * width])
            grad_scores = grad_scores.to(x.dtype)
            for i in range(b):  # dq += k dS^T, dk += q dS
                q, k = _heads(x[i], 0, n), _heads(x[i], 1, n)
                _heads(grad_x[i], 0, n).baddbmm_(k, grad_scores[i].transpose(1, 2))
                _heads(grad_x[i], 1, n).baddbmm_(q, grad_scores[i])
        grad_qkv = rearrange(grad_x, "b (h w) c -> b c h w", h=qkv.shape[2])
        return grad_qkv, grad_temperature.to(temperature.dtype), None


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))  # learned softmax scale per head
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv_dwconv(self.qkv(x))  # b (3 head c) h w
        return self.project_out(_TransposedAttention.apply(qkv, self.temperature, self.num_heads))


# ----------------------------------------------------------------------------------------------------------
# GDFN: gated-Dconv feed-forward network


class _GatedGelu(torch.autograd.Function):
    """gelu(x1) * x2 for x = cat(x1, x2) along channels; the backward fills one gradient buffer (no cat).

    The gate is copied to dense memory first: in channels-last layout it is the first half of each pixel's
    channels, and the erf-based GELU kernels are about 3x slower on such strided input than copy + dense GELU.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        gate, value = x.chunk(2, dim=1)
        gelu_gate = F.gelu(gate if gate.is_contiguous() else gate.clone())  # clone: dense, layout of x
        ctx.save_for_backward(x, gelu_gate)
        return gelu_gate * value

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, gelu_gate = ctx.saved_tensors
        gate, value = x.chunk(2, dim=1)
        grad_x = torch.empty_like(x)
        grad_gate, grad_value = grad_x.chunk(2, dim=1)
        torch.mul(grad, gelu_gate, out=grad_value)
        grad_gelu = grad * value
        dense_gate = gate if gate.is_contiguous() else gate.clone()
        torch.ops.aten.gelu_backward.grad_input(grad_gelu, dense_gate, grad_input=grad_gelu)  # in place
        grad_gate.copy_(grad_gelu)
        return grad_x


class FeedForward(nn.Module):
    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(
            hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias
        )
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project_out(_GatedGelu.apply(self.dwconv(self.project_in(x))))


# ----------------------------------------------------------------------------------------------------------
# Transformer block


class TransformerBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_expansion_factor: float,
        bias: bool,
        LayerNorm_type: str,  # noqa: N803
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


# ----------------------------------------------------------------------------------------------------------
# overlapped patch embedding and resizing


class OverlapPatchEmbed(nn.Module):
    """3x3 conv from the image to ``embed_dim`` features."""

    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """(B, C, H, W) -> (B, 2C, H/2, W/2): 3x3 conv to C/2, then pixel-unshuffle."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat // 2, kernel_size=3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """(B, C, H, W) -> (B, C/2, 2H, 2W): 3x3 conv to 2C, then pixel-shuffle."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat * 2, kernel_size=3, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# ----------------------------------------------------------------------------------------------------------
# prompt generation block (PGM): a feature-conditioned mixture of learned prompt components


class PromptGenBlock(nn.Module):
    def __init__(
        self, prompt_dim: int = 128, prompt_len: int = 5, prompt_size: int = 96, lin_dim: int = 192
    ) -> None:
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, kernel_size=3, padding=1, bias=False)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)  # b l
        self.last_weights = weights.detach()
        prompt = torch.einsum("bl,lpxy->bpxy", weights, self.prompt_param[0])  # b p s s
        prompt = F.interpolate(_channels_last(prompt), (h, w), mode="bilinear", align_corners=False)
        return self.conv3x3(prompt)


# ----------------------------------------------------------------------------------------------------------
# PromptIR


class PromptIR(nn.Module):
    """PromptIR restoration network: (B, 3, H, W) in [0, 1] -> (B, 3, H, W), global residual, not clamped.

    Defaults are the paper's (35,376,967 parameters). ``decoder=False`` is our prompt-free ablation (the
    official module cannot run without its prompts): no prompt generation or interaction blocks, and the
    latent leaves through ``reduce_noise_level3`` alone.
    """

    def __init__(
        self,
        *,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,  # level-1 width; levels 2, 3 and the latent have 2, 4 and 8 times as many channels
        num_blocks: Sequence[int] = (4, 6, 6, 8),  # blocks per level (encoder = decoder), latent last
        num_refinement_blocks: int = 4,  # transformer blocks after decoder level 1
        heads: Sequence[int] = (1, 2, 4, 8),  # attention heads per level; prompt interaction uses heads[2]
        ffn_expansion_factor: float = 2.66,  # GDFN hidden width = int(channels * factor)
        bias: bool = False,  # bias in the convolutions
        LayerNorm_type: str = "WithBias",  # noqa: N803 (official spelling) -- or "BiasFree"
        decoder: bool = True,  # prompts on (the official PromptIR); False: prompt-free ablation
        prompt_dims: Sequence[int] = (64, 128, 320),  # prompt channels at decoder levels 1, 2, 3
        prompt_sizes: Sequence[int] = (64, 32, 16),  # learned prompt resolution (resized to the features)
        prompt_len: int = 5,  # prompt components per level
        channels_last: bool = True,  # memory layout; channels-last is 2-3x faster for CPU convolutions
    ) -> None:
        super().__init__()
        num_blocks, heads = tuple(num_blocks), tuple(heads)
        prompt_dims, prompt_sizes = tuple(prompt_dims), tuple(prompt_sizes)
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError(
                f"num_blocks and heads need 4 entries (3 levels + latent), got {num_blocks}, {heads}"
            )
        if len(prompt_dims) != 3 or len(prompt_sizes) != 3:
            raise ValueError(
                f"prompt_dims and prompt_sizes need 3 entries, got {prompt_dims}, {prompt_sizes}"
            )
        if dim % 2:
            raise ValueError(f"dim must be even (downsampling halves it before pixel-unshuffle), got {dim}")
        c1, c2, c3, c4 = dim, 2 * dim, 4 * dim, 8 * dim
        p1, p2, p3 = prompt_dims
        widths = [(c1, heads[0]), (c2, heads[0]), (c2, heads[1]), (c3, heads[2]), (c4, heads[3])]
        if decoder:
            widths += [(c2 + p1, heads[2]), (c3 + p2, heads[2]), (c4 + p3, heads[2])]
        for width, n_heads in widths:
            if width % n_heads:
                raise ValueError(f"{width} channels cannot be split into {n_heads} attention heads")
        self.config: dict[str, Any] = {
            "inp_channels": inp_channels, "out_channels": out_channels, "dim": dim,
            "num_blocks": list(num_blocks), "num_refinement_blocks": num_refinement_blocks,
            "heads": list(heads),
            "ffn_expansion_factor": ffn_expansion_factor, "bias": bias, "LayerNorm_type": LayerNorm_type,
            "decoder": decoder, "prompt_dims": list(prompt_dims), "prompt_sizes": list(prompt_sizes),
            "prompt_len": prompt_len,
        }  # fmt: skip
        self.decoder = decoder
        self.channels_last = channels_last
        self.last_prompt_weights: dict[str, torch.Tensor] = {}

        def block(width: int, n_heads: int) -> TransformerBlock:
            return TransformerBlock(width, n_heads, ffn_expansion_factor, bias, LayerNorm_type)

        def level(width: int, n_heads: int, depth: int) -> nn.Sequential:
            return nn.Sequential(*(block(width, n_heads) for _ in range(depth)))

        # registration order = the official order, so state_dict() lists names as the official checkpoint does
        self.patch_embed = OverlapPatchEmbed(inp_channels, c1, bias)
        if decoder:
            self.prompt1 = PromptGenBlock(p1, prompt_len, prompt_sizes[0], lin_dim=c2)
            self.prompt2 = PromptGenBlock(p2, prompt_len, prompt_sizes[1], lin_dim=c3)
            self.prompt3 = PromptGenBlock(p3, prompt_len, prompt_sizes[2], lin_dim=c4)
        self.encoder_level1 = level(c1, heads[0], num_blocks[0])
        self.down1_2 = Downsample(c1)
        self.encoder_level2 = level(c2, heads[1], num_blocks[1])
        self.down2_3 = Downsample(c2)
        self.encoder_level3 = level(c3, heads[2], num_blocks[2])
        self.down3_4 = Downsample(c3)
        self.latent = level(c4, heads[3], num_blocks[3])

        # prompt interaction at the bottleneck: c4 + p3 -> c3 (the latent leaves at half its width)
        self.up4_3 = Upsample(c3)
        self.reduce_chan_level3 = nn.Conv2d(c2 + c3, c3, kernel_size=1, bias=bias)
        if decoder:
            self.noise_level3 = block(c4 + p3, heads[2])
        self.reduce_noise_level3 = nn.Conv2d(c4 + p3 if decoder else c4, c3, kernel_size=1, bias=bias)
        self.decoder_level3 = level(c3, heads[2], num_blocks[2])

        # prompt interaction at decoder level 2 (after decoder level 3): c3 + p2 -> c3
        self.up3_2 = Upsample(c3)
        self.reduce_chan_level2 = nn.Conv2d(c3, c2, kernel_size=1, bias=bias)
        if decoder:
            self.noise_level2 = block(c3 + p2, heads[2])
            self.reduce_noise_level2 = nn.Conv2d(c3 + p2, c3, kernel_size=1, bias=bias)
        self.decoder_level2 = level(c2, heads[1], num_blocks[1])

        # prompt interaction at decoder level 1 (after decoder level 2): c2 + p1 -> c2
        self.up2_1 = Upsample(c2)
        if decoder:
            self.noise_level1 = block(c2 + p1, heads[2])
            self.reduce_noise_level1 = nn.Conv2d(c2 + p1, c2, kernel_size=1, bias=bias)
        self.decoder_level1 = level(c2, heads[0], num_blocks[0])  # no 1x1 reduction at level 1: c1 + c1 = c2

        self.refinement = level(c2, heads[0], num_refinement_blocks)
        self.output = nn.Conv2d(c2, out_channels, kernel_size=3, padding=1, bias=bias)

        if channels_last:
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    module.weight.data = _channels_last(module.weight.data)

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        if inp_img.dim() != 4 or inp_img.shape[1] != self.config["inp_channels"]:
            raise ValueError(
                f"PromptIR expects a (B, {self.config['inp_channels']}, H, W) batch, "
                f"got shape {tuple(inp_img.shape)}"
            )
        h, w = inp_img.shape[-2:]
        x = _pad_to_multiple(inp_img)
        if self.channels_last:
            x = _channels_last(x)

        out_enc_level1 = self.encoder_level1(self.patch_embed(x))
        out_enc_level2 = self.encoder_level2(self.down1_2(out_enc_level1))
        out_enc_level3 = self.encoder_level3(self.down2_3(out_enc_level2))
        latent = self.latent(self.down3_4(out_enc_level3))
        # prompt interaction: cat(features, prompt) -> transformer block -> 1x1 conv
        if self.decoder:
            latent = self.noise_level3(torch.cat([latent, self.prompt3(latent)], 1))
        latent = self.reduce_noise_level3(latent)

        inp_dec_level3 = self.reduce_chan_level3(torch.cat([self.up4_3(latent), out_enc_level3], 1))
        out_dec_level3 = self.decoder_level3(inp_dec_level3)
        if self.decoder:
            out_dec_level3 = self.noise_level2(torch.cat([out_dec_level3, self.prompt2(out_dec_level3)], 1))
            out_dec_level3 = self.reduce_noise_level2(out_dec_level3)

        inp_dec_level2 = self.reduce_chan_level2(torch.cat([self.up3_2(out_dec_level3), out_enc_level2], 1))
        out_dec_level2 = self.decoder_level2(inp_dec_level2)
        if self.decoder:
            out_dec_level2 = self.noise_level1(torch.cat([out_dec_level2, self.prompt1(out_dec_level2)], 1))
            out_dec_level2 = self.reduce_noise_level1(out_dec_level2)

        inp_dec_level1 = torch.cat([self.up2_1(out_dec_level2), out_enc_level1], 1)
        out_dec_level1 = self.refinement(self.decoder_level1(inp_dec_level1))
        out = self.output(out_dec_level1) + x

        if self.decoder:
            self.last_prompt_weights = {
                "prompt1": self.prompt1.last_weights,
                "prompt2": self.prompt2.last_weights,
                "prompt3": self.prompt3.last_weights,
            }
        return out[..., :h, :w].contiguous()


# ----------------------------------------------------------------------------------------------------------
# presets, parameter count, official checkpoints

PRESETS: dict[str, dict[str, Any]] = {
    # the paper's model (35.4 M parameters)
    "full": {
        "dim": 48, "num_blocks": (4, 6, 6, 8), "num_refinement_blocks": 4, "heads": (1, 2, 4, 8),
        "prompt_dims": (64, 128, 320), "prompt_sizes": (64, 32, 16), "prompt_len": 5,
    },
    # a few minutes of CPU training
    "small": {
        "dim": 24, "num_blocks": (2, 3, 3, 4), "num_refinement_blocks": 2, "heads": (1, 2, 4, 8),
        "prompt_dims": (32, 64, 160), "prompt_sizes": (32, 16, 8), "prompt_len": 5,
    },
    # tests and notebook smoke runs: one 64x64 train step well under a second on CPU
    "tiny": {
        "dim": 16, "num_blocks": (1, 1, 1, 2), "num_refinement_blocks": 1, "heads": (1, 2, 4, 8),
        "prompt_dims": (16, 32, 64), "prompt_sizes": (16, 8, 4), "prompt_len": 5,
    },
}  # fmt: skip


def build_model(preset: str = "tiny", **overrides: Any) -> PromptIR:
    """A PromptIR from a named preset (``PRESETS``), with keyword overrides (e.g. ``prompt_len=3``)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    return PromptIR(**{**PRESETS[preset], **overrides})


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model it should be loaded into."""


def _extract_state_dict(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The tensors of a Lightning / training / plain checkpoint, and our own model config if it has one."""
    config = None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):  # Lightning
        obj = obj["state_dict"]
    elif isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):  # our training checkpoints
        config = obj.get("model_config")
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path}: not a PromptIR checkpoint (expected a Lightning checkpoint with 'state_dict', "
            f"a training checkpoint with 'model', or a state dict of tensors)"
        )
    state = {}
    for name, tensor in obj.items():
        for prefix in ("net.", "module."):  # Lightning attribute / DistributedDataParallel wrapper
            if name.startswith(prefix):
                name = name[len(prefix) :]
        if name.split(".")[0] not in _DEAD_MODULES:
            state[name] = tensor
    return state, dict(config) if isinstance(config, Mapping) else None


def _listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def load_official_checkpoint(path: str | Path, map_location: Any = "cpu", **model_kwargs: Any) -> PromptIR:
    """Load PromptIR weights (official Lightning ``.ckpt``, plain state dict, our ``best.pt``) in eval mode.

    ``model_kwargs`` go to ``build_model`` (``preset="small"`` or ``PromptIR`` keywords; default: the official
    model, or for our own training checkpoints their stored ``model_config``). Names may carry the Lightning
    ``net.`` prefix; the official dead layers are dropped. Any other missing or unexpected name, or a shape
    mismatch, raises ``CheckpointError`` listing them. Only load files you trust: official Lightning
    checkpoints need full unpickling.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # Lightning checkpoints pickle more than tensors (callbacks, loops, hyper-parameters)
        try:
            obj = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as err:
            raise CheckpointError(f"{path}: cannot be read by torch.load ({err})") from err
    state, config = _extract_state_dict(obj, path)
    settings = dict(model_kwargs or config or {})
    preset = settings.pop("preset", "full")
    model = build_model(preset, **settings)

    expected = model.state_dict()
    missing = [n for n in expected if n not in state]
    unexpected = [n for n in state if n not in expected]
    mismatched = [
        f"{n} {tuple(state[n].shape)} vs model {tuple(t.shape)}"
        for n, t in expected.items()
        if n in state and state[n].shape != t.shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing {len(missing)}: {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected {len(unexpected)}: {_listing(unexpected)}")
        if mismatched:
            problems.append(f"wrong shape {len(mismatched)}: {_listing(mismatched)}")
        raise CheckpointError(
            f"{path} does not fit PromptIR({model_kwargs or config or 'official defaults'}): "
            + "; ".join(problems)
            + ". Pass the model settings the checkpoint was trained with "
            "(e.g. dim=, num_blocks=, prompt_dims=)."
        )
    model.load_state_dict(state)
    return model.eval()
