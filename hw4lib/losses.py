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
* ``berhu``: the reverse Huber loss (Owen 2007): ``|e|`` where ``|e| <= c``, ``(e^2 + c^2) / 2c`` above, with
  ``c`` a fifth of the batch's largest error (Laina et al., "Deeper Depth Prediction with Fully Convolutional
  Residual Networks", 3DV 2016): L1 on small errors, squared (MSE-like) on large ones, per pixel, without
  knowing the degradation type.

A term may be restricted to one degradation type with ``@KIND``: ``"mse@snow+l1_ssim@rain"`` trains snow pairs
with MSE and rain pairs with L1+SSIM. Each restricted term is averaged over the images of its type and
weighted by their share of the batch, so the loss is the mean over images of each image's own loss; the call
then needs each image's type (``loss(pred, target, kinds=...)``). The course data names every pair's type
(``rain-N.png``), so training knows it; prediction never uses the loss.

Every term runs in float32 with autocast disabled (FFT and SSIM are unreliable in half precision).
``pytorch_msssim`` is imported only when a spec uses an SSIM term. After each
call the module keeps the unweighted value of each term in ``last_values`` (detached tensors) for logging.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hw4lib.data import KINDS
from hw4lib.device import no_autocast

__all__ = ["LOSS_TERMS", "build_loss", "CombinedLoss", "parse_spec", "loss_label", "kind_ids"]

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
    "berhu": "reverse Huber: L1 below c, squared above, c = max|e| / 5 (Owen 2007)",
}

SSIM_WIN = 11  # Wang et al. (2004)
MS_SSIM_WIN = 7  # 5 scales need (7 - 1) * 16 = 96 px < side
CHARBONNIER_EPS = 1e-3
BERHU_FRACTION = 0.2  # c = this share of the batch's largest absolute error (Laina et al. 2016)


class LossTerm(nn.Module):
    """A loss term: checks shapes, turns autocast off, computes in float32.

    ``per_image=True`` returns one value per image (B,), whose mean is the term's value."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, per_image: bool = False) -> torch.Tensor:
        if pred.shape != target.shape or pred.ndim != 4:
            raise ValueError(
                f"{type(self).__name__}: expected pred and target of the same (B, C, H, W) shape, got "
                f"{tuple(pred.shape)} and {tuple(target.shape)}"
            )
        with no_autocast(pred.device.type):
            values = self.compute(pred.float(), target.float())
        return values if per_image else values.mean()

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One value per image (B,)."""
        raise NotImplementedError


def _image_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(dim=1)


def _ssim_module() -> Any:
    import pytorch_msssim  # imported here: only SSIM terms need it (a bare GPU machine may not have it)

    return pytorch_msssim


class L1(LossTerm):
    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _image_mean((pred - target).abs())


class MSE(LossTerm):
    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _image_mean((pred - target).square())


class BerHu(LossTerm):
    """Reverse Huber: ``|e|`` up to ``c``, ``(e^2 + c^2) / 2c`` beyond (continuous, with slope 1 at ``c``);
    ``c = BERHU_FRACTION * max |e|`` over the batch, held constant in the gradient."""

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        error = (pred - target).abs()
        c = (BERHU_FRACTION * error.max()).detach().clamp_min(1e-12)
        return _image_mean(torch.where(error <= c, error, (error.square() + c.square()) / (2 * c)))


class Charbonnier(LossTerm):
    def __init__(self, eps: float = CHARBONNIER_EPS) -> None:
        super().__init__()
        self.eps = eps

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _image_mean(torch.sqrt((pred - target).pow(2) + self.eps**2))

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
        return 1.0 - _ssim_module().ssim(pred, target, data_range=1.0, win_size=SSIM_WIN, size_average=False)


class MSSSIMLoss(LossTerm):
    """1 - MS-SSIM (5 scales, standard weights, 7 px window: image sides must exceed 96 px)."""

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_size(pred, (MS_SSIM_WIN - 1) * 16, "ms_ssim", strict=True)
        msssim = _ssim_module().ms_ssim
        return 1.0 - msssim(pred, target, data_range=1.0, win_size=MS_SSIM_WIN, size_average=False)


class L1SSIM(LossTerm):
    """``alpha * (1 - SSIM) + (1 - alpha) * L1`` (Zhao et al. 2017 use MS-SSIM; SSIM here for small crops)."""

    def __init__(self, alpha: float = 0.84) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_size(pred, SSIM_WIN, "l1_ssim")
        ssim = _ssim_module().ssim(pred, target, data_range=1.0, win_size=SSIM_WIN, size_average=False)
        return self.alpha * (1.0 - ssim) + (1.0 - self.alpha) * _image_mean((pred - target).abs())

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
        return self._per_image(self.gradients(pred), self.gradients(target), pred.shape[0])

    @staticmethod
    def _per_image(grad_pred: torch.Tensor, grad_target: torch.Tensor, b: int) -> torch.Tensor:
        return (grad_pred - grad_target).abs().reshape(b, -1).mean(dim=1)


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
        return self._per_image(self.gradients(y_pred), self.gradients(y_target), pred.shape[0])


class FFTLoss(LossTerm):
    """L1 between amplitude spectra, ``|rfft2(x, norm="ortho")|``."""

    def compute(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        amp_pred = torch.fft.rfft2(pred, norm="ortho").abs()
        amp_target = torch.fft.rfft2(target, norm="ortho").abs()
        return _image_mean((amp_pred - amp_target).abs())


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
        "berhu": BerHu,
    }
    return factories[name]()


_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TERM_RE = re.compile(
    rf"^(?:(?P<weight>{_NUMBER})\s*\*\s*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\s*@\s*(?P<kind>[A-Za-z]+))?$"
)


def _spec_error(spec: str, why: str) -> ValueError:
    known = ", ".join(LOSS_TERMS)
    return ValueError(
        f"bad loss spec {spec!r}: {why}. Known terms: {known}. "
        "Write a sum of optionally weighted terms: 'l1', 'l1+0.1*edge', 'charbonnier+0.05*edge+0.1*fft'; "
        f"a term may apply to one degradation type: 'mse@snow+l1@rain' (types: {', '.join(KINDS)})."
    )


def parse_spec(spec: str) -> list[tuple[float, str, str | None]]:
    """``"l1+0.1*edge@rain"`` -> ``[(1.0, "l1", None), (0.1, "edge", "rain")]``; ``ValueError`` listing the
    known terms."""
    if not isinstance(spec, str) or not spec.strip():
        raise _spec_error(str(spec), "it is empty")
    terms: list[tuple[float, str, str | None]] = []
    for part in re.split(r"(?<![0-9][eE])\+", spec):  # "+" splits terms, except inside "1e+2"
        m = _TERM_RE.match(part.strip())
        if m is None:
            raise _spec_error(spec, f"cannot read the term {part.strip()!r}")
        name, kind = m["name"].lower(), m["kind"].lower() if m["kind"] else None
        if name not in LOSS_TERMS:
            raise _spec_error(spec, f"unknown term {name!r}")
        if kind is not None and kind not in KINDS:
            raise _spec_error(spec, f"unknown degradation type {kind!r} in {part.strip()!r}")
        weight = float(m["weight"]) if m["weight"] is not None else 1.0
        if weight <= 0:
            raise _spec_error(spec, f"the weight of {name!r} must be positive")
        if any(name == seen and kind == seen_kind for _, seen, seen_kind in terms):
            raise _spec_error(spec, f"the term {_key(name, kind)!r} appears twice")
        terms.append((weight, name, kind))
    return terms


def _key(name: str, kind: str | None) -> str:
    return name if kind is None else f"{name}@{kind}"


def kind_ids(kinds: torch.Tensor | Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
    """Each image's degradation type as its index in ``KINDS`` (a LongTensor), from names or indices."""
    if isinstance(kinds, torch.Tensor):
        return kinds.to(device=device, dtype=torch.long)
    unknown = sorted({k for k in kinds if k not in KINDS})
    if unknown:
        raise ValueError(f"unknown degradation type(s) {unknown}; known: {', '.join(KINDS)}")
    return torch.tensor([KINDS.index(k) for k in kinds], dtype=torch.long, device=device)


class CombinedLoss(nn.Module):
    """A weighted sum of loss terms; ``spec`` is the normalised spec string, ``terms`` the term modules
    (keyed ``name`` or ``name@kind``)."""

    def __init__(self, weighted_terms: list[tuple[float, str, str | None]], alpha: float = 0.84) -> None:
        super().__init__()
        self.weights = {_key(name, kind): weight for weight, name, kind in weighted_terms}
        self.kinds = {_key(name, kind): kind for _, name, kind in weighted_terms}
        self.terms = nn.ModuleDict({_key(n, k): _make_term(n, alpha) for _, n, k in weighted_terms})
        self.spec = "+".join(
            _key(name, kind) if w == 1.0 else f"{w:g}*{_key(name, kind)}" for w, name, kind in weighted_terms
        )
        self.last_values: dict[str, torch.Tensor] = {}

    @property
    def needs_kinds(self) -> bool:
        """True when a term applies to one degradation type only: the call needs ``kinds``."""
        return any(kind is not None for kind in self.kinds.values())

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, kinds: torch.Tensor | Sequence[str] | None = None
    ) -> torch.Tensor:
        """The loss of a batch; ``kinds``: each image's type (names or ``KINDS`` indices), needed when a term
        is restricted to a type. Terms of a type count their images' share of the batch (no host sync)."""
        ids = None
        if self.needs_kinds:
            if kinds is None:
                raise ValueError(f"the loss {self.spec!r} applies terms to one degradation type: pass kinds=")
            ids = kind_ids(kinds, pred.device)
        total: torch.Tensor | None = None
        values = {}
        for key, term in self.terms.items():
            kind = self.kinds[key]
            if kind is None:
                value = contribution = term(pred, target)
            else:
                mask = (ids == KINDS.index(kind)).float()
                summed = (term(pred, target, per_image=True) * mask).sum()
                contribution = summed / pred.shape[0]  # this type's share of the batch mean
                value = summed / mask.sum().clamp_min(1.0)  # the term over its images, for logs
            values[key] = value.detach()
            weighted = self.weights[key] * contribution
            total = weighted if total is None else total + weighted
        self.last_values = values
        assert total is not None
        return total

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}"


def build_loss(spec: str, alpha: float = 0.84) -> CombinedLoss:
    """The loss for a spec such as ``"l1"``, ``"l1+0.1*edge"`` or ``"mse@snow+l1_ssim@rain"``; ``alpha``
    weights SSIM in ``l1_ssim``."""
    return CombinedLoss(parse_spec(spec), alpha=alpha)


_LABELS = {
    "l1": "L1", "l1_ssim": "L1+SSIM", "mse": "MSE", "charbonnier": "Charbonnier", "ssim": "SSIM",
    "ms_ssim": "MS-SSIM", "edge": "Edge", "edge_y": "Edge(Y)", "fft": "FFT", "berhu": "BerHu",
}  # fmt: skip


def loss_label(spec: str) -> str:
    """Display name of a loss spec: ``l1_ssim`` -> ``L1+SSIM``, ``l1+0.1*edge`` -> ``L1 + 0.1*Edge``,
    ``mse@snow+l1@rain`` -> ``MSE (snow) + L1 (rain)``."""
    if spec in _LABELS:
        return _LABELS[spec]
    parts = []
    for term in spec.split("+"):
        weight, _, rest = term.rpartition("*")
        name, _, kind = rest.partition("@")
        name = _LABELS.get(name.strip(), name.strip()) + (f" ({kind.strip()})" if kind else "")
        parts.append(f"{weight.strip()}*{name}" if weight else name)
    return " + ".join(parts)
