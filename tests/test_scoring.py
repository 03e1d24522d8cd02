"""Scoring: per-image PSNR/SSIM of restored images against hand-computed values, per-type means, the
restore-and-score path that training, the report and the benchmarks share."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from hw4lib import infer, scoring
from hw4lib.data import DataError, Pair
from hw4lib.infer import SubmissionError
from hw4lib.scoring import compare_scores, score_predictions
from tests.fabricate import rng_image, write_png


def test_score_on_known_images(tmp_path):
    clean = tmp_path / "clean"
    pred = {}
    for i, name in enumerate(["rain-1.png", "rain-2.png", "snow-1.png"]):
        write_png(clean / name, np.full((16, 20, 3), 100, np.uint8))
        pred[name] = np.full((3, 16, 20), 100 + 10 * i, np.uint8)  # off by 0, 10, 20 grey levels
    result = score_predictions(pred, clean)
    by_name = result.per_image.set_index("name")
    assert by_name.loc["rain-1.png", "psnr"] == 100.0  # identical: the metrics' cap
    assert by_name.loc["rain-2.png", "psnr"] == pytest.approx(20 * math.log10(255 / 10), abs=1e-4)  # 28.1308
    assert by_name.loc["snow-1.png", "psnr"] == pytest.approx(20 * math.log10(255 / 20), abs=1e-4)  # 22.1102
    assert by_name.loc["rain-1.png", "ssim"] == pytest.approx(1.0)
    assert list(by_name["kind"]) == ["rain", "rain", "snow"]
    assert result.psnr == pytest.approx((100 + 28.1308 + 22.1102) / 3, abs=1e-3)
    table = result.by_kind
    assert list(table.index) == ["rain", "snow", "all"] and list(table["n"]) == [2, 1, 3]
    assert table.loc["rain", "psnr"] == pytest.approx((100 + 28.1308) / 2, abs=1e-3)
    assert result.to_dict()["by_kind"]["snow"]["n"] == 1
    assert "rain" in str(result)


def test_score_reads_npz_png_folders_and_labels(tmp_path):
    clean, pngs = tmp_path / "test" / "clean", tmp_path / "png"
    arrays = {}
    for i in range(3):
        img = rng_image(12, 14, seed=i)
        write_png(clean / f"{i}.png", img)
        noisy = np.clip(img.astype(int) + 5, 0, 255).astype(np.uint8)
        write_png(pngs / f"{i}.png", noisy)
        arrays[f"{i}.png"] = noisy.transpose(2, 0, 1)
    (tmp_path / "test" / "labels.csv").write_text("name,kind\n0.png,rain\n1.png,snow\n2,snow\n")
    infer.save_submission(arrays, tmp_path / "pred.npz")
    from_npz, from_dir = score_predictions(tmp_path / "pred.npz", clean), score_predictions(pngs, clean)
    assert np.allclose(from_npz.per_image["psnr"], from_dir.per_image["psnr"])
    assert list(from_npz.per_image["kind"]) == ["rain", "snow", "snow"]  # labels.csv found next to clean/
    mse = [
        np.mean((arrays[k].astype(float) - np.asarray(Image.open(clean / k)).transpose(2, 0, 1)) ** 2)
        for k in arrays
    ]
    assert np.allclose(from_npz.per_image["psnr"], [10 * np.log10(255**2 / m) for m in mse], atol=1e-3)
    kinds = score_predictions(arrays, clean, labels={"0": "snow"}).per_image["kind"]
    assert kinds[0] == "snow" and kinds[1:].isna().all()  # a mapping replaces labels.csv; no kind for 1 and 2


def test_score_names_missing_predictions_and_size_mismatch(tmp_path):
    clean = tmp_path / "clean"
    write_png(clean / "0.png", rng_image(8, 8))
    write_png(clean / "1.png", rng_image(8, 8))
    with pytest.raises(DataError, match="1.png"):
        score_predictions({"0.png": np.zeros((3, 8, 8), np.uint8)}, clean)
    with pytest.raises(SubmissionError, match="0.png"):
        wrong = {"0.png": np.zeros((3, 8, 9), np.uint8), "1.png": np.zeros((3, 8, 8), np.uint8)}
        score_predictions(wrong, clean)


def test_subsets_comparison_table_and_grid(tmp_path):
    degraded, clean = tmp_path / "test" / "degraded", tmp_path / "test" / "clean"
    for i in range(3):
        img = rng_image(16, 16, seed=i)
        write_png(clean / f"{i}.png", img)
        write_png(degraded / f"{i}.png", np.clip(img.astype(int) + 10 * (i + 1), 0, 255).astype(np.uint8))
    (tmp_path / "test" / "labels.csv").write_text("name,kind\n0.png,rain\n1.png,snow\n2.png,rain\n")

    preds = infer.predict_dir(lambda x: x, degraded, names=["2.png", "0.png"], progress=False)
    assert list(preds) == ["0.png", "2.png"]  # natural order, only the names asked for
    with pytest.raises(DataError, match="7.png"):
        infer.predict_dir(lambda x: x, degraded, names=["7.png"], progress=False)

    perfect = {f"{i}.png": np.asarray(Image.open(clean / f"{i}.png")).transpose(2, 0, 1) for i in range(3)}
    baseline = score_predictions(degraded, clean, names=["0.png", "2"])
    assert list(baseline.per_image["name"]) == ["0.png", "2.png"]
    perfect_score = score_predictions(perfect, clean, names=["0", "2"])
    table = compare_scores({"input": baseline, "perfect": perfect_score})
    assert list(table.index) == ["input", "perfect"]
    assert list(table.columns) == ["psnr_rain", "psnr", "ssim", "n", "gain_db"]  # both images are rain
    assert table.loc["input", "gain_db"] == 0.0
    assert table.loc["perfect", "gain_db"] == pytest.approx(100.0 - baseline.psnr)


# ----------------------------------------------------------------------------------------------------
# the restore-and-score path


def _pairs(tmp_path, offsets=(10, 20, 40)) -> list[Pair]:
    """Pairs whose degraded image is the clean one plus a known constant offset (no clipping)."""
    pairs = []
    for i, (kind, off) in enumerate(zip(("rain", "snow", "rain"), offsets, strict=True)):
        clean = np.full((16, 24, 3), 100, np.uint8)
        degraded = clean + np.uint8(off)
        name = f"{kind}-{i}"
        pairs.append(Pair(write_png(tmp_path / "d" / f"{name}.png", degraded),
                          write_png(tmp_path / "c" / f"{name}.png", clean), kind, name))
    return pairs


def test_score_model_scores_each_image_against_hand_computed_psnr(tmp_path):
    pairs = _pairs(tmp_path)
    table = scoring.score_model(lambda x: x, scoring.samples_from_pairs(pairs), with_input=True)
    expected = [20 * math.log10(255 / off) for off in (10, 20, 40)]
    assert list(table["name"]) == ["rain-0", "snow-1", "rain-2"]
    assert list(table["kind"]) == ["rain", "snow", "rain"]
    assert table["psnr"].tolist() == pytest.approx(expected, abs=1e-4)
    assert table["input_psnr"].tolist() == pytest.approx(expected, abs=1e-4)
    # a model that removes the offset exactly: capped at 100 dB, SSIM 1
    fixed = scoring.score_model(lambda x: x - 10 / 255, scoring.samples_from_pairs(pairs[:1]), quantize=True)
    assert fixed.loc[0, "psnr"] == 100.0 and fixed.loc[0, "ssim"] == pytest.approx(1.0)


def test_quantized_scores_equal_the_score_of_the_written_submission(tmp_path):
    pairs = _pairs(tmp_path)

    def model(x):  # a non-integer change, so rounding to 8 bit matters
        return x * 0.97 + 0.0123

    table = scoring.score_model(model, scoring.samples_from_pairs(pairs), quantize=True)
    preds = {f"{p.name}.png": infer.restore(model, np.asarray(Image.open(p.degraded))).transpose(2, 0, 1)
             for p in pairs}
    submitted = score_predictions(preds, tmp_path / "c")
    by_name = submitted.per_image.set_index("name")["psnr"]
    assert table["psnr"].tolist() == pytest.approx([by_name[f"{n}.png"] for n in table["name"]], abs=1e-9)
    unrounded = scoring.score_model(model, scoring.samples_from_pairs(pairs))
    assert not np.allclose(unrounded["psnr"], table["psnr"], atol=1e-6)


def test_summarise_means_per_type_and_overall():
    rows = pd.DataFrame(
        {"kind": ["rain", "snow", "rain"], "psnr": [20.0, 30.0, 26.0], "ssim": [0.5, 0.9, 0.7]}
    )
    means = scoring.summarise(rows)
    assert list(means) == ["psnr", "ssim", "psnr_rain", "ssim_rain", "psnr_snow", "ssim_snow"]
    assert means["psnr"] == pytest.approx(76 / 3)
    assert means["psnr_rain"] == 23.0 and means["psnr_snow"] == 30.0
    assert means["ssim_rain"] == pytest.approx(0.6)
    only_rain = scoring.summarise(rows[rows["kind"] == "rain"])
    assert math.isnan(only_rain["psnr_snow"]) and only_rain["psnr"] == 23.0
    with pytest.raises(ValueError, match="fog"):
        scoring.summarise(pd.DataFrame({"kind": ["fog"], "psnr": [1.0], "ssim": [1.0]}))


def test_samples_from_a_dataset_and_from_pairs_are_the_same_tensors(tmp_path):
    from hw4lib.data import PairedDataset

    pairs = _pairs(tmp_path)
    from_disk = list(scoring.samples_from_pairs(pairs, crop=8))
    from_cache = list(scoring.samples_from_dataset(PairedDataset(pairs), range(3), crop=8))
    for a, b in zip(from_disk, from_cache, strict=True):
        assert (a.name, a.kind) == (b.name, b.kind) and a.degraded.shape == (1, 3, 8, 8)
        assert torch.equal(a.degraded, b.degraded) and torch.equal(a.clean, b.clean)
