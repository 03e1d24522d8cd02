"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hw4lib.metrics import PSNR_CAP, psnr, psnr_uint8, ssim


def test_psnr_constant_offset_is_20_db():
    target = torch.rand(2, 3, 8, 8) * 0.8
    assert float(psnr(target + 0.1, target)) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert float(psnr((target + 0.1) * 255, target * 255, data_range=255.0)) == pytest.approx(20.0, abs=1e-4)


def test_psnr_hand_computed_mse_and_chw():
    pred = torch.tensor([[[0.0, 0.5], [1.0, 0.25]]])  # (1, 2, 2) CHW
    target = torch.tensor([[[0.0, 0.0], [0.5, 0.25]]])
    mse = (0.25 + 0.25) / 4  # 0.125
    assert float(psnr(pred, target)) == pytest.approx(10 * math.log10(1 / mse), abs=1e-5)  # 9.0309 dB


def test_psnr_is_mean_of_per_image_values():
    target = torch.zeros(2, 1, 4, 4)
    pred = torch.stack([torch.full((1, 4, 4), 0.1), torch.full((1, 4, 4), 0.01)])
    per_image = psnr(pred, target, reduction="none")
    assert per_image.tolist() == pytest.approx([20.0, 40.0], abs=1e-4)
    assert float(psnr(pred, target)) == pytest.approx(30.0, abs=1e-4)  # not PSNR of the pooled MSE (22.96 dB)


def test_psnr_identical_is_capped_not_inf():
    x = torch.rand(3, 3, 5, 5)
    values = psnr(x, x.clone(), reduction="none")
    assert values.tolist() == [PSNR_CAP] * 3
    mixed = torch.stack([x[0], x[1] + 0.1])
    assert float(psnr(mixed, torch.stack([x[0], x[1]]))) == pytest.approx((PSNR_CAP + 20.0) / 2, abs=1e-3)


def test_psnr_bad_input():
    with pytest.raises(ValueError, match="shape"):
        psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="reduction"):
        psnr(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4), reduction="sum")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        psnr(torch.zeros(4, 4), torch.zeros(4, 4))


def test_psnr_uint8():
    a = np.full((4, 6, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110  # MSE = 100 / 72
    assert psnr_uint8(a, b) == pytest.approx(10 * math.log10(255**2 * 72 / 100), abs=1e-9)
    assert psnr_uint8(a, a) == PSNR_CAP
    with pytest.raises(ValueError, match="uint8"):
        psnr_uint8(a.astype(np.float32), b)
    with pytest.raises(ValueError, match="shape"):
        psnr_uint8(a, b[:2])
    # agrees with the tensor version on the same pixels
    t = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    u = torch.from_numpy(b).permute(2, 0, 1).float() / 255
    assert float(psnr(t, u)) == pytest.approx(psnr_uint8(a, b), abs=1e-4)


def test_ssim_values():
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    # a constant image and its shift: the luminance term alone, (2*mu1*mu2 + C1) / (mu1^2 + mu2^2 + C1)
    a, b = torch.full((1, 1, 16, 16), 0.5), torch.full((1, 1, 16, 16), 0.6)
    c1 = 0.01**2
    assert ssim(a, b).item() == pytest.approx((2 * 0.5 * 0.6 + c1) / (0.25 + 0.36 + c1), abs=1e-5)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    per_image = ssim(noisy, x, reduction="none")
    assert per_image.shape == (2,) and bool((per_image < 0.99).all())
    assert float(ssim(noisy, x)) == pytest.approx(float(per_image.mean()), abs=1e-6)
    with pytest.raises(ValueError, match="window"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    assert ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), win_size=7).shape == ()


def test_ssim_equals_pytorch_msssim_bit_for_bit():
    """The metric is computed here so validation needs no optional package; it must stay pytorch-msssim's."""
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    generator = torch.Generator().manual_seed(0)
    for shape, win in (((2, 3, 64, 48), 11), ((1, 3, 20, 20), 7), ((3, 1, 33, 40), 11)):
        x = torch.rand(shape, generator=generator, dtype=torch.float64)
        y = (x + 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
        ours = ssim(x, y, reduction="none", win_size=win)
        theirs = pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False, win_size=win)
        assert torch.equal(ours, theirs)
