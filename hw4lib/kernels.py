"""Hand-written autograd kernels for PromptIR's two inner loops: MDTA's transposed attention and GDFN's gate.

``hw4lib.model`` writes both as the paper does (``Attention`` and ``FeedForward`` with ``fast=False``); this
module computes the same maths with less memory traffic, and the model uses it by default:

- channels-last memory is used in place: with channels last, ``(B, C, H, W)`` is a pixel-major ``(B, H*W, C)``
  matrix, so the products read q, k, v and write their results without transposed copies; the one copy of
  image size is the division of q and k by their norms (it replaces qkv in what the backward keeps);
- each product is one ``bmm`` per attention head over the whole batch, so the number of kernel launches does
  not grow with the batch (on a GPU a step stays compute-bound);
- nothing is written with ``out=`` into a strided view while ``torch.compile`` traces, so it compiles whole.

``benchmarks/bench_model.py`` measures the model with these kernels against the official-style module in
``benchmarks/official_promptir.py``; ``tests/test_model.py`` checks that both kernels give the plain code's
outputs and gradients (and pass ``torch.autograd.gradcheck``), also under float16 autocast.

This module knows nothing of the model: it imports torch, einops and the project's autocast switch only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch.autograd.function import once_differentiable

from hw4lib.device import no_autocast

__all__ = ["gated_gelu", "transposed_attention"]

_EPS = 1e-12  # F.normalize's floor on a norm


# ----------------------------------------------------------------------------------------------------------
# public functions


def transposed_attention(qkv: torch.Tensor, temperature: torch.Tensor, num_heads: int) -> torch.Tensor:
    """MDTA's attention across channels: qkv (B, 3C, H, W) -> (B, C, H, W), channels-last.

    Per head, with q, k, v the (c, H*W) parts of qkv: ``softmax(temperature * cos(q_i, k_j)) @ v``, i.e. the
    plain ``F.normalize`` of q and k over pixels, then ``(q @ k^T) * temperature``, softmax, ``@ v``.
    """
    return _TransposedAttention.apply(qkv, temperature, num_heads)


def gated_gelu(x: torch.Tensor) -> torch.Tensor:
    """GDFN's gate: ``gelu(x1) * x2`` for ``x1, x2 = x.chunk(2, dim=1)``; (B, 2C, H, W) -> (B, C, H, W)."""
    return _GatedGelu.apply(x)


# ----------------------------------------------------------------------------------------------------------
# helpers


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _pixel_major(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C): a view of the same memory when ``x`` is channels-last."""
    return rearrange(x, "b c h w -> b (h w) c")


def _column_norms(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """L2 norms over dim 1 of a (B, N, C) tensor, as sums of squares over blocks of rows.

    Over this (outer) axis torch's norm kernel is not vectorised, and squaring all of a large tensor at once
    costs a fresh allocation of its size; blocks of about 4 M elements avoid both.
    """
    b, n, c = x.shape
    rows = max(1, 2**22 // (b * c))
    total = x.new_zeros((b, c), dtype=dtype)
    for start in range(0, n, rows):
        total += x[:, start : start + rows].to(dtype).square().sum(dim=1)
    return total.sqrt()


# ----------------------------------------------------------------------------------------------------------
# MDTA: transposed attention


class _TransposedAttention(torch.autograd.Function):
    """MDTA core on qkv = (B, 3C, H, W): per head, out = softmax(T * cos(q_i, k_j)) @ v over channels.

    - q and k are divided by their norms over pixels *before* their product, as ``F.normalize`` does: the
      product holds cosines (|.| <= 1), which half precision holds (raw q . k of the untrained full model
      exceeds float16's 65,504). The division is computed in float32 and writes q, k and v into one buffer,
      which the backward keeps instead of qkv;
    - every product is one ``bmm`` per head over the whole batch, on strided views of that buffer; results go
      into place by in-place products (``baddbmm_``, ``beta=0``), never by ``out=`` into a strided view;
    - the small (c, c) maths (norms, softmax and their gradients) runs in at least float32.
    """

    @staticmethod
    def forward(ctx: Any, qkv: torch.Tensor, temperature: torch.Tensor, num_heads: int) -> torch.Tensor:
        b, _, h, _ = qkv.shape
        x = _pixel_major(_channels_last(qkv))  # b (h w) (3 head c)
        width = x.shape[-1] // 3
        acc = torch.promote_types(x.dtype, torch.float32)  # float32 for half-precision qkv
        with no_autocast(qkv.device.type):
            norms = _column_norms(x[..., : 2 * width], acc)  # b (2 head c): |q_i|, |k_j| over pixels
            scale = torch.cat([norms.clamp_min(_EPS).reciprocal(), norms.new_ones(b, width)], 1)
            unit = torch.empty_like(x)  # q / |q|, k / |k| and v: computed in acc, stored in the dtype of qkv
            torch.mul(x, scale[:, None], out=unit)
            q, k, v = (_heads(unit, part, num_heads) for part in range(3))
            cosine = torch.stack([torch.bmm(qi.mT, ki) for qi, ki in zip(q, k, strict=True)], 1)  # b head c c
            attn = torch.softmax(cosine.to(acc) * temperature.to(acc), dim=-1)
            attn_x = attn.to(x.dtype)
            out = x.new_empty(b, x.shape[1], width)
            for i, (oi, vi) in enumerate(zip(_heads(out, 0, num_heads, parts=1), v, strict=True)):
                oi.baddbmm_(vi, attn_x[:, i].mT, beta=0)  # out_pi = sum_j attn_ij v_pj
        ctx.num_heads = num_heads
        ctx.save_for_backward(unit, temperature, norms, cosine, attn)  # not qkv: its memory can go
        return rearrange(out, "b (h w) c -> b c h w", h=h)  # channels-last

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        unit, temperature, norms, cosine, attn = ctx.saved_tensors
        n = ctx.num_heads
        width, acc, dtype = unit.shape[-1] // 3, attn.dtype, unit.dtype
        g = _heads(_pixel_major(_channels_last(grad_out.to(dtype))), 0, n, parts=1)  # b (h w) c per head
        q, k, v = (_heads(unit, part, n) for part in range(3))
        with no_autocast(unit.device.type):
            grad_attn = torch.stack([torch.bmm(gi.mT, vi) for gi, vi in zip(g, v, strict=True)], 1).to(acc)
            grad_logits = attn * (grad_attn - (grad_attn * attn).sum(-1, keepdim=True))  # softmax backward
            cos = cosine.to(acc)
            grad_temperature = (grad_logits * cos).sum(dim=(0, 2, 3))
            grad_cos = grad_logits * temperature.to(acc)  # b head c c
            # through the normalisation: d(q / |q|) = (dq^ - q^ (q^ . dq^)) / |q|, where q^ . dq^ are the row
            # sums of dS * S for q (column sums for k); no radial part where a norm was clamped (F.normalize)
            inv = norms.clamp_min(_EPS).reciprocal()  # b 2C
            radial = torch.cat([(grad_cos * cos).sum(-1).flatten(1), (grad_cos * cos).sum(-2).flatten(1)], 1)
            radial = torch.where(norms > _EPS, radial * inv, 0.0)
            inv = inv.unflatten(1, (2, n, -1))  # b 2 head c
            grad_q = (grad_cos * inv[:, 0, :, :, None]).to(dtype)  # dS rows / |q_i|
            grad_k = (grad_cos * inv[:, 1, :, None, :]).to(dtype)  # dS columns / |k_j|
            grad = torch.empty_like(unit)  # b (h w) 3C
            grad[..., : 2 * width].copy_(unit[..., : 2 * width]).mul_(-radial[:, None].to(dtype))
            gq, gk, gv = _heads(grad, 0, n), _heads(grad, 1, n), _heads(grad, 2, n)
            attn_x = attn.to(dtype)
            for i in range(n):
                gq[i].baddbmm_(k[i], grad_q[:, i].mT)  # dq = (k dS^T - q^ r) / |q|
                gk[i].baddbmm_(q[i], grad_k[:, i])  # dk = (q dS - k^ r) / |k|
                gv[i].baddbmm_(g[i], attn_x[:, i], beta=0)  # dv = g attn
        grad_qkv = rearrange(grad, "b (h w) c -> b c h w", h=grad_out.shape[2])
        return grad_qkv, grad_temperature.view_as(temperature).to(temperature.dtype), None


def _heads(x: torch.Tensor, part: int, num_heads: int, parts: int = 3) -> list[torch.Tensor]:
    """Part ``part`` of a pixel-major (B, N, parts * C) tensor as one (B, N, c) view per head."""
    width = x.shape[-1] // parts
    return list(x[..., part * width : (part + 1) * width].chunk(num_heads, dim=-1))


# ----------------------------------------------------------------------------------------------------------
# GDFN: gated GELU


class _GatedGelu(torch.autograd.Function):
    """gelu(x1) * x2 for x = cat(x1, x2) along channels.

    The gate is copied to dense memory first: in channels-last layout it is the first half of each pixel's
    channels, and torch's erf-based GELU kernels are slower on such strided input than a copy followed by a
    dense GELU (``benchmarks/bench_model.py`` times the whole model). Eager backward writes both halves of
    the gradient in place (``out=`` into the halves of one buffer: no concatenation); under
    ``torch.compile``, which cannot trace ``out=`` into strided views, it concatenates, which Inductor fuses.
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
        dense_gate = gate if gate.is_contiguous() else gate.clone()
        grad_gelu = grad * value
        if _compiling():
            return torch.cat([torch.ops.aten.gelu_backward(grad_gelu, dense_gate), grad * gelu_gate], dim=1)
        grad_x = torch.empty_like(x)
        grad_gate, grad_value = grad_x.chunk(2, dim=1)
        torch.mul(grad, gelu_gate, out=grad_value)
        torch.ops.aten.gelu_backward.grad_input(grad_gelu, dense_gate, grad_input=grad_gelu)  # in place
        grad_gate.copy_(grad_gelu)
        return grad_x


def _compiling() -> bool:
    """True while ``torch.compile`` traces (``torch.compiler.is_compiling``; torch < 2.3: its older name)."""
    compiler = getattr(torch, "compiler", None)
    check = getattr(compiler, "is_compiling", None) or torch._dynamo.is_compiling
    return bool(check())
