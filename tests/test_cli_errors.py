"""The command line as a user meets it, in a subprocess: the exit status, the one line printed, nothing lost.

Every user error is one line on stderr with what to do and exit status 1 (``--debug`` shows the traceback);
a refused or failed start leaves nothing behind; a submission is not replaced by one for other images; a
folder of one's own photos is restored without touching a submission.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hw4lib.paths import repo_root
from tests.fabricate import rng_image, tiny_dataset, tiny_run, write_png


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output root with a trained-looking run (runs/R), course-style data and a folder of test images."""
    root = tmp_path_factory.mktemp("home")
    tiny_run(root / "runs", "R")
    course = tiny_dataset(root / "course", per_kind=3)
    (course / "synth.json").unlink(missing_ok=True)  # the course data is not a generated set
    for i in range(3):
        write_png(root / "test" / f"{i}.png", rng_image(24, 32, seed=i))
    return root


def hw4(home: Path, *args: str, timeout: float = 300) -> tuple[int, str, str, float]:
    """``python -m hw4lib ARGS`` with the outputs under ``home``: (exit status, stdout, stderr, seconds)."""
    env = {**os.environ, "HW4_OUTPUT": str(home), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "hw4lib", *args], capture_output=True, text=True, env=env,
                          cwd=repo_root(), timeout=timeout)  # fmt: skip
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - start


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_run_that_would_take_days_on_a_cpu_is_refused_before_anything_is_allocated(home):
    rc, out, err, seconds = hw4(home, "train", "--data-dir", str(home / "course"), "--recipe", "official",
                                "--name", "big", "--device", "cpu")  # fmt: skip
    line = one_line(err)
    assert rc == 1 and "estimated at" in line and "days on this CPU" in line and "train on a GPU" in line
    assert "estimate before allocating" in out and not (home / "runs" / "big").exists()
    assert seconds < 60  # the estimate, not the run: no model, no data in memory


def test_without_a_recipe_a_cpu_run_takes_the_cpu_recipe(home):
    rc, out, err, _ = hw4(home, "train", "--data-dir", str(home / "course"), "--device", "cpu", "--dry-run")
    assert rc == 0 and '"recipe": "cpu"' in out and '"preset": "tiny"' in out and "estimate" in out


def test_prediction_errors_are_one_line_and_lose_nothing(home, tmp_path):
    test = str(home / "test")
    rc, _, err, _ = hw4(home, "predict", "--run", "smok", "--test-dir", test)
    assert rc == 1 and "run 'smok' not found; runs with a checkpoint in runs: R" in one_line(err)

    broken = tmp_path / "broken"
    write_png(broken / "0.png", rng_image(24, 32, seed=0))
    (broken / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    rc, _, err, _ = hw4(home, "predict", "--run", "R", "--test-dir", str(broken),
                        "--out", str(tmp_path / "a.npz"), "--no-progress")  # fmt: skip
    assert rc == 1 and "1.png" in one_line(err) and not (tmp_path / "a.npz").exists()

    cut = tmp_path / "cut.pt"
    cut.write_bytes((home / "runs" / "R" / "best.pt").read_bytes()[:5000])
    rc, _, err, _ = hw4(home, "predict", "--checkpoint", str(cut), "--test-dir", test,
                        "--out", str(tmp_path / "b.npz"))  # fmt: skip
    assert rc == 1 and "cut.pt: not a readable checkpoint" in one_line(err)

    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    rc, _, err, _ = hw4(home, "predict", "--run", "R", "--test-dir", test, "--out", str(blocker / "pred.npz"))
    assert rc == 1 and "cannot write into the submission folder" in one_line(err)
    rc, _, err, _ = hw4(home, "--debug", "predict", "--run", "R", "--test-dir", test,
                        "--out", str(blocker / "pred.npz"))  # fmt: skip
    assert rc == 1 and "Traceback" in err  # --debug: the whole story


def test_a_submission_is_not_replaced_by_one_for_other_images(home, tmp_path):
    rc, out, _, _ = hw4(home, "predict", "--run", "R", "--test-dir", str(home / "test"), "--no-progress")
    pred = home / "runs" / "R" / "pred.npz"
    assert rc == 0 and out.strip().splitlines()[-1].endswith("upload runs/R/pred.zip (pred.npz at its root)")
    before = pred.read_bytes()
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(rng_image(20, 20, seed=9)).save(photos / "beach.jpg")
    rc, _, err, _ = hw4(home, "predict", "--run", "R", "--test-dir", str(photos))
    assert rc == 1 and "holds a submission for 3 other images" in one_line(err) and "--force" in err
    assert pred.read_bytes() == before

    rc, out, _, _ = hw4(home, "restore", str(photos), str(tmp_path / "restored"), "--run", "R",
                        "--no-progress")  # fmt: skip
    assert rc == 0 and "preview.jpg" in out and pred.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "restored").iterdir()) == ["beach.png", "preview.jpg"]


def test_check_data_names_a_corrupt_file_once(home, tmp_path):
    root = tiny_dataset(tmp_path / "ds", per_kind=2)
    bad = root / "train" / "degraded" / "rain-1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    rc, out, _, _ = hw4(home, "check-data", str(root))
    line = next(line for line in out.splitlines() if "rain-1.png" in line)
    assert rc == 1 and line.count("rain-1.png") == 1 and "cannot read the image" in line


def test_train_help_names_the_losses_presets_recipes_and_the_budget_format(home):
    rc, out, _, _ = hw4(home, "train", "--help")
    assert rc == 0
    for word in ("l1_ssim", "berhu", "mse@snow+l1_ssim@rain", "full, small, tiny", "colab", "strong",
                 "--time-budget DURATION: 90s, 45m, 6h", "--dry-run"):  # fmt: skip
        assert word in out, word
    assert np.all([f"--{flag}" in out for flag in ("loss", "preset", "augment", "tensorboard")])
