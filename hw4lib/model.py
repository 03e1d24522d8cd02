"""PromptIR (Potlapalli et al., "PromptIR: Prompting for All-in-One Blind Image Restoration", NeurIPS 2023).

A Restormer U-Net (Zamir et al., CVPR 2022: MDTA attention + GDFN feed-forward transformer blocks) whose
decoder is conditioned on *prompts*: at each decoder level a prompt generation block (PGM) mixes
``prompt_len`` learned components with weights predicted from the features, and a prompt interaction block
(transformer block + 1x1 conv) fuses the prompt with the features.

Module and parameter names follow the official code (va1shn9v/PromptIR, ``net/model.py``), so ``state_dict()``
has the official names, shapes and order, minus six layers the official module builds but never calls
(``DEAD_LAYERS``); ``hw4lib.runs.load_model`` reads the official Lightning checkpoint. Differences from the
official module, none of which changes the maths:

- any H, W: the input is padded to a multiple of 8 (``pad_to_multiple``) and the output cropped back;
- ``fast=True`` (the default) runs MDTA's attention and GDFN's gate through the hand-written kernels of
  ``hw4lib/kernels.py``; ``fast=False`` runs the plain code below, which reads like the paper;
- channels-last memory layout (``channels_last=True``), which CPU convolutions prefer;
- ``model.last_prompt_weights`` holds the softmax prompt weights of the last forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from torch.utils.checkpoint import checkpoint

from hw4lib import kernels

__all__ = [
    "PromptIR",
    "PRESETS",
    "DEAD_LAYERS",
    "PAD_MULTIPLE",
    "build_model",
    "count_parameters",
    "pad_to_multiple",
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
PAD_MULTIPLE = 8  # three 2x downsamplings (pixel-unshuffle): H and W must divide by 2**3


# ----------------------------------------------------------------------------------------------------------
# helpers


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Pad the bottom/right of the last two axes of ``(..., H, W)`` so that H and W divide by ``multiple``.

    Reflect padding (a mirror continues the image without a hard edge) where both pads are smaller than their
    sides, as torch requires; otherwise replicate padding, which works at any size. Crop back with
    ``y[..., :H, :W]``. A tensor whose sides already divide is returned as it is.
    """
    if x.dim() < 2:
        raise ValueError(f"pad_to_multiple needs a (..., H, W) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    batched = x if x.dim() == 4 else x.reshape(-1, *x.shape[-3:])  # F.pad pads (C, H, W) or (B, C, H, W)
    return F.pad(batched, (0, pad_w, 0, pad_h), mode=mode).reshape(*x.shape[:-2], h + pad_h, w + pad_w)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """The same tensor stored pixel by pixel (NHWC); shape and values unchanged."""
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
# MDTA: multi-Dconv head transposed attention
#
# Attention across channels instead of pixels: per head the attention map is (c x c), c = C / heads, so the
# cost grows linearly with H*W (pixel attention's map is (HW x HW)). q, k, v come from a 1x1 conv (mixing
# channels) followed by a 3x3 depthwise conv (local spatial context), hence "multi-Dconv".


class Attention(nn.Module):
    """MDTA: X + W_p Attention(Q, K, V), Attention = V Softmax(K Q / alpha); the residual is in the block.

    ``temperature`` is 1 / alpha, learned per head (the softmax logits are cosines times it).
    """

    def __init__(self, dim: int, num_heads: int, bias: bool, *, fast: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.fast = fast  # hw4lib.kernels.transposed_attention (same maths) instead of the plain code
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))  # 1 / alpha: softmax scale per head
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        qkv = self.qkv_dwconv(self.qkv(x))  # b (3 head c) h w
        if self.fast:
            return self.project_out(kernels.transposed_attention(qkv, self.temperature, self.num_heads))

        q, k, v = qkv.chunk(3, dim=1)
        q = rearrange(q, "b (head c) h w -> b head c (h w)", head=self.num_heads)
        k = rearrange(k, "b (head c) h w -> b head c (h w)", head=self.num_heads)
        v = rearrange(v, "b (head c) h w -> b head c (h w)", head=self.num_heads)

        q = F.normalize(q, dim=-1)  # unit length over pixels: q @ k^T holds cosines
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature  # b head c c
        attn = attn.softmax(dim=-1)

        out = attn @ v  # b head c (h w)
        out = rearrange(out, "b head c (h w) -> b (head c) h w", head=self.num_heads, h=h, w=w)
        return self.project_out(out)


# ----------------------------------------------------------------------------------------------------------
# GDFN: gated-Dconv feed-forward network
#
# Two parallel paths (1x1 conv + 3x3 depthwise conv each, computed as one conv of twice the width); the GELU
# of one path gates the other element-wise, so the network controls which features flow on.


class FeedForward(nn.Module):
    """GDFN: X + W_p0 Gating(X), Gating = gelu(W_d1 W_p1 LN(X)) * W_d2 W_p2 LN(X); residual in the block."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool, *, fast: bool = True) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.fast = fast  # hw4lib.kernels.gated_gelu (same maths) instead of the plain code
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(
            hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias
        )
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dwconv(self.project_in(x))  # b (2 hidden) h w
        if self.fast:
            return self.project_out(kernels.gated_gelu(x))

        x1, x2 = x.chunk(2, dim=1)
        x = F.gelu(x1) * x2  # the gate
        return self.project_out(x)


# ----------------------------------------------------------------------------------------------------------
# Transformer block


class TransformerBlock(nn.Module):
    """Pre-norm residual block: x + MDTA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_expansion_factor: float,
        bias: bool,
        LayerNorm_type: str,  # noqa: N803
        *,
        fast: bool = True,  # hand-written kernels for MDTA and GDFN (hw4lib/kernels.py)
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = Attention(dim, num_heads, bias, fast=fast)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias, fast=fast)
        self.checkpointing = False  # PromptIR(checkpointing=True): recompute this block in the backward pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            # keep only the block's input; its activations are recomputed when the gradient needs them
            return checkpoint(self._residuals, x, use_reentrant=False)
        return self._residuals(x)

    def _residuals(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


# ----------------------------------------------------------------------------------------------------------
# overlapped patch embedding and resizing


class OverlapPatchEmbed(nn.Module):
    """3x3 conv from the image to ``embed_dim`` features (patches of 3x3 pixels that overlap)."""

    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """(B, C, H, W) -> (B, 2C, H/2, W/2): 3x3 conv to C/2, then pixel-unshuffle (2x2 pixels -> 4 channels)."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat // 2, kernel_size=3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """(B, C, H, W) -> (B, C/2, 2H, 2W): 3x3 conv to 2C, then pixel-shuffle (4 channels -> 2x2 pixels)."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat * 2, kernel_size=3, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# ----------------------------------------------------------------------------------------------------------
# prompts: the prompt generation module (PGM) and the prompt interaction module (PIM)
#
# PGM: w = Softmax(Linear(GAP(F))) weighs the L learned prompt components P_c; P = Conv3x3(sum_c w_c P_c),
# resized to the feature's H x W before the conv. The weights depend on the image, so the prompt can tell
# the degradations apart (rain or snow) without being told.
# PIM: cat(F, P) along channels -> transformer block -> 1x1 conv back to the decoder's width. The official
# code has no module for it: its parts are ``noise_level{1,2,3}`` and ``reduce_noise_level{1,2,3}`` of
# PromptIR, combined in PromptIR.forward.


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
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)  # b l: GAP, linear, softmax
        self.last_weights = weights.detach()
        # sum_c w_c P_c for each image, as one product (the official repeats the components per image)
        prompt = torch.einsum("bl,lpxy->bpxy", weights, self.prompt_param[0])  # b p s s
        prompt = F.interpolate(_channels_last(prompt), (h, w), mode="bilinear", align_corners=False)
        return self.conv3x3(prompt)


# ----------------------------------------------------------------------------------------------------------
# PromptIR


class PromptIR(nn.Module):
    """PromptIR restoration network: (B, 3, H, W) in [0, 1] -> (B, 3, H, W), global residual, not clamped.

    Defaults are the paper's (35,376,967 parameters). ``decoder=False`` is our prompt-free ablation (the
    official module cannot run without its prompts): no prompt generation or interaction blocks, and the
    latent leaves through ``reduce_noise_level3`` alone. ``channels_last`` and ``fast`` choose how the same
    maths is computed, not the architecture: they are not part of ``model.config``.
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
        channels_last: bool = True,  # memory layout: CPU convolutions are faster channels-last
        fast: bool = True,  # MDTA and GDFN through hw4lib/kernels.py; False: the plain code (same maths)
        checkpointing: bool = False,  # activation checkpointing of every transformer block while training
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
        self.fast = fast
        self.last_prompt_weights: dict[str, torch.Tensor] = {}

        def block(width: int, n_heads: int) -> TransformerBlock:
            return TransformerBlock(width, n_heads, ffn_expansion_factor, bias, LayerNorm_type, fast=fast)

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
        self.set_checkpointing(checkpointing)

    def set_checkpointing(self, on: bool = True) -> PromptIR:
        """Activation checkpointing of the transformer blocks in training: each block keeps only its input and
        recomputes the rest during the backward pass (less memory for a second forward). Returns ``self``."""
        for module in self.modules():
            if isinstance(module, TransformerBlock):
                module.checkpointing = bool(on)
        return self

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        if inp_img.dim() != 4 or inp_img.shape[1] != self.config["inp_channels"]:
            raise ValueError(
                f"PromptIR expects a (B, {self.config['inp_channels']}, H, W) batch, "
                f"got shape {tuple(inp_img.shape)}"
            )
        h, w = inp_img.shape[-2:]
        x = pad_to_multiple(inp_img)
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
        out = self.output(out_dec_level1) + x  # global residual: the network predicts the correction

        if self.decoder:
            self.last_prompt_weights = {
                "prompt1": self.prompt1.last_weights,
                "prompt2": self.prompt2.last_weights,
                "prompt3": self.prompt3.last_weights,
            }
        return out[..., :h, :w].contiguous()


# ----------------------------------------------------------------------------------------------------------
# presets and parameter count

PRESETS: dict[str, dict[str, Any]] = {
    # the paper's model (35.4 M parameters)
    "full": {
        "dim": 48, "num_blocks": (4, 6, 6, 8), "num_refinement_blocks": 4, "heads": (1, 2, 4, 8),
        "prompt_dims": (64, 128, 320), "prompt_sizes": (64, 32, 16), "prompt_len": 5,
    },
    # short CPU training runs
    "small": {
        "dim": 24, "num_blocks": (2, 3, 3, 4), "num_refinement_blocks": 2, "heads": (1, 2, 4, 8),
        "prompt_dims": (32, 64, 160), "prompt_sizes": (32, 16, 8), "prompt_len": 5,
    },
    # tests and notebook smoke runs: the fewest blocks that still have every part
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
