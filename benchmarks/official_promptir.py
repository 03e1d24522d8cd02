"""Official-style PromptIR: the speed and equivalence baseline for ``hw4lib.model``.

This is NOT shipped code. It re-implements, in our own words, the network of the official PromptIR
repository (va1shn9v/PromptIR, ``net/model.py``) with the same naive operations the official uses, so that
benchmarks and tests can measure our model against it:

- LayerNorm rearranges (B, C, H, W) to (B, H*W, C), computes mean and biased variance by hand and goes back;
- MDTA normalises q and k with ``F.normalize`` and multiplies the full matrices;
- GDFN splits with ``chunk``;
- the prompt block ``repeat``s the prompt components over the batch before the weighted sum;
- no padding: H and W must be multiples of 8;
- the six layers that ``forward`` never calls (``chnl_reduce1..3``, ``reduce_noise_channel_1..3``) are
  present, so ``state_dict()`` holds exactly the official names and shapes
  (``../shared/reference/promptir_state_dict_shapes.json``).

Facts come from ``../shared/reference/promptir_architecture.md``; no code was copied.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

# ----------------------------------------------------------------------------------------------------------
# LayerNorm over channels, done the official way: through a (B, HW, C) view and hand-written moments


class _MomentsLayerNorm(nn.Module):
    def __init__(self, channels: int, with_bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, HW, C)
        var = x.var(-1, keepdim=True, unbiased=False)
        if self.bias is None:  # BiasFree: x itself (not x - mean) is scaled
            return x / torch.sqrt(var + 1e-5) * self.weight
        mean = x.mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5) * self.weight + self.bias


class LayerNorm(nn.Module):
    def __init__(self, channels: int, kind: str) -> None:
        super().__init__()
        self.body = _MomentsLayerNorm(channels, with_bias=kind != "BiasFree")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.body(rearrange(x, "b c h w -> b (h w) c"))
        return rearrange(y, "b (h w) c -> b c h w", h=h, w=w)


# ----------------------------------------------------------------------------------------------------------
# GDFN and MDTA


class FeedForward(nn.Module):
    def __init__(self, channels: int, expansion: float, bias: bool) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class Attention(nn.Module):
    def __init__(self, channels: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=bias)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (rearrange(t, "b (n c) h w -> b n c (h w)", n=self.heads) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = torch.softmax(q @ k.transpose(-2, -1) * self.temperature, dim=-1)
        out = rearrange(attn @ v, "b n c (h w) -> b (n c) h w", h=h, w=w)
        return self.project_out(out)


class TransformerBlock(nn.Module):
    def __init__(self, channels: int, heads: int, expansion: float, bias: bool, norm: str) -> None:
        super().__init__()
        self.norm1 = LayerNorm(channels, norm)
        self.attn = Attention(channels, heads, bias)
        self.norm2 = LayerNorm(channels, norm)
        self.ffn = FeedForward(channels, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


# ----------------------------------------------------------------------------------------------------------
# embedding and resizing


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_channels: int, channels: int, bias: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, channels, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# ----------------------------------------------------------------------------------------------------------
# prompt generation, official way: the components are repeated over the batch


class PromptGenBlock(nn.Module):
    def __init__(self, prompt_dim: int, prompt_len: int, prompt_size: int, lin_dim: int) -> None:
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)  # (B, L)
        components = self.prompt_param.unsqueeze(0).repeat(b, 1, 1, 1, 1, 1).squeeze(1)  # (B, L, P, S, S)
        prompt = (weights[:, :, None, None, None] * components).sum(dim=1)
        prompt = F.interpolate(prompt, (h, w), mode="bilinear")
        return self.conv3x3(prompt)


# ----------------------------------------------------------------------------------------------------------
# the network


class OfficialPromptIR(nn.Module):
    """Official-style PromptIR (``decoder=True``); modules registered in the official order."""

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: tuple[int, ...] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: tuple[int, ...] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: str = "WithBias",  # noqa: N803 (official spelling)
        prompt_dims: tuple[int, int, int] = (64, 128, 320),
        prompt_sizes: tuple[int, int, int] = (64, 32, 16),
        prompt_len: int = 5,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = dim, 2 * dim, 4 * dim, 8 * dim
        p1, p2, p3 = prompt_dims

        def stage(channels: int, n_heads: int, depth: int) -> nn.Sequential:
            return nn.Sequential(
                *(
                    TransformerBlock(channels, n_heads, ffn_expansion_factor, bias, LayerNorm_type)
                    for _ in range(depth)
                )
            )

        def interaction(channels: int) -> TransformerBlock:
            return TransformerBlock(channels, heads[2], ffn_expansion_factor, bias, LayerNorm_type)

        self.patch_embed = OverlapPatchEmbed(inp_channels, c1, bias)
        self.prompt1 = PromptGenBlock(p1, prompt_len, prompt_sizes[0], c2)
        self.prompt2 = PromptGenBlock(p2, prompt_len, prompt_sizes[1], c3)
        self.prompt3 = PromptGenBlock(p3, prompt_len, prompt_sizes[2], c4)
        # dead layers: built by the official module, never called by forward
        self.chnl_reduce1 = nn.Conv2d(64, 64, 1, bias=bias)
        self.chnl_reduce2 = nn.Conv2d(128, 128, 1, bias=bias)
        self.chnl_reduce3 = nn.Conv2d(320, 256, 1, bias=bias)
        self.reduce_noise_channel_1 = nn.Conv2d(c1 + 64, c1, 1, bias=bias)
        self.encoder_level1 = stage(c1, heads[0], num_blocks[0])
        self.down1_2 = Downsample(c1)
        self.reduce_noise_channel_2 = nn.Conv2d(c2 + 128, c2, 1, bias=bias)
        self.encoder_level2 = stage(c2, heads[1], num_blocks[1])
        self.down2_3 = Downsample(c2)
        self.reduce_noise_channel_3 = nn.Conv2d(c3 + 256, c3, 1, bias=bias)
        self.encoder_level3 = stage(c3, heads[2], num_blocks[2])
        self.down3_4 = Downsample(c3)
        self.latent = stage(c4, heads[3], num_blocks[3])
        self.up4_3 = Upsample(c3)  # the latent leaves the prompt interaction at c3 channels
        self.reduce_chan_level3 = nn.Conv2d(c2 + c3, c3, 1, bias=bias)
        self.noise_level3 = interaction(c4 + p3)
        self.reduce_noise_level3 = nn.Conv2d(c4 + p3, c3, 1, bias=bias)
        self.decoder_level3 = stage(c3, heads[2], num_blocks[2])
        self.up3_2 = Upsample(c3)
        self.reduce_chan_level2 = nn.Conv2d(c3, c2, 1, bias=bias)
        self.noise_level2 = interaction(c3 + p2)
        self.reduce_noise_level2 = nn.Conv2d(c3 + p2, c3, 1, bias=bias)
        self.decoder_level2 = stage(c2, heads[1], num_blocks[1])
        self.up2_1 = Upsample(c2)
        self.noise_level1 = interaction(c2 + p1)
        self.reduce_noise_level1 = nn.Conv2d(c2 + p1, c2, 1, bias=bias)
        self.decoder_level1 = stage(c2, heads[0], num_blocks[0])
        self.refinement = stage(c2, heads[0], num_refinement_blocks)
        self.output = nn.Conv2d(c2, out_channels, 3, padding=1, bias=bias)

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        out_enc_level1 = self.encoder_level1(self.patch_embed(inp_img))
        out_enc_level2 = self.encoder_level2(self.down1_2(out_enc_level1))
        out_enc_level3 = self.encoder_level3(self.down2_3(out_enc_level2))
        latent = self.latent(self.down3_4(out_enc_level3))
        latent = torch.cat([latent, self.prompt3(latent)], 1)
        latent = self.reduce_noise_level3(self.noise_level3(latent))

        inp_dec_level3 = torch.cat([self.up4_3(latent), out_enc_level3], 1)
        out_dec_level3 = self.decoder_level3(self.reduce_chan_level3(inp_dec_level3))
        out_dec_level3 = torch.cat([out_dec_level3, self.prompt2(out_dec_level3)], 1)
        out_dec_level3 = self.reduce_noise_level2(self.noise_level2(out_dec_level3))

        inp_dec_level2 = torch.cat([self.up3_2(out_dec_level3), out_enc_level2], 1)
        out_dec_level2 = self.decoder_level2(self.reduce_chan_level2(inp_dec_level2))
        out_dec_level2 = torch.cat([out_dec_level2, self.prompt1(out_dec_level2)], 1)
        out_dec_level2 = self.reduce_noise_level1(self.noise_level1(out_dec_level2))

        inp_dec_level1 = torch.cat([self.up2_1(out_dec_level2), out_enc_level1], 1)
        out_dec_level1 = self.refinement(self.decoder_level1(inp_dec_level1))
        return self.output(out_dec_level1) + inp_img
