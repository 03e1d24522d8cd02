"""Hand-written autograd kernels for PromptIR's two inner loops: MDTA's transposed attention and GDFN's gate.

``hw4lib.model`` writes both as the paper does (``Attention`` and ``FeedForward`` with ``fast=False``); this
module computes the same maths with less memory traffic, and the model uses it by default. Why it is faster
on CPU, where this project trains:

- nothing of image size is copied: q, k and v stay views of the (B, 3C, H, W) qkv tensor, where the plain code
  rearranges, normalises and multiplies whole copies of them;
- channels-last memory is read and written in place: with channels last, ``(B, C, H, W)`` is a pixel-major
  ``(B, H*W, C)`` matrix, so the matrix products need no transposed copies;
- each backward fills one gradient buffer for its whole input instead of concatenating per-part gradients.

``benchmarks/bench_model.py`` measures the model with these kernels against the official-style module in
``benchmarks/official_promptir.py``; ``tests/test_model.py`` checks that both kernels give the plain code's
outputs and gradients (and pass ``torch.autograd.gradcheck``).

This module knows nothing of the model: it imports torch and einops only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch.autograd.function import once_differentiable

__all__ = ["gated_gelu", "transposed_attention"]


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


def _heads(x: torch.Tensor, part: int, num_heads: int) -> torch.Tensor:
    """Part ``part`` (q, k, v = 0, 1, 2) of a pixel-major (HW, 3C) qkv matrix as a (head, HW, c) view."""
    width = x.shape[-1] // 3
    return rearrange(x[:, part * width : (part + 1) * width], "hw (head c) -> head hw c", head=num_heads)


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

    Same maths as the plain code (F.normalize on q and k, then q @ k^T), written so that nothing of image size
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


# ----------------------------------------------------------------------------------------------------------
# GDFN: gated GELU


class _GatedGelu(torch.autograd.Function):
    """gelu(x1) * x2 for x = cat(x1, x2) along channels; the backward fills one gradient buffer (no cat).

    The gate is copied to dense memory first: in channels-last layout it is the first half of each pixel's
    channels, and torch's erf-based GELU kernels are slower on such strided input than a copy followed by a
    dense GELU (``benchmarks/bench_model.py`` times the whole model).
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
