"""The run folder: reading with clear messages for missing or unfinished runs, names, globs, model loading."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from hw4lib import runs
from hw4lib.model import PRESETS, build_model
from hw4lib.runs import RunError, load_run, load_runs
from tests.fabricate import make_run, set_config, tiny_run


def test_glob_loads_runs_in_sorted_order(three_runs: list[Path]) -> None:
    runs = load_runs(str(three_runs[0].parent / "demo-*"))
    assert [r.name for r in runs] == ["demo-l1", "demo-l1_ssim", "demo-mse"]
    assert runs[0].per_image is not None and len(runs[0].per_image) == 4


def test_missing_run_folder_names_it_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"demo-l1 does not exist.*make demo"):
        load_run(tmp_path / "demo-l1")


def test_glob_without_matches_says_how_to_make_runs(tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"no run folders match .*make demo"):
        load_runs(str(tmp_path / "nothing-*"))


def test_unfinished_run_is_reported(tmp_path: Path) -> None:
    run = make_run(tmp_path, "demo-mse", "mse", 25.0, 24.0, 26.0)
    (run / "metrics.json").unlink()
    with pytest.raises(
        RunError, match=r"demo-mse has history.csv but no metrics.json \(the run did not finish\)"
    ):
        load_run(run)


def test_run_marked_incomplete_is_reported(tmp_path: Path) -> None:
    run = make_run(tmp_path, "demo-mse", "mse", 25.0, 24.0, 26.0)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update(complete=False, epochs_done=2)
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunError, match="stopped after epoch 2"):
        load_run(run)
    assert "stopped after epoch 2" in runs.unfinished_reason(run)


def test_metrics_missing_keys_are_listed(tmp_path: Path) -> None:
    run = make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["best_val_psnr_snow"], metrics["params"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunError, match=r"metrics.json lacks best_val_psnr_snow, params"):
        load_run(run)


def test_corrupt_metrics_and_missing_history(tmp_path: Path) -> None:
    run = make_run(tmp_path, "demo-l1", "l1", 25.0, 24.0, 26.0)
    (run / "history.csv").unlink()
    with pytest.raises(RunError, match="has no history.csv"):
        load_run(run)
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(RunError, match="not valid JSON"):
        load_run(run)


def test_glob_skips_folders_that_are_not_runs(three_runs: list[Path]) -> None:
    (three_runs[0].parent / "bench").mkdir()
    (three_runs[0].parent / "bench" / "bench-rain100l-tiny.json").write_text("{}")
    unfinished = three_runs[0].parent / "demo-zz"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    with pytest.raises(RunError, match="demo-zz has no metrics.json"):
        load_runs(str(three_runs[0].parent / "*"))
    (unfinished / "config.json").unlink()
    assert [r.name for r in load_runs(str(three_runs[0].parent / "*"))] == [
        "demo-l1",
        "demo-l1_ssim",
        "demo-mse",
    ]
def test_variant_names_are_file_safe() -> None:
    assert runs.variant_name("demo", "l1_ssim") == "demo-l1_ssim"
    assert runs.variant_name("gpu", "l1+0.1*edge") == "gpu-l1_0.1_edge"  # one naming for every run
    assert runs.safe_name("train-l1+0.1*edge") == "train-l1_0.1_edge"


# ------------------------------------------------------------------------------------------- loading models


def test_load_model_from_a_run_folder_and_an_official_format_checkpoint(tmp_path, monkeypatch):
    run, model = tiny_run(tmp_path / "runs")
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(x)
        for checkpoint in ("best", "last", run / "best.pt"):
            loaded = runs.load_model(run, checkpoint)
            assert not loaded.training
            assert torch.equal(loaded(x), reference), checkpoint
        # the official release: weights under state_dict with a "net." prefix
        lightning = tmp_path / "model.ckpt"
        weights = {f"net.{k}": v for k, v in model.state_dict().items()}
        torch.save({"state_dict": weights, "epoch": 0}, lightning)
        assert torch.equal(runs.load_model(lightning, preset="tiny")(x), reference)
        monkeypatch.setenv("HW4_OUTPUT", str(tmp_path))  # a bare name is a folder under runs/
        assert torch.equal(runs.load_model("tiny-run", "last")(x), reference)
        monkeypatch.chdir(run)  # a relative file name from the current folder, without a run
        assert torch.equal(runs.load_model("last.pt")(x), reference)
    with pytest.raises(FileNotFoundError, match="nope"):
        runs.load_model(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"checkpoint other\.pt of .*tiny-run not found"):
        runs.load_model(run, "other.pt")


def test_training_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.pt does not exist; train first"):
        runs.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"cut\.pt: not a readable checkpoint"):
        runs.load_checkpoint(tmp_path / "cut.pt")
    torch.save({"state_dict": {}}, tmp_path / "lightning.pt")
    with pytest.raises(ValueError, match="needs keys 'model' and 'model_config'"):
        runs.load_checkpoint(tmp_path / "lightning.pt")


def test_plain_state_dict_without_prefix_loads(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    x = torch.rand(1, 3, 32, 32)
    for settings in (PRESETS["tiny"], {"preset": "tiny"}):
        loaded = runs.load_weights(tmp_path / "plain.pt", **settings)
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))


def test_training_checkpoint_loads_with_its_model_config(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny", prompt_len=3).eval()
    checkpoint = {
        "model": model.state_dict(),
        "model_config": {"preset": "tiny", "prompt_len": 3},
        "epoch": 2,
    }
    torch.save(checkpoint, tmp_path / "best.pt")
    loaded = runs.load_weights(tmp_path / "best.pt")  # settings come from the checkpoint
    assert loaded.config == model.config
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize(
    "damage, named",
    [
        ("missing", "output.weight"),
        ("unexpected", "bogus.weight"),
        ("shape", "patch_embed.proj.weight"),
    ],
)
def test_broken_checkpoint_names_the_problem(tmp_path, damage, named):
    state = {f"net.{n}": t for n, t in build_model("tiny").state_dict().items()}
    if damage == "missing":
        del state["net.output.weight"]
    elif damage == "unexpected":
        state["net.bogus.weight"] = torch.zeros(3)
    else:
        state["net.patch_embed.proj.weight"] = torch.zeros(16, 3, 5, 5)
    path = tmp_path / "broken.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(runs.CheckpointError, match=damage if damage != "shape" else "wrong shape") as info:
        runs.load_weights(path, **PRESETS["tiny"])
    assert named in str(info.value) and "broken.ckpt" in str(info.value)


def test_full_settings_reject_a_tiny_checkpoint(tmp_path):
    torch.save(build_model("tiny").state_dict(), tmp_path / "tiny.pt")
    with pytest.raises(runs.CheckpointError, match="wrong shape .*Pass the model settings"):
        runs.load_weights(tmp_path / "tiny.pt")


def test_not_a_checkpoint_raises(tmp_path):
    torch.save({"weights": [1, 2, 3]}, tmp_path / "odd.pt")
    with pytest.raises(runs.CheckpointError, match="odd.pt: not a PromptIR checkpoint"):
        runs.load_weights(tmp_path / "odd.pt")
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        runs.load_weights(tmp_path / "nowhere.ckpt")


# ---- any image size, training, prompts --------------------------------------------------------------------


def test_prediction_tta_follows_what_the_run_trained_on(tmp_path):
    rotated = make_run(tmp_path, "rot", "l1", 25.0, 24.0, 26.0)
    set_config(rotated, augment=True)
    straight = make_run(tmp_path, "straight", "l1", 25.0, 24.0, 26.0)
    set_config(straight, augment=False)
    assert runs.prediction_tta(rotated) == "x8"  # it saw every orientation: the 8-way ensemble
    assert runs.prediction_tta(straight) == "hflip"  # it never saw rotated rain: the mirror only
    assert runs.prediction_tta(straight, "x8") == "x8" and runs.prediction_tta(straight, False) == "none"
    set_config(straight, tta="none")  # a recipe that records its own choice (the seed solution: none)
    assert runs.prediction_tta(straight) == "none"
    official = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, official)  # the official release: trained with flips and rotations
    assert runs.prediction_tta(official) == "x8"


def test_a_snapshot_keeps_the_small_files_and_the_plan(three_runs: list[Path], tmp_path: Path) -> None:
    run = runs.load_run(three_runs[0])
    (run.path / runs.PLAN).write_text(json.dumps({"epochs": 3, "steps_per_epoch": 90}))
    (run.path / runs.LAST).write_bytes(b"weights")  # checkpoints stay out of a snapshot
    dest = tmp_path / "snapshot" / run.name
    runs.copy_small_files(run, dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(runs.SMALL_FILES)
    assert runs.load_run(dest).plan == {"epochs": 3, "steps_per_epoch": 90}
    for name in runs.SMALL_FILES:
        assert (dest / name).read_bytes() == (run.path / name).read_bytes()


def touch(path: str) -> str:
    """What a malicious checkpoint could call while it is unpickled (here: leaves a mark)."""
    Path(path).write_text("ran")
    return path


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (touch, (str(self.marker),))


def test_a_checkpoint_that_would_run_code_is_refused_unless_trusted(tmp_path):
    """Students share checkpoints: loading one must never execute code it carries (a pickled callable in a
    Lightning-style 'callbacks' entry here); only an explicit trust unpickles it fully."""
    torch.manual_seed(0)
    state = {f"net.{k}": v for k, v in build_model("tiny").state_dict().items()}
    marker = tmp_path / "marker"
    torch.save({"state_dict": state, "callbacks": {"evil": _RunsCode(marker)}}, tmp_path / "shared.ckpt")
    with pytest.raises(runs.CheckpointError) as info:
        runs.load_model(tmp_path / "shared.ckpt", preset="tiny")
    message = str(info.value)
    assert "\n" not in message and "shared.ckpt asks to run" in message and "test_runs.touch" in message
    assert "--trust-checkpoint" in message and not marker.exists()  # nothing ran
    model = runs.load_model(tmp_path / "shared.ckpt", preset="tiny", trust=True)
    assert marker.read_text() == "ran" and isinstance(model, runs.PromptIR)  # trusted: it ran, as warned
    torch.save({"state_dict": state, "epoch": 3, "hyper_parameters": argparse.Namespace(lr=2e-4)},
               tmp_path / "lightning.ckpt")  # fmt: skip
    assert not runs.load_model(tmp_path / "lightning.ckpt", preset="tiny").training  # Lightning's records
