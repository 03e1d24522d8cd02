"""Training losses, built from a short spec string such as ``"l1"`` or ``"charbonnier+0.05*edge+0.1*fft"``.

A spec is a ``+``-separated sum of terms, each optionally weighted as ``WEIGHT*TERM`` (whitespace ignored).
The terms (``LOSS_TERMS``) all compare a prediction with its target, (B, C, H, W) tensors in [0, 1]:

* ``l1``, ``mse``: mean absolute / squared error. PromptIR trains with L1.
* ``charbonnier``: ``mean(sqrt((x - y)^2 + eps^2))``, eps = 1e-3: a smooth L1 (eps for identical images).
* ``ssim``: 1 - SSIM with the 11 px Gaussian window (sigma 1.5): needs patches of at least 11 px, so 64x64
  (and 32x32) crops work.
* ``ms_ssim``: 1 - MS-SSIM, 5 scales with the standard weights but a 7 px window, so that crops larger than
  96 px work (pytorch-msssim needs ``(win - 1) * 16`` px: 160 px with the default 11 px window).
* ``l1_ssim``: ``alpha * (1 - SSIM) + (1 - alpha) * L1``, alpha = 0.84: the mix of Zhao et al., "Loss
  Functions for Image Restoration with Neural Networks" (IEEE TCI 2017). They mix MS-SSIM with a
  Gaussian-weighted L1; single-scale SSIM and plain L1 here, so it works on small crops.
* ``edge``: L1 between Sobel gradients (kernels divided by 8, so a ramp of slope s has gradient s), computed
  without padding so a constant brightness shift costs nothing.
* ``edge_y``: the same on the luma ``Y = 0.299 R + 0.587 G + 0.114 B`` only: the edge term of the best public
  solutions of the course assignment (``L1 + 0.1 x Sobel edge loss on luma``).
* ``fft``: L1 between the amplitudes of the orthonormal 2-D FFTs (``torch.fft.rfft2(..., norm="ortho")``):
  penalises missing or extra texture (rain streaks are a narrow band of orientations); blind to shifts.

Every term runs in float32 with autocast disabled (FFT and SSIM are unreliable in half precision). After each
call the module keeps the unweighted value of each term in ``last_values`` (detached tensors) for logging.
"""

from __future__ import annotations

import contextlib
import re

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim as _ms_ssim
from pytorch_msssim import ssim as _ssim
from torch import nn

__all__ = ["LOSS_TERMS", "build_loss", "CombinedLoss", "parse_spec", "loss_label"]

LOSS_TERMS: dict[str, str] = {
    "l1": "mean absolute error",
    "mse": "mean squared error",
    "charbonnier": "sqrt((x - y)^2 + eps^2), eps 1e-3 (smooth L1)",
    "ssim": "1 - SSIM, 11 px Gaussian window (patches >= 11 px)",
    "ms_ssim": "1 - MS-SSIM, 5 scales, 7 px window (patches > 96 px)",
    "l1_ssim": "alpha * (1 - SSIM) + (1 - alpha) * L1 (Zhao et al. 2017, alpha 0.84)",
    "edge": "L1 between Sobel gradients of each colour channel",
    "edge_y": "L1 between Sobel gradients of the luma (BT.601 Y)",
    "fft": "L1 between orthonormal FFT amplitudes",
}

SSIM_WIN = 11  # Wang et al. (2004)
MS_SSIM_WIN = 7  # 5 scales need (7 - 1) * 16 = 96 px < side
CHARBONNIER_EPS = 1e-3


def _no_autocast(device_type: str) -> contextlib.AbstractContextManager:
    try:
        return torch.autocast(device_type=device_type, enabled=False)
    except RuntimeError:  # a device type autocast does not know
        return contextlib.nullcontext()


class LossTerm(nn.Module):
    """A loss term: checks shapes, turns autocast off, computes in float32."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape or pred.ndim != 4:
            raise ValueError(
                f"{type(self).__name__}: expected pred and target of the same (B, C, H, W) shape, got "
                f"{tuple(pred.shape)} and {tuple(target.shape)}"
            )
        with _no_autocast(pred.device.type):
            return self.compute(pred.float(), target.float())

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class L1(LossTerm):
    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(pred, target)


class MSE(LossTerm):
    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(pred, target)


class Charbonnier(LossTerm):
    def __init__(self, eps: float = CHARBONNIER_EPS) -> None:
        super().__init__()
        self.eps = eps

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target).pow(2) + self.eps**2).mean()

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}"


def _check_size(pred: torch.Tensor, need: int, what: str, strict: bool = False) -> None:
    side = min(pred.shape[-2:])
    if side < need or (strict and side == need):
        relation = "larger than" if strict else "at least"
        raise ValueError(
            f"the {what} loss needs image sides {relation} {need} px, got {pred.shape[-1]}x{pred.shape[-2]}: "
            "use a larger patch_size or another term"
        )


class SSIMLoss(LossTerm):
    """1 - SSIM (11 px Gaussian window, data range 1)."""

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_size(pred, SSIM_WIN, "ssim")
        return 1.0 - _ssim(pred, target, data_range=1.0, win_size=SSIM_WIN)


class MSSSIMLoss(LossTerm):
    """1 - MS-SSIM (5 scales, standard weights, 7 px window: image sides must exceed 96 px)."""

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_size(pred, (MS_SSIM_WIN - 1) * 16, "ms_ssim", strict=True)
        return 1.0 - _ms_ssim(pred, target, data_range=1.0, win_size=MS_SSIM_WIN)


class L1SSIM(LossTerm):
    """``alpha * (1 - SSIM) + (1 - alpha) * L1`` (Zhao et al. 2017 use MS-SSIM; SSIM here for small crops)."""

    def __init__(self, alpha: float = 0.84) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_size(pred, SSIM_WIN, "l1_ssim")
        ssim_value = _ssim(pred, target, data_range=1.0, win_size=SSIM_WIN)
        return self.alpha * (1.0 - ssim_value) + (1.0 - self.alpha) * F.l1_loss(pred, target)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"


class EdgeLoss(LossTerm):
    """L1 between Sobel x/y gradients of each channel (valid convolution, kernels / 8)."""

    def __init__(self) -> None:
        super().__init__()
        gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
        self.register_buffer("kernel", torch.stack([gx, gx.t()]).unsqueeze(1), persistent=False)

    def gradients(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return F.conv2d(x.reshape(b * c, 1, h, w), self.kernel.to(x.dtype))

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_size(pred, 3, "edge")
        return F.l1_loss(self.gradients(pred), self.gradients(target))


class LumaEdgeLoss(EdgeLoss):
    """L1 between Sobel x/y gradients of the luma (ITU-R BT.601 weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_size(pred, 3, "edge_y")
        if pred.shape[1] != 3:
            raise ValueError(f"the edge_y loss needs RGB images (3 channels), got {pred.shape[1]}")
        w = self.luma.to(pred.dtype)
        y_pred, y_target = (x.mul(w).sum(dim=1, keepdim=True) for x in (pred, target))
        return F.l1_loss(self.gradients(y_pred), self.gradients(y_target))


class FFTLoss(LossTerm):
    """L1 between amplitude spectra, ``|rfft2(x, norm="ortho")|``."""

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        amp_pred = torch.fft.rfft2(pred, norm="ortho").abs()
        amp_target = torch.fft.rfft2(target, norm="ortho").abs()
        return F.l1_loss(amp_pred, amp_target)


def _make_term(name: str, alpha: float) -> LossTerm:
    factories = {
        "l1": L1,
        "mse": MSE,
        "charbonnier": Charbonnier,
        "ssim": SSIMLoss,
        "ms_ssim": MSSSIMLoss,
        "l1_ssim": lambda: L1SSIM(alpha),
        "edge": EdgeLoss,
        "edge_y": LumaEdgeLoss,
        "fft": FFTLoss,
    }
    return factories[name]()


_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TERM_RE = re.compile(rf"^(?:(?P<weight>{_NUMBER})\s*\*\s*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


def _spec_error(spec: str, why: str) -> ValueError:
    known = ", ".join(LOSS_TERMS)
    return ValueError(
        f"bad loss spec {spec!r}: {why}. Known terms: {known}. "
        "Write a sum of optionally weighted terms: 'l1', 'l1+0.1*edge', 'charbonnier+0.05*edge+0.1*fft'."
    )


def parse_spec(spec: str) -> list[tuple[float, str]]:
    """``"l1+0.1*edge"`` -> ``[(1.0, "l1"), (0.1, "edge")]``; ``ValueError`` listing the known terms."""
    if not isinstance(spec, str) or not spec.strip():
        raise _spec_error(str(spec), "it is empty")
    terms: list[tuple[float, str]] = []
    for part in re.split(r"(?<![0-9][eE])\+", spec):  # "+" splits terms, except inside "1e+2"
        m = _TERM_RE.match(part.strip())
        if m is None:
            raise _spec_error(spec, f"cannot read the term {part.strip()!r}")
        name = m["name"].lower()
        if name not in LOSS_TERMS:
            raise _spec_error(spec, f"unknown term {name!r}")
        weight = float(m["weight"]) if m["weight"] is not None else 1.0
        if weight <= 0:
            raise _spec_error(spec, f"the weight of {name!r} must be positive")
        if any(name == seen for _, seen in terms):
            raise _spec_error(spec, f"the term {name!r} appears twice")
        terms.append((weight, name))
    return terms


class CombinedLoss(nn.Module):
    """A weighted sum of loss terms; ``spec`` is the normalised spec string, ``terms`` the term modules."""

    def __init__(self, weighted_terms: list[tuple[float, str]], alpha: float = 0.84) -> None:
        super().__init__()
        self.weights = {name: weight for weight, name in weighted_terms}
        self.terms = nn.ModuleDict({name: _make_term(name, alpha) for _, name in weighted_terms})
        self.spec = "+".join(name if w == 1.0 else f"{w:g}*{name}" for w, name in weighted_terms)
        self.last_values: dict[str, torch.Tensor] = {}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        values = {}
        for name, term in self.terms.items():
            value = term(pred, target)
            values[name] = value.detach()
            weighted = self.weights[name] * value
            total = weighted if total is None else total + weighted
        self.last_values = values
        assert total is not None
        return total

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}"


def build_loss(spec: str, alpha: float = 0.84) -> CombinedLoss:
    """The loss for a spec such as ``"l1"`` or ``"l1+0.1*edge"``; ``alpha`` weights SSIM in ``l1_ssim``."""
    return CombinedLoss(parse_spec(spec), alpha=alpha)


_LABELS = {
    "l1": "L1", "l1_ssim": "L1+SSIM", "mse": "MSE", "charbonnier": "Charbonnier", "ssim": "SSIM",
    "ms_ssim": "MS-SSIM", "edge": "Edge", "edge_y": "Edge(Y)", "fft": "FFT",
}  # fmt: skip


def loss_label(spec: str) -> str:
    """Display name of a loss spec: ``l1_ssim`` -> ``L1+SSIM``, ``l1+0.1*edge`` -> ``L1 + 0.1*Edge``."""
    if spec in _LABELS:
        return _LABELS[spec]
    parts = []
    for term in spec.split("+"):
        weight, _, name = term.rpartition("*")
        name = _LABELS.get(name.strip(), name.strip())
        parts.append(f"{weight.strip()}*{name}" if weight else name)
    return " + ".join(parts)
