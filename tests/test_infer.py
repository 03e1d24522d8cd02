"""Inference: padding, self-ensemble TTA, tiling, the submission file and its checks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from hw4lib import infer
from hw4lib.data import DataError
from hw4lib.infer import (
    SubmissionError,
    check_submission,
    dihedral,
    inverse_dihedral,
    list_test_images,
    restore,
    write_submission,
)
from tests.fabricate import rng_image, write_png

# ----------------------------------------------------------------------------------------------------
# tiny models with known behaviour


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class NeedsMultipleOf8(nn.Module):
    """Identity that refuses inputs PromptIR could not take, and records what it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, x.shape
        self.shapes.append(tuple(x.shape))
        return x


class ColumnRamp(nn.Module):
    """Adds a left-to-right ramp 0..1: not equivariant to flips or rotations."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[-1]
        return x + torch.linspace(0.0, 1.0, w, dtype=x.dtype, device=x.device)


class RollRight(nn.Module):
    """Moves every pixel one column to the right (circularly)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, 1, dims=-1)


def local_convnet(seed: int = 0) -> nn.Module:
    """Three 3x3 convolutions: receptive-field radius 3 px, fully local."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.GELU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.GELU(),
        nn.Conv2d(8, 3, 3, padding=1),
    ).eval()


class CountingWrapper(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def tiny_promptir() -> nn.Module:
    from hw4lib.model import build_model

    torch.manual_seed(0)
    return build_model("tiny").eval()


def smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A (1, 3, H, W) image in [0.1, 0.9] with structure at several scales (more natural than white noise)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([torch.sin(6 * xx + c) * torch.cos(4 * yy - c) for c in (0.0, 1.0, 2.0)])
    noise = torch.rand(3, h, w, generator=g) - 0.5
    return (0.5 + 0.3 * base + 0.1 * noise)[None].clamp(0.1, 0.9)


# ----------------------------------------------------------------------------------------------------
# restore: any size, type and layout


@pytest.mark.parametrize(("h", "w"), [(5, 3), (50, 67), (64, 64)])
def test_restore_crops_back_and_the_model_only_sees_multiples_of_8(h, w):
    model = NeedsMultipleOf8()
    x = torch.rand(3, h, w)
    y = restore(model, x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.allclose(y, x, atol=1e-7)
    assert model.shapes == [(1, 3, math.ceil(h / 8) * 8, math.ceil(w / 8) * 8)]


def test_restore_keeps_type_and_layout_of_the_input():
    model = Identity()
    img = rng_image(11, 13)
    out = restore(model, img)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (11, 13, 3)
    assert np.array_equal(out, img)  # /255 then round(*255) is exact
    batch = torch.rand(2, 3, 10, 12)
    assert torch.equal(restore(model, batch), batch)
    as_uint8 = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    assert torch.equal(restore(model, as_uint8), as_uint8)
    gray = rng_image(9, 7, channels=1)
    assert np.array_equal(restore(model, gray), np.repeat(gray[:, :, None], 3, axis=2))
    rgba = rng_image(9, 7, channels=4)
    assert np.array_equal(restore(model, rgba), rgba[:, :, :3])


def test_restore_clamps_and_restores_training_mode():
    class Overshoot(nn.Module):
        def forward(self, x):
            return 3 * x - 1

    model = Overshoot().train()
    x = torch.tensor([0.0, 0.2, 0.5, 0.9]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    y = restore(model, x)
    assert y.min() == 0.0 and y.max() == 1.0
    assert torch.allclose(y[0, 0], torch.tensor([[0.0, 0.0], [0.5, 1.0]]))
    assert model.training


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        restore(Identity(), torch.rand(4, 8, 8))
    with pytest.raises(ValueError, match="tile_overlap"):
        restore(Identity(), torch.rand(3, 8, 8), tile=16, tile_overlap=16)
    with pytest.raises(TypeError):
        restore(Identity(), [[0.0]])


# ----------------------------------------------------------------------------------------------------
# test-time augmentation


def test_dihedral_transforms_are_distinct_and_invertible():
    x = torch.rand(1, 3, 5, 7)
    outs = [dihedral(x, k, f) for k, f in infer.DIHEDRAL]
    assert len(infer.DIHEDRAL) == 8
    assert len({o.numpy().tobytes() for o in outs}) == 8
    for (k, f), o in zip(infer.DIHEDRAL, outs, strict=True):
        assert torch.equal(inverse_dihedral(o, k, f), x)


def test_tta_of_the_identity_is_the_identity():
    x = torch.rand(2, 3, 13, 21)
    assert torch.allclose(restore(Identity(), x, tta=True), x, atol=1e-6)


def test_tta_averages_a_position_dependent_model():
    # The 8 transforms carry the left-to-right ramp onto the four directions (twice each); a ramp and its
    # reverse sum to 1, so the average adds exactly 0.5 everywhere.
    x = torch.rand(1, 3, 16, 24) * 0.4
    plain = restore(ColumnRamp(), x)
    assert torch.allclose(plain[..., 0], x[..., 0]) and not torch.allclose(plain, x + 0.5)
    assert torch.allclose(restore(ColumnRamp(), x, tta=True), x + 0.5, atol=1e-6)


def test_tta_of_a_shift_is_the_mean_of_the_four_shifts():
    x = torch.rand(1, 3, 16, 24)  # multiples of 8: no padding, the circular shift stays circular
    a = x.numpy()
    expected = sum(np.roll(a, s, axis=ax) for s in (1, -1) for ax in (2, 3)) / 4
    got = restore(RollRight(), x, tta=True)
    assert np.allclose(got.numpy(), expected, atol=1e-6)


def test_mirror_tta_averages_the_image_and_its_left_right_mirror_only():
    x = torch.rand(1, 3, 16, 24)
    a = x.numpy()
    # a right shift and, mirrored, a left shift: the mean of the two horizontal shifts, no vertical ones
    expected = (np.roll(a, 1, axis=3) + np.roll(a, -1, axis=3)) / 2
    got = restore(RollRight(), x, tta="hflip")
    assert np.allclose(got.numpy(), expected, atol=1e-6)
    assert torch.allclose(restore(RollRight(), x, tta="x8"), restore(RollRight(), x, tta=True))
    assert infer.tta_transforms(False) == () and len(infer.tta_transforms("x8")) == 8
    with pytest.raises(ValueError, match="hflip"):
        restore(Identity(), x, tta="rot90")


# ----------------------------------------------------------------------------------------------------
# tiling


@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap"), [(70, 90, 32, 16), (64, 40, 30, 12), (33, 100, 24, 16)]
)
def test_tiling_is_exact_for_a_local_model(h, w, tile, overlap):
    model = CountingWrapper(local_convnet())
    x = torch.rand(2, 3, h, w)
    full = restore(model, x)
    model.calls = 0
    tiled = restore(model, x, tile=tile, tile_overlap=overlap, tile_batch=2)
    assert model.calls > 1  # it really ran on tiles
    assert tiled.shape == full.shape
    assert torch.allclose(tiled, full, atol=1e-5), (tiled - full).abs().max()


def test_tiling_without_overlap_shows_seams_for_the_same_model():
    # the same model tiled with overlap 0 is NOT exact: the exactness above comes from the blending window
    model = local_convnet()
    x = torch.rand(1, 3, 64, 64)
    assert (restore(model, x, tile=32, tile_overlap=0) - restore(model, x)).abs().max() > 1e-3


def test_tiling_is_close_for_promptir_tiny():
    # PromptIR's channel attention and prompt pooling see the whole tile, so tiling is close but not exact
    model = tiny_promptir()
    x = smooth_image(96, 112)
    full = restore(model, x)
    tiled = restore(model, x, tile=64, tile_overlap=32)
    diff = (tiled - full).abs()
    assert diff.mean() < 0.01 and diff.max() < 0.1, (diff.mean(), diff.max())


def test_amp_on_cpu_uses_bfloat16_and_stays_close():
    model = local_convnet()
    x = torch.rand(1, 3, 32, 32)
    y32, y16 = restore(model, x), restore(model, x, amp=True)
    assert y16.dtype == torch.float32
    assert (y16 - y32).abs().max() < 0.05


def test_out_of_gpu_memory_falls_back_to_tiles():
    class SmallMemory(nn.Module):
        """A local model that 'runs out of GPU memory' on inputs above ``side`` x ``side`` pixels."""

        def __init__(self, side: int) -> None:
            super().__init__()
            self.inner, self.side = local_convnet(), side

        def forward(self, x):
            if x.shape[-2] * x.shape[-1] > self.side**2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return self.inner(x)

    model = SmallMemory(64)
    x = torch.rand(1, 3, 150, 200)
    with pytest.warns(UserWarning, match="ran 64 px tiles"):
        y = restore(model, x)
    assert torch.allclose(y, restore(model.inner, x), atol=1e-5)  # 512, 256, 128 failed; 64 px tiles worked
    with warnings.catch_warnings(), pytest.raises(torch.cuda.OutOfMemoryError):
        warnings.simplefilter("ignore")
        restore(SmallMemory(32), x)  # not even 64 px tiles fit: the error surfaces


def test_mixed_precision_overflow_is_recomputed_in_float32():
    class OverflowsInHalf(nn.Module):
        def forward(self, x):
            return x + float("inf") if torch.is_autocast_enabled(x.device.type) else x

    x = torch.rand(1, 3, 16, 16)
    with pytest.warns(UserWarning, match="overflowed"):
        y = restore(OverflowsInHalf(), x, amp=True)
    assert torch.equal(y, x)


# ----------------------------------------------------------------------------------------------------
# the submission file


@pytest.fixture
def test_dir(tmp_path):
    """Four test images of different sizes and formats (RGB, grayscale, RGBA, 16-bit): 0, 1, 2, 10.png."""
    folder = tmp_path / "test" / "degraded"
    write_png(folder / "0.png", rng_image(20, 30, seed=0))
    write_png(folder / "1.png", rng_image(17, 9, seed=1, channels=1))
    write_png(folder / "2.png", rng_image(11, 13, seed=2, channels=4))
    write_png(folder / "10.png", np.arange(25 * 19, dtype=np.uint16).reshape(25, 19) * 100)
    (folder / "notes.txt").write_text("not an image")
    return folder


def expected_submission(folder) -> dict[str, np.ndarray]:
    """Built by hand from PIL: what an identity model must produce, in the (3, H, W) uint8 layout."""
    rgb = np.asarray(Image.open(folder / "0.png")).transpose(2, 0, 1)
    gray = np.asarray(Image.open(folder / "1.png"))
    rgba = np.asarray(Image.open(folder / "2.png"))
    deep = np.asarray(Image.open(folder / "10.png")).astype(np.float64)
    deep8 = np.clip(np.round(deep / 257.0), 0, 255).astype(np.uint8)  # 16-bit -> 8-bit
    return {
        "0.png": rgb,
        "1.png": np.stack([gray] * 3),
        "2.png": rgba[:, :, :3].transpose(2, 0, 1),
        "10.png": np.stack([deep8] * 3),
    }


def test_list_test_images_natural_order_and_layouts(test_dir):
    names = [p.name for p in list_test_images(test_dir)]
    assert names == ["0.png", "1.png", "2.png", "10.png"]
    assert [p.name for p in list_test_images(test_dir.parent.parent)] == names  # dataset root
    assert [p.name for p in list_test_images(test_dir.parent)] == names  # test/
    with pytest.raises(DataError, match="does not exist"):
        list_test_images(test_dir / "nope")


def test_write_submission_matches_a_hand_built_dict(test_dir, tmp_path):
    out = write_submission(
        Identity(), test_dir, tmp_path / "pred.npz", png_dir=tmp_path / "png", progress=False
    )
    expected = expected_submission(test_dir)
    with np.load(out) as data:
        got = {k: data[k] for k in data.files}
    assert sorted(got) == sorted(expected)
    for name, arr in expected.items():
        assert got[name].dtype == np.uint8 and got[name].shape == arr.shape, name
        assert np.array_equal(got[name], arr), name
        assert np.array_equal(np.asarray(Image.open(tmp_path / "png" / name)), arr.transpose(1, 2, 0))
    assert check_submission(out, test_dir) == []


def test_write_submission_with_tta_tiles_and_batches(test_dir, tmp_path):
    # two same-size images form a batch of 2; TTA and tiles of an identity model change nothing
    write_png(test_dir / "3.png", rng_image(20, 30, seed=3))
    out = write_submission(
        Identity(),
        test_dir,
        tmp_path / "p.npz",
        tta=True,
        tile=16,
        tile_overlap=8,
        batch_size=2,
        progress=False,
    )
    with np.load(out) as data:
        assert np.array_equal(data["3.png"], rng_image(20, 30, seed=3).transpose(2, 0, 1))
        assert np.array_equal(data["0.png"], expected_submission(test_dir)["0.png"])


def test_write_submission_handles_odd_and_large_images_with_tiles(tmp_path):
    folder = tmp_path / "degraded"
    odd, large = rng_image(250, 333), rng_image(1000, 1500, seed=1)
    write_png(folder / "0.png", odd)
    write_png(folder / "1.png", large)
    model = local_convnet()
    out = write_submission(model, folder, tmp_path / "pred.npz", tile=512, tile_overlap=32, progress=False)
    assert check_submission(out, folder) == []
    with np.load(out) as data:
        assert data["0.png"].shape == (3, 250, 333) and data["1.png"].shape == (3, 1000, 1500)
        untiled = restore(model, large).transpose(2, 0, 1)
        assert np.abs(data["1.png"].astype(int) - untiled).max() <= 1  # exact up to uint8 rounding


def test_write_submission_runs_promptir_on_an_odd_size(tmp_path):
    folder = tmp_path / "degraded"
    write_png(folder / "0.png", rng_image(37, 45))
    out = write_submission(tiny_promptir(), folder, tmp_path / "pred.npz", tta=True, progress=False)
    assert check_submission(out, folder) == []


def test_unreadable_test_image_is_named(test_dir, tmp_path):
    (test_dir / "5.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="5.png"):
        write_submission(Identity(), test_dir, tmp_path / "pred.npz", progress=False)
    assert not (tmp_path / "pred.npz").exists()


def test_submission_is_written_atomically(test_dir, tmp_path, monkeypatch):
    out = tmp_path / "pred.npz"
    out.write_bytes(b"previous submission")

    def crash_mid_write(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(infer.np, "savez_compressed", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        write_submission(Identity(), test_dir, out, progress=False, replace=True)  # not a submission: asked
    assert out.read_bytes() == b"previous submission"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.npz", "test"]  # no temp file left behind
    out.unlink()
    with pytest.raises(KeyboardInterrupt):
        write_submission(Identity(), test_dir, out, progress=False)
    assert not out.exists()


def test_interrupt_during_restoration_writes_nothing(test_dir, tmp_path):
    class DiesOnThird(nn.Module):
        calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return x

    with pytest.raises(KeyboardInterrupt):
        write_submission(DiesOnThird(), test_dir, tmp_path / "pred.npz", progress=False)
    assert not (tmp_path / "pred.npz").exists()


def test_check_submission_catches_each_problem(test_dir, tmp_path):
    good = expected_submission(test_dir)
    assert check_submission(good, test_dir) == []

    def problems(**changes):
        preds = {k: v for k, v in good.items() if changes.get(k, ...) is not None}
        preds.update({k: v for k, v in changes.items() if v is not None})
        return check_submission(preds, test_dir)

    assert problems(**{"2.png": None}) == ["missing 1 key(s): 2.png"]
    assert problems(**{"99.png": good["0.png"]}) == [f"1 extra key(s) not in {test_dir}: 99.png"]
    assert problems(**{"0.png": good["0.png"].astype(np.float32)}) == ["0.png: dtype float32, expected uint8"]
    assert problems(**{"0.png": good["0.png"][0]}) == ["0.png: 2 dimensions (20, 30), expected (3, 20, 30)"]
    assert problems(**{"0.png": good["0.png"].transpose(1, 2, 0)}) == [
        "0.png: shape (20, 30, 3), expected (3, 20, 30)"
    ]
    assert problems(**{"1.png": good["1.png"][:, :-1]}) == ["1.png: shape (3, 16, 9), expected (3, 17, 9)"]

    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"garbage")
    [line] = check_submission(broken, test_dir)
    assert "broken.npz" in line and "not a readable .npz" in line
    assert "no such file" in check_submission(tmp_path / "absent.npz", test_dir)[0]
    with pytest.raises(SubmissionError, match="missing 1 key"):
        check_submission({k: v for k, v in good.items() if k != "2.png"}, test_dir, strict=True)


def test_save_submission_refuses_wrong_arrays_and_names(tmp_path):
    with pytest.raises(ValueError, match=r"\.npz"):
        infer.save_submission({"0.png": np.zeros((3, 4, 4), np.uint8)}, tmp_path / "pred.zip")
    with pytest.raises(SubmissionError, match="0.png"):
        infer.save_submission({"0.png": np.zeros((4, 4, 3), np.uint8)}, tmp_path / "pred.npz")
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------------
# the leaderboard's zip, nothing replaced without asking, folders checked first, large photos, own photos


def test_the_zip_beside_the_submission_holds_pred_npz_at_its_root(test_dir, tmp_path):
    import zipfile

    out = write_submission(Identity(), test_dir, tmp_path / "mine.npz", progress=False)
    archive = tmp_path / "mine.zip"
    with zipfile.ZipFile(archive) as z:
        assert z.namelist() == ["pred.npz"]
    from_zip, from_npz = infer.load_submission(archive), infer.load_submission(out)
    assert from_zip.keys() == from_npz.keys()
    assert all(np.array_equal(from_zip[k], from_npz[k]) for k in from_npz)
    assert check_submission(archive, test_dir) == []
    with zipfile.ZipFile(tmp_path / "wrong.zip", "w") as z:
        z.write(out, "submission/pred.npz")
    problems = check_submission(tmp_path / "wrong.zip", test_dir)
    assert len(problems) == 1 and "pred.npz at its root" in problems[0]


def test_a_submission_is_replaced_only_by_one_for_the_same_images(test_dir, tmp_path):
    out = write_submission(Identity(), test_dir, tmp_path / "pred.npz", progress=False)
    before = out.read_bytes()
    write_submission(Identity(), test_dir, out, progress=False)  # the same test images: a new prediction
    photos = tmp_path / "photos"
    write_png(photos / "holiday.png", rng_image(12, 16, seed=5))
    calls = []

    class Counting(Identity):
        def forward(self, x):
            calls.append(1)
            return x

    with pytest.raises(SubmissionError, match=r"holds a submission for 4 other images .* --force"):
        write_submission(Counting(), photos, out, progress=False)
    assert calls == [] and out.read_bytes() == before  # refused before any work, nothing touched
    write_submission(Identity(), photos, out, progress=False, replace=True)
    assert list(infer.load_submission(out)) == ["holiday.png"]


def test_output_folders_are_checked_before_any_image_is_restored(test_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    calls = []

    class Counting(Identity):
        def forward(self, x):
            calls.append(1)
            return x

    with pytest.raises(PermissionError, match="cannot write into the submission folder"):
        write_submission(Counting(), test_dir, blocker / "pred.npz", progress=False)
    with pytest.raises(PermissionError, match="cannot write into the PNG folder"):
        write_submission(Counting(), test_dir, tmp_path / "pred.npz", png_dir=blocker / "png", progress=False)
    assert calls == [] and not (tmp_path / "pred.npz").exists()


def test_auto_tiles_follow_the_memory_a_forward_would_take(tmp_path):
    from hw4lib.model import build_model

    tiny = build_model("tiny")
    per_pixel = infer.bytes_per_pixel(tiny)
    assert infer.auto_tile(tiny, 256, 256, torch.device("cpu"), budget_gb=1.0) is None  # fits whole
    side = infer.auto_tile(tiny, 4000, 3000, torch.device("cpu"), budget_gb=1.0)
    assert side % 8 == 0 and side * side * per_pixel <= 2**30 < (side + 8) ** 2 * per_pixel
    assert infer.bytes_per_pixel(build_model("full")) > 2.5 * per_pixel  # twice the width, twice the hidden


def test_an_auto_tiled_forward_stays_within_the_budget_with_every_tile_it_batches(monkeypatch):
    """The budget is for one forward: tile_batch tiles go through together (a 12-megapixel photo took 10 GB,
    four 2 GB tiles at a time, before tiles were sized for the batch)."""

    class Recording(torch.nn.Module):
        config = {"dim": 48, "ffn_expansion_factor": 2.66}  # what bytes_per_pixel reads: the full model's

        def __init__(self) -> None:
            super().__init__()
            self.pixels: list[int] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.pixels.append(x.shape[0] * x.shape[-2] * x.shape[-1])
            return x

    monkeypatch.setattr(infer, "TILE_BUDGET_GB", 1.0)
    model = Recording()
    budget = 1.0 * 2**30 / infer.bytes_per_pixel(model)  # pixels one forward may take
    image = torch.rand(3, 1200, 900)
    for tile_batch, images in ((1, 1), (4, 1), (4, 2)):
        model.pixels.clear()
        batch = image.expand(images, -1, -1, -1)
        out = infer.restore(model, batch, tta="none", tile="auto", tile_batch=tile_batch, progress=False)
        assert torch.allclose(out, batch)  # tiled and blended back exactly (the model is the identity)
        assert len(model.pixels) > 1 and max(model.pixels) <= budget, (tile_batch, images)
        assert max(model.pixels) > budget / 2  # and the tiles are as large as the budget allows


def test_bytes_per_pixel_is_the_measured_peak_of_a_whole_image_forward(tmp_path):
    """The estimate behind automatic tiling, against the peak resident memory of a tiny-model forward: never
    below it (tiles sized from it must fit), at most a quarter above (tiles no smaller than they need be).

    Measured as the kernel sees it: the peak resident set reset just before the forward (``clear_refs``) and
    read after it, minus the resident set before; with glibc's mmap threshold fixed, freed tensors leave the
    resident set at once instead of being kept for reuse (a difference of ru_maxrss maxima swung widely from
    run to run)."""
    import os
    import subprocess
    import sys

    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak resident set")
    code = (
        "import torch\n"
        "from hw4lib.model import build_model\n"
        "from hw4lib.infer import bytes_per_pixel\n"
        "def status(key):\n"
        "    with open('/proc/self/status') as f:\n"
        "        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))\n"
        "torch.set_num_threads(1)\n"
        "m = build_model('tiny').eval()\n"
        "x = torch.rand(1, 3, 768, 768)\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "before = status('VmRSS:')\n"
        "with torch.no_grad():\n    m(x)\n"
        "print((status('VmHWM:') - before) / (bytes_per_pixel(m) * 768 * 768))\n"
    )
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    ratio = float(done.stdout.split()[-1])
    assert 0.8 < ratio <= 1.0, ratio  # measured / estimated


def test_own_photos_become_pngs_and_a_preview_and_no_submission(tmp_path):
    photos = tmp_path / "my photos"
    photos.mkdir()
    Image.fromarray(rng_image(30, 40, seed=1)).save(photos / "beach day.JPG")
    Image.fromarray(rng_image(20, 20, seed=2)).save(photos / "cat.jpeg")
    write_png(photos / "street.png", rng_image(16, 24, seed=3))
    out = tmp_path / "restored"
    written = infer.restore_photos(Identity(), photos, out, progress=False)
    assert sorted(p.name for p in written) == ["beach day.png", "cat.png", "street.png"]
    assert sorted(p.name for p in out.iterdir()) == ["beach day.png", "cat.png", "preview.jpg", "street.png"]
    with Image.open(out / "street.png") as png, Image.open(out / "preview.jpg") as preview:
        assert np.array_equal(np.asarray(png), rng_image(16, 24, seed=3))  # a lossless copy of the input
        assert preview.size == (2 * 720, 3 * 480)  # rows 480 px high; the widest: 16x24 -> 480x720, twice
