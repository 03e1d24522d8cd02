"""The command line: each command parses its options into the library call and reports in one line."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from hw4lib import cli
from hw4lib.__main__ import build_parser, main
from hw4lib.config import make_config
from hw4lib.data import find_pairs, load_image
from hw4lib.infer import check_submission, restore
from hw4lib.scoring import score_predictions
from hw4lib.synth import datasets
from tests.fabricate import rng_image, tiny_dataset, tiny_run, write_png


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    commands = ("demo-data", "import-pairs", "check-data", "train", "predict", "score", "check-submission")
    for command in (*commands, "experiments", "report", "demo"):
        assert f"    {command}" in out, command
    assert main([]) == 2  # no command: help, exit status 2


# ---------------------------------------------------------------------------------------------------- data


def test_demo_data_writes_reports_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    args = ["demo-data", "--out", str(tmp_path / "d"), "--pairs-per-type", "2", "--test-per-type", "1"]
    args += ["--size", "32", "--seed", "3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 rain + 2 snow training pairs, 2 test images" in out
    assert "train/rain" in out and "train/snow" in out and "input PSNR" in out
    assert len(find_pairs(tmp_path / "d")) == 4
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_demo_data_over_a_photo_folder(tmp_path: Path, capsys) -> None:
    for k, (h, w) in enumerate([(40, 48), (56, 40), (40, 48)], 1):
        write_png(tmp_path / "photos" / f"p{k}.png", rng_image(h, w, seed=k))
    args = ["demo-data", "--photos", str(tmp_path / "photos"), "--out", str(tmp_path / "d"), "--seed", "2"]
    assert main([*args, "--max-side", "32", "--val-fraction", "0.34"]) == 0
    out = capsys.readouterr().out
    assert "3 photos of" in out and "rain 2 train + 1 val, snow 2 train + 1 val" in out
    assert "val fraction 0.34" in out and "input PSNR" in out and "snow/" in out
    pairs = find_pairs(tmp_path / "d")
    assert len(pairs) == 6 and (tmp_path / "d" / "split.csv").is_file()
    assert load_image(pairs[1].clean).shape == (32, 23, 3)  # 56x40 downscaled to a longer side of 32
    assert main(args) == 2 and "--force" in capsys.readouterr().err
    assert main([*args, "--size", "64", "--force"]) == 2
    assert "--size applies only to the sample-photo demo set" in capsys.readouterr().err
    assert main(["demo-data", "--out", str(tmp_path / "e"), "--max-side", "64", "--val-fraction", "0.1"]) == 2
    assert "--val-fraction, --max-side apply only to --photos" in capsys.readouterr().err
    assert main(["demo-data", "--photos", str(tmp_path / "none"), "--out", str(tmp_path / "f")]) == 2
    assert "photo folder" in capsys.readouterr().err and not (tmp_path / "f").exists()


def test_study_data_from_a_rain100l_folder_or_the_demo_fallback(tmp_path, capsys, monkeypatch) -> None:
    src = tmp_path / "rain100l"
    for k in range(1, 6):
        clean = rng_image(40, 48, seed=k) // 2
        write_png(src / "target" / f"{k}.png", clean)
        write_png(src / "input" / f"{k}.png", clean + 20)
    out = tmp_path / "study"
    assert main(["study-data", "--out", str(out), "--rain100l", str(src), "--val-fraction", "0.4"]) == 0
    text = capsys.readouterr().out
    assert "the loss study's set: the 5 pairs of Rain100L as the rain type and synthetic snow" in text
    assert "rain 3 train + 2 val, snow 3 train + 2 val, split by scene" in text and "input PSNR" in text
    assert len(find_pairs(out)) == 10
    assert main(["study-data", "--out", str(out), "--rain100l", str(src)]) == 2
    assert "--force" in capsys.readouterr().err

    monkeypatch.delenv("HW4_RAIN100L", raising=False)  # no Rain100L named
    demo = tiny_dataset(tmp_path / "demo", per_kind=5)
    monkeypatch.setattr(datasets, "ensure_demo_dataset", lambda path=None: demo)
    assert main(["study-data", "--out", str(tmp_path / "fallback")]) == 0
    captured = capsys.readouterr()
    assert "source demo" in captured.out and "split by pair" in captured.out
    assert captured.err.count("runs on synthetic data") == 1 and "HW4_RAIN100L" in captured.err
    parsed = build_parser().parse_args(["study-data"])
    assert parsed.out == Path("data/study") and parsed.val_fraction == 0.2 and parsed.rain100l is None


def test_help_lists_the_study_data_command(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "    study-data" in capsys.readouterr().out


def test_check_data_prints_the_summary_and_fails_on_errors(tmp_path: Path, capsys) -> None:
    root = tiny_dataset(tmp_path / "ds", per_kind=2)
    assert main(["check-data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "training pairs: 4 (rain 2, snow 2)" in out and out.rstrip().endswith("OK")
    (root / "train" / "clean" / "rain_clean-1.png").unlink()
    assert main(["check-data", str(root)]) == 1
    out = capsys.readouterr().out
    assert "rain-1.png: degraded image has no clean twin" in out and "NOT OK" in out


def test_cli_import_then_check_data_accepts_it(tmp_path, capsys):
    src = tmp_path / "src"
    for k in range(1, 6):  # Rain100L's mirror layout: input/N.png, target/N.png
        write_png(src / "input" / f"{k}.png", rng_image(8, 12, seed=k))
        write_png(src / "target" / f"{k}.png", rng_image(8, 12, seed=100 + k))
    out = tmp_path / "ds"
    code = main(["import-pairs", str(src), "--type", "rain", "--out", str(out), "--test-fraction", "0.4"])
    assert code == 0
    assert "imported 5 rain pairs (mirror layout)" in capsys.readouterr().out
    assert main(["check-data", str(out)]) == 0

    code = main(["import-pairs", str(src), "--out", str(out)])
    assert code == 1 and "--append" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------- train


def test_cli_builds_the_config_from_file_recipe_and_flags(tmp_path):
    base = tmp_path / "base.json"
    make_config("demo", epochs=9).to_json(base)
    args = build_parser().parse_args(
        ["train", "--config", str(base), "--loss", "mse", "--patch-size", "none", "--ema", "0.99",
         "--augment", "flips", "--model-overrides", '{"dim": 8}', "--resume"]
    )  # fmt: skip
    config = cli._train_config(args)
    assert (config.epochs, config.loss, config.patch_size) == (9, "mse", None)
    assert (config.ema, config.augment, config.recipe) == (0.99, "flips", "demo")
    assert config.model_overrides == {"dim": 8} and args.resume
    args = build_parser().parse_args(["train", "--recipe", "official", "--lr", "1e-3"])
    config = cli._train_config(args)
    assert config.recipe == "official" and config.lr == 1e-3 and config.patch_size == 128
    # no recipe: the notebook's choice (make_config), the cpu recipe for a course-style set on a CPU
    course = tmp_path / "course"
    tiny_dataset(course, per_kind=2)
    (course / "synth.json").unlink(missing_ok=True)
    args = build_parser().parse_args(["train", "--data-dir", str(course), "--device", "cpu"])
    assert cli._train_config(args) == make_config(data_dir=str(course), device="cpu")
    assert cli._train_config(args).recipe == "cpu"


def test_train_flags_that_do_not_parse_say_which_and_why():
    parse = cli._field_parser
    with pytest.raises(argparse.ArgumentTypeError, match=r"--epochs: cannot read 'ten' as int"):
        parse("epochs", int)("ten")
    with pytest.raises(argparse.ArgumentTypeError, match=r"--allow-long-cpu: cannot read 'maybe' as bool"):
        parse("allow_long_cpu", bool)("maybe")
    with pytest.raises(argparse.ArgumentTypeError, match=r"--model-overrides: .*not a JSON object"):
        parse("model_overrides", dict[str, int])("[1, 2]")
    assert parse("patch_size", int | None)("None") is cli._NONE  # "none" clears the recipe's value
    assert parse("patch_size", int | None)("64") == 64
    assert parse("lr", float)("2e-4") == 2e-4 and parse("loss", str)("l1+0.1*edge") == "l1+0.1*edge"


def test_train_reports_a_bad_config_in_one_line(capsys):
    assert main(["train", "--recipe", "demo", "--preset", "huge"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hw4lib train: invalid TrainConfig: preset 'huge'") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["train", "--recipe", "demo", "--loss", "l2"]) == 1
    assert "bad loss spec 'l2'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- inference


def test_cli_predict_then_score(tmp_path, capsys):
    run, model = tiny_run(tmp_path / "runs")
    degraded, clean = tmp_path / "data" / "test" / "degraded", tmp_path / "data" / "test" / "clean"
    for i in range(2):
        img = rng_image(20, 28, seed=i)
        write_png(degraded / f"{i}.png", img)
        write_png(clean / f"{i}.png", img)
    (tmp_path / "data" / "test" / "labels.csv").write_text("name,kind\n0.png,rain\n1.png,snow\n")

    predict = ["predict", "--run", str(run), "--no-progress"]
    assert main([*predict, "--test-dir", str(degraded), "--device", "cpu", "--tta", "none"]) == 0
    out = run / "pred.npz"  # the default: inside the run folder
    printed = capsys.readouterr().out
    assert "self-ensemble none" in printed and check_submission(out, degraded) == []
    assert f"upload {out.with_suffix('.zip')}" in printed
    assert check_submission(out.with_suffix(".zip"), degraded) == []
    with np.load(out) as data:
        expected = restore(model, rng_image(20, 28, seed=1)).transpose(2, 0, 1)
        assert np.array_equal(data["1.png"], expected)

    tta_out, pngs = tmp_path / "tta.npz", tmp_path / "png"
    tiles = ["--tile", "24", "--tile-overlap", "8"]
    options = ["--checkpoint", "last", "--tta", "--out", str(tta_out), "--png-dir", str(pngs), *tiles]
    assert main([*predict, "--test-dir", str(tmp_path / "data"), *options]) == 0  # dataset root works too
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["0.png", "1.png"]

    assert main(["score", str(out), "--clean", str(clean), "--csv", str(tmp_path / "scores.csv")]) == 0
    text = capsys.readouterr().out
    assert "rain" in text and "snow" in text and "PSNR" in text
    scores = score_predictions(out, clean)
    assert f"PSNR {scores.psnr:.2f} dB" in text
    assert (tmp_path / "scores.csv").read_text().splitlines()[0] == "name,kind,psnr,ssim"
    assert main(["check-submission", str(tta_out), "--test-dir", str(degraded)]) == 0


def test_predict_without_a_run_or_checkpoint_says_what_to_pass(tmp_path, capsys):
    assert main(["predict", "--test-dir", str(tmp_path)]) == 1
    assert "pass a run (--run NAME or folder) or a checkpoint file" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------------- sweeps


def test_experiments_parameters_are_read_as_json_values() -> None:
    args = build_parser().parse_args(
        ["experiments", "--losses", "l1,mse", "--prefix", "gpu", "-p", "epochs", "25", "-p", "preset", "full"]
    )
    assert args.func is cli._experiments
    assert args.losses == "l1,mse" and args.prefix == "gpu"
    assert {k: cli.parse_parameter(v) for k, v in args.parameters} == {"epochs": 25, "preset": "full"}
    assert cli.parse_parameter("[1, 2]") == [1, 2] and cli.parse_parameter("data/x") == "data/x"
    assert build_parser().parse_args(["report", "--runs", "runs/gpu-*"]).runs == ["runs/gpu-*"]
