"""The notebooks as papermill runs them: a mistyped run trains nothing, a second run keeps the first.

``pytest --nbval`` checks the notebooks' stored outputs; these check what a user's papermill call does when a
parameter is wrong or a run already exists (the executed notebook ends in the error, nothing is lost).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hw4lib.paths import repo_root
from tests.fabricate import tiny_run

pm = pytest.importorskip("papermill")


def _execute(notebook: str, out: Path, **parameters) -> None:
    pm.execute_notebook(
        str(repo_root() / "notebooks" / notebook), str(out), parameters=parameters, kernel_name="python3",
        cwd=str(repo_root()), progress_bar=False,
    )  # fmt: skip


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HW4_OUTPUT", str(tmp_path))  # the kernels inherit it: runs/ goes here
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def test_a_mistyped_run_in_predict_stops_with_the_runs_that_exist(outputs):
    tiny_run(outputs / "runs", "demo-l1")
    with pytest.raises(pm.PapermillExecutionError) as info:
        _execute("predict.ipynb", outputs / "predict-smok.ipynb", run="smok")
    assert info.value.ename == "FileNotFoundError"
    assert "run 'smok' not found; runs with a checkpoint in runs: demo-l1" in info.value.evalue
    assert sorted(p.name for p in (outputs / "runs").iterdir()) == ["demo-l1"]  # nothing trained or written


def test_train_keeps_an_earlier_run_unless_told(outputs):
    quick = dict(run_name="mine", recipe="smoke", max_train_steps=3, min_gain_db=None, progress=False)
    _execute("train.ipynb", outputs / "first.ipynb", **quick)
    best = outputs / "runs" / "mine" / "best.pt"
    before = best.read_bytes()
    with pytest.raises(pm.PapermillExecutionError) as info:
        _execute("train.ipynb", outputs / "second.ipynb", **quick, lr=0.5)
    assert info.value.ename == "RunExistsError"
    assert "resume=True" in info.value.evalue and "overwrite=True" in info.value.evalue
    assert best.read_bytes() == before and os.path.getsize(best) > 0  # the first run's weights, untouched
