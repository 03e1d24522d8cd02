"""A study on a data set of one's own (``make study DATA=... RECIPE=... PRESET=... SEEDS=...``): the runs it
names, the plan printed before the first step (every run estimated, one speed measurement, finished runs
skipped, a run that would not fit refused by name), the command line, and the whole study end to end on a
small course-layout set with the smoke recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw4lib import paths, planning
from hw4lib.__main__ import main
from hw4lib.study import protocol
from hw4lib.study.protocol import data_jobs, plan_jobs
from tests.fabricate import make_run, tiny_dataset


@pytest.fixture
def course(tmp_path: Path) -> Path:
    return tiny_dataset(tmp_path / "hw4_course", per_kind=10, size=48)  # the course layout, 20 pairs


def test_the_seed_solutions_experiment_is_named_by_data_recipe_preset_loss_and_seed(course: Path) -> None:
    jobs = data_jobs(str(course), recipe="seed", preset="full", seeds=(0, 1, 2))
    assert [j.name for j in jobs[:3]] == ["hw4_course-seed-full-l1-s0", "hw4_course-seed-full-mse-s0",
                                          "hw4_course-seed-full-l1_ssim-s0"]  # fmt: skip
    assert len(jobs) == 9 and [j.loss for j in jobs[:3]] == ["l1", "mse", "l1_ssim"]
    base = {"recipe": "seed", "data_dir": str(course), "min_gain_db": None, "preset": "full"}
    assert all(j.parameters == {**base, "seed": int(j.name[-1])} for j in jobs)
    assert protocol.data_prefix("data/x", "smoke") == "x-smoke"
    assert [j.name for j in data_jobs("d", "smoke", losses=("l1+0.1*edge_y",), seeds=(4,), prefix="p")] == [
        "p-l1_0.1_edge_y-s4"]  # fmt: skip
    with pytest.raises(ValueError, match="unknown recipe 'sed'; choose one of seed"):
        data_jobs("d", "sed")
    with pytest.raises(ValueError, match="at least one loss and one seed"):
        data_jobs("d", "smoke", seeds=())


def test_the_plan_estimates_every_run_once_per_setting_and_skips_finished_ones(
    course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured = []
    monkeypatch.setattr(planning, "_matmul_tflops", lambda device, dtype: measured.append(1) or 0.1)
    jobs = data_jobs(str(course), "smoke", seeds=(0, 1), losses=("l1", "mse"))
    make_run(paths.runs_dir(), jobs[0].name, "l1", 20.0, 19.0, 21.0)  # finished already
    plan = plan_jobs(jobs)
    assert measured == [1]  # one speed measurement for the whole plan
    assert [j.name for j in plan.todo] == [j.name for j in jobs[1:]]
    step = next(e for _, e, _ in plan.jobs if e is not None)
    config = protocol.job_config(jobs[1])
    natural = 18 * config.patches_per_image // config.batch_size  # 18 training pairs (10% held out)
    assert step.steps == config.epochs * min(natural, config.max_train_steps or natural)
    expected = step.steps * step.step_gflop / 1e3 / (0.1 * planning.UTILISATION["cpu"])
    assert plan.total_s == pytest.approx(3 * expected)
    text = plan.describe()
    assert text.splitlines()[0] == "plan: 3 run(s) to train on this cpu (1 finished already, skipped)"
    assert f"3 x {planning.format_duration(expected)} ({step.steps:,} steps of" in text
    assert "hw4_course-smoke-mse-s0 ... hw4_course-smoke-mse-s1" in text
    assert text.splitlines()[-1].startswith(
        f"estimated total: {planning.format_duration(3 * expected)} of training"
    )
    assert len(plan_jobs(jobs, force=True).todo) == 4


def test_a_run_too_long_for_this_cpu_stops_the_study_before_its_first_run(
    course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "_matmul_tflops", lambda device, dtype: 1e-4)  # a very slow CPU
    jobs = data_jobs(str(course), "seed", seeds=(0,))
    with pytest.raises(
        planning.LongRunRefused, match=r"^run hw4_course-seed-l1-s0: this run is estimated at"
    ):
        plan_jobs(jobs)
    long_ok = [type(j)(j.name, j.loss, {**j.parameters, "allow_long_cpu": True}) for j in jobs]
    assert len(plan_jobs(long_ok).todo) == 3


def test_the_command_line_prints_the_plan_and_refuses_mixed_options_in_one_line(
    course: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["study", "--data", str(course), "--recipe", "smoke", "--seeds", "0,1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan: 6 run(s) to train on this cpu\n") and "estimated total:" in out
    assert not paths.runs_dir().exists() or not any(paths.runs_dir().iterdir())  # a dry run trains nothing
    assert main(["study", "--recipe", "smoke"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("hw4lib study: --recipe choose the study of a data set of one's own: add --data DIR (e.g. "
                   "--data data/hw4_realse_dataset), or leave them out for the loss study")  # fmt: skip
    assert main(["study", "--data", str(course / "nowhere"), "--dry-run"]) == 1
    assert "no such folder; give a data set in the course layout" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["study", "--data", str(course), "--seeds", "0,x"])
    assert "seeds are whole numbers separated by commas" in capsys.readouterr().err


@pytest.mark.slow
def test_the_study_on_a_course_layout_set_trains_every_run_and_writes_its_report(
    course: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = data_jobs(str(course), "smoke", seeds=(0, 1), losses=("l1", "mse"))
    assert protocol.run_study(str(course), prefix="hw4_course-smoke", jobs=jobs) == 0
    out = capsys.readouterr().out
    assert out.index("plan: 4 run(s) to train") < out.index("[1/4] hw4_course-smoke-l1-s0: running")
    report = (paths.runs_dir() / "hw4_course-smoke-report" / "report.md").read_text()
    names = ", ".join(f"`hw4_course-smoke-{n}`" for n in ("l1-s0", "mse-s0", "l1-s1", "mse-s1"))
    assert f"from the runs {names} on" in report
    assert f"on `{course}`. Every number" in report
    # the validation split is the recipe's share of each type, drawn with each run's seed, and said so
    assert (
        "10% of each type (drawn with each run's seed) is held out: 2 validation pairs (1 rain, 1 snow)"
        in report
    )
    assert "It was made without a leaderboard score, without the full model and without a GPU." in report
    assert "not on the course's test images" in report and "none is a course score" not in report
    assert f"make study DATA={course} RECIPE=smoke SEEDS=0,1 LOSSES=l1,mse" in report
    # resumable: a second call trains nothing and says so in its plan
    assert protocol.run_study(str(course), prefix="hw4_course-smoke", jobs=jobs) == 0
    assert "plan: 0 run(s) to train on this cpu (4 finished already, skipped)" in capsys.readouterr().out
