"""Loss terms against hand-computed values, spec parsing, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from hw4lib.losses import LOSS_TERMS, build_loss, loss_label, parse_spec
from hw4lib.metrics import ssim


def _images(shape=(2, 3, 32, 32), seed=0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 0.8 + 0.1


def test_l1_mse_constant_offset():
    x = _images()
    assert float(build_loss("l1")(x + 0.1, x)) == pytest.approx(0.1, abs=1e-6)
    assert float(build_loss("mse")(x + 0.1, x)) == pytest.approx(0.01, abs=1e-6)
    pred = torch.tensor([0.0, 0.5, 1.0, 0.25]).view(1, 1, 2, 2)
    target = torch.zeros(1, 1, 2, 2)
    assert float(build_loss("mse")(pred, target)) == pytest.approx((0.25 + 1 + 0.0625) / 4)


def test_charbonnier():
    x = _images()
    charb = build_loss("charbonnier")
    assert float(charb(x, x)) == pytest.approx(1e-3, rel=1e-4)  # sqrt(eps^2)
    assert float(charb(x + 0.5, x)) == pytest.approx(math.sqrt(0.25 + 1e-6), rel=1e-5)
    assert float(charb(x + 0.5, x)) == pytest.approx(float(build_loss("l1")(x + 0.5, x)), rel=1e-5)


def test_edge_loss():
    x = _images()
    edge = build_loss("edge")
    assert float(edge(x + 0.2, x)) == pytest.approx(0.0, abs=1e-6)  # constant shift: same gradients
    slope = 0.01
    ramp = (torch.arange(16.0) * slope).view(1, 1, 1, 16).expand(1, 1, 16, 16)  # d/dx = 0.01, d/dy = 0
    assert float(edge(ramp, torch.zeros_like(ramp))) == pytest.approx(
        slope / 2, rel=1e-5
    )  # mean of |gx|, |gy|
    assert float(edge(ramp, ramp.transpose(-1, -2))) == pytest.approx(slope, rel=1e-5)


def test_fft_loss():
    x = _images()
    fft = build_loss("fft")
    assert float(fft(x, x)) == 0.0
    h, w, c = 8, 10, 0.3
    pred, target = torch.full((1, 1, h, w), c), torch.zeros(1, 1, h, w)
    # orthonormal DC bin = c * sqrt(H W); the other bins are 0; mean over H * (W // 2 + 1) bins
    expected = c * math.sqrt(h * w) / (h * (w // 2 + 1))
    assert float(fft(pred, target)) == pytest.approx(expected, rel=1e-5)
    assert float(fft(torch.roll(x, 3, dims=-1), x)) == pytest.approx(
        0.0, abs=1e-5
    )  # blind to circular shifts


def test_ssim_terms_on_64px_crops():
    x = _images((2, 3, 64, 64))
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert float(build_loss("ssim")(x, x)) == pytest.approx(0.0, abs=1e-5)
    assert float(build_loss("l1_ssim")(x, x)) == pytest.approx(0.0, abs=1e-5)
    s = float(ssim(y, x))
    l1 = float((y - x).abs().mean())
    assert float(build_loss("ssim")(y, x)) == pytest.approx(1 - s, abs=1e-4)
    assert float(build_loss("l1_ssim")(y, x)) == pytest.approx(0.84 * (1 - s) + 0.16 * l1, abs=1e-4)
    assert float(build_loss("l1_ssim", alpha=0.5)(y, x)) == pytest.approx(0.5 * (1 - s) + 0.5 * l1, abs=1e-4)
    assert float(build_loss("ssim")(x[..., :32, :32], x[..., :32, :32])) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="at least 11 px"):
        build_loss("ssim")(x[..., :8, :8], y[..., :8, :8])
    with pytest.raises(ValueError, match="alpha"):
        build_loss("l1_ssim", alpha=1.5)


def test_ms_ssim_on_128px_crops_and_clear_error_below():
    x = _images((1, 3, 128, 128))
    loss = build_loss("ms_ssim")
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-5)
    assert 0.0 < float(loss((x + 0.1 * torch.randn_like(x)).clamp(0, 1), x)) < 1.0
    with pytest.raises(ValueError, match="larger than 96 px.*64x64"):
        loss(x[..., :64, :64], x[..., :64, :64])


def test_spec_parsing_and_weights():
    x, y = _images(seed=0), _images(seed=1)
    combo = build_loss(" l1 + 0.1 * edge ")
    assert combo.spec == "l1+0.1*edge" and list(combo.terms) == ["l1", "edge"]
    expected = float(build_loss("l1")(y, x)) + 0.1 * float(build_loss("edge")(y, x))
    assert float(combo(y, x)) == pytest.approx(expected, rel=1e-6)
    assert set(combo.last_values) == {"l1", "edge"}
    assert float(combo.last_values["l1"]) == pytest.approx(float(build_loss("l1")(y, x)))
    assert "spec='l1+0.1*edge'" in repr(combo)
    three = build_loss("charbonnier+0.05*edge+0.1*fft")
    assert three.weights == {"charbonnier": 1.0, "edge": 0.05, "fft": 0.1}
    assert parse_spec("1e-2*FFT+2*l1") == [(0.01, "fft", None), (2.0, "l1", None)]
    assert parse_spec("1e+2*mse+edge") == [(100.0, "mse", None), (1.0, "edge", None)]
    assert parse_spec("mse@snow + 0.5*l1_ssim @ rain") == [(1.0, "mse", "snow"), (0.5, "l1_ssim", "rain")]


@pytest.mark.parametrize(
    "spec", ["l2", "", "l1+", "l1+l1", "0*edge", "-1*l1", "edge*0.1", "l1 edge", "l1@fog", "l1@rain+l1@rain"]
)
def test_bad_spec_lists_known_terms(spec):
    with pytest.raises(ValueError) as err:
        build_loss(spec)
    msg = str(err.value)
    assert "bad loss spec" in msg and all(name in msg for name in LOSS_TERMS)


@pytest.mark.parametrize("name", list(LOSS_TERMS))
def test_gradients_flow(name):
    size = 128 if name == "ms_ssim" else 32
    target = _images((1, 3, size, size), seed=2)
    pred = _images((1, 3, size, size), seed=3).requires_grad_()
    loss = build_loss(name)(pred, target)
    assert loss.ndim == 0 and loss.dtype == torch.float32 and float(loss.detach()) > 0
    loss.backward()
    assert torch.isfinite(pred.grad).all() and float(pred.grad.abs().sum()) > 0


def test_half_precision_inputs_under_autocast():
    x = _images((1, 3, 32, 32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = build_loss("l1+0.1*fft+0.1*ssim")(x.bfloat16(), (x + 0.1).bfloat16())
    assert value.dtype == torch.float32 and torch.isfinite(value)


def test_bad_shapes():
    with pytest.raises(ValueError, match="same"):
        build_loss("l1")(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


def test_loss_labels_for_tables_and_figures():
    from hw4lib.losses import loss_label

    assert [loss_label(s) for s in ("l1", "mse", "l1_ssim")] == ["L1", "MSE", "L1+SSIM"]
    assert loss_label("l1+0.1*edge") == "L1 + 0.1*Edge"
    assert loss_label("charbonnier+0.05*fft") == "Charbonnier + 0.05*FFT"


def test_luma_edge_loss_sees_brightness_edges_not_colour_swaps():
    edge_y = build_loss("edge_y")
    ramp = torch.linspace(0, 1, 16).expand(1, 3, 16, 16).contiguous()  # a grey ramp: luma slope 1/15 per px
    flat = torch.zeros_like(ramp)
    # the Sobel kernels / 8 give the slope itself: |d/dx| = 1/15 on the 14x14 valid area, 0 in y -> mean 1/30
    assert float(edge_y(ramp, flat)) == pytest.approx(1 / 30, rel=1e-5)
    # a red ramp and a blue ramp: the luma sees them by their weights, the per-channel edge loss alike
    red, blue = torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16)
    red[:, 0], blue[:, 2] = ramp[0, 0], ramp[0, 0]
    assert float(edge_y(red, flat)) == pytest.approx(0.299 / 30, rel=1e-4)
    assert float(edge_y(blue, flat)) == pytest.approx(0.114 / 30, rel=1e-4)
    assert float(build_loss("edge")(red, flat)) == pytest.approx(float(build_loss("edge")(blue, flat)))


def test_a_term_restricted_to_a_type_is_its_images_share_of_the_batch_mean():
    x, y = _images((4, 3, 16, 16), seed=0), _images((4, 3, 16, 16), seed=1)
    kinds = ["rain", "snow", "snow", "rain"]
    loss = build_loss("mse@snow+l1@rain")
    per_image = [float(((x[i] - y[i]).square() if k == "snow" else (x[i] - y[i]).abs()).mean())
                 for i, k in enumerate(kinds)]  # fmt: skip
    assert float(loss(x, y, kinds=kinds)) == pytest.approx(sum(per_image) / 4, rel=1e-6)
    # the same with the types as indices (what training passes), and each term logged over its own images
    assert float(loss(x, y, kinds=torch.tensor([0, 1, 1, 0]))) == pytest.approx(sum(per_image) / 4, rel=1e-6)
    assert float(loss.last_values["mse@snow"]) == pytest.approx((per_image[1] + per_image[2]) / 2, rel=1e-6)
    # a batch of one type: the other type's term contributes nothing
    assert float(loss(x[:1], y[:1], kinds=["rain"])) == pytest.approx(per_image[0], rel=1e-6)
    with pytest.raises(ValueError, match="kinds="):
        loss(x, y)
    with pytest.raises(ValueError, match="unknown degradation type"):
        loss(x, y, kinds=["rain", "fog", "snow", "rain"])
    assert build_loss("l1_ssim@rain").spec == "l1_ssim@rain" and not build_loss("l1").needs_kinds


def test_berhu_is_l1_on_small_errors_and_squared_on_large_ones():
    target = torch.zeros(1, 1, 1, 5)
    pred = torch.tensor([0.0, 0.1, 0.2, 0.5, 1.0]).view(1, 1, 1, 5)  # c = 0.2 * 1.0 = 0.2
    c = 0.2
    expected = [0.0, 0.1, 0.2, (0.25 + c * c) / (2 * c), (1.0 + c * c) / (2 * c)]
    assert float(build_loss("berhu")(pred, target)) == pytest.approx(sum(expected) / 5, rel=1e-6)
    assert loss_label("berhu") == "BerHu"


def test_l1_and_edge_losses_need_no_pytorch_msssim(tmp_path):
    """A bare GPU machine may lack pytorch-msssim: only SSIM loss terms import it (the metric is our own)."""
    import subprocess
    import sys

    code = (
        "import sys, torch; sys.modules['pytorch_msssim'] = None\n"
        "from hw4lib.losses import build_loss\n"
        "x = torch.rand(1, 3, 16, 16)\n"
        "print(float(build_loss('l1+0.1*edge_y')(x, x * 0.5)))\n"
        "from hw4lib import metrics, train\n"  # validation scores SSIM without it
        "print(float(metrics.ssim(x, x * 0.5)))\n"
        "try:\n    build_loss('l1_ssim')(x, x)\nexcept ImportError:\n    print('ssim needs it')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ssim needs it"
