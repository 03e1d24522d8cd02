"""The experiment runner: skips finished variants, survives a failing one, flags a notebook that writes
no run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from hw4lib import experiments


def _stand_in_notebook(path: Path) -> Path:
    """A tiny 'training' notebook: writes a complete metrics.json, or raises for the loss named in fail_on."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'loss = "l1"\nrun_name = "x"\nout_root = "."\nfail_on = ""\nresume = False\noverwrite = False'
    )
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "import json, pathlib\n"
        "if loss == fail_on:\n"
        "    raise RuntimeError(f'boom in {loss}')\n"
        "run = pathlib.Path(out_root) / run_name\n"
        "run.mkdir(parents=True, exist_ok=True)\n"
        "log = run / 'executions.txt'\n"
        "log.write_text(log.read_text() + 'x' if log.exists() else 'x')\n"
        "keys = ['best_epoch', 'best_val_psnr', 'best_val_psnr_rain', 'best_val_psnr_snow', "
        "'best_val_ssim',\n"
        "        'input_psnr', 'params', 'wall_seconds', 'device']\n"
        "metrics = {k: 1 for k in keys} | {'loss': loss, 'complete': True, 'overwrite': overwrite}\n"
        "(run / 'metrics.json').write_text(json.dumps(metrics))\n"
    )
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_run_variants_skips_finished_and_survives_a_failure(tmp_path: Path) -> None:
    notebook = _stand_in_notebook(tmp_path / "train.ipynb")
    runs = tmp_path / "runs"
    params = {"out_root": str(runs), "fail_on": "l1_ssim"}
    first = experiments.run_variants(
        ("l1", "l1_ssim", "mse"),
        prefix="t",
        parameters=params,
        notebook=notebook,
        runs_dir=runs,
        verbose=False,
    )
    assert [r.status for r in first] == ["done", "failed", "done"]
    assert "RuntimeError: boom in l1_ssim" in first[1].error and "t-l1_ssim.ipynb" in first[1].error
    assert (runs / "t-l1.ipynb").is_file() and (runs / "t-l1_ssim.ipynb").is_file()
    assert first[2].metrics["loss"] == "mse"

    # again, the failure fixed: finished variants are not executed again, the failed one is
    second = experiments.run_variants(
        ("l1", "l1_ssim", "mse"),
        prefix="t",
        parameters={"out_root": str(runs)},
        notebook=notebook,
        runs_dir=runs,
        verbose=False,
    )
    assert [r.status for r in second] == ["skipped", "done", "skipped"]
    assert (runs / "t-l1" / "executions.txt").read_text() == "x"
    assert second[0].metrics["loss"] == "l1"

    # force re-runs, and tells a notebook that declares `overwrite` to start over
    forced = experiments.run_variants(
        ("mse",),
        prefix="t",
        parameters={"out_root": str(runs)},
        notebook=notebook,
        runs_dir=runs,
        force=True,
        verbose=False,
    )
    assert forced[0].status == "done" and forced[0].metrics["overwrite"] is True
    assert (runs / "t-mse" / "executions.txt").read_text() == "xx"


def test_run_variants_flags_a_notebook_that_writes_no_run(tmp_path: Path) -> None:
    notebook = _stand_in_notebook(tmp_path / "train.ipynb")
    # the notebook writes under out_root, but runs_dir points elsewhere: finished notebook, no run folder
    result = experiments.run_variants(
        ("l1",),
        prefix="t",
        parameters={"out_root": str(tmp_path / "elsewhere")},
        notebook=notebook,
        runs_dir=tmp_path / "runs",
        verbose=False,
    )[0]
    assert result.status == "failed" and "t-l1 does not exist" in result.error and "run_name" in result.error


def test_run_variants_rejects_parameters_it_sets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loss"):
        experiments.run_variants(("l1",), parameters={"loss": "mse"})




_INTERRUPTED = """
import signal, sys
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a test runner may ignore it)
from hw4lib import experiments
experiments._execute(Path(sys.argv[1]), Path(sys.argv[2]), {}, "python3")
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "killpg"), reason="process groups are POSIX")
def test_ctrl_c_stops_the_notebooks_kernel_even_when_it_holds_the_gil(tmp_path: Path) -> None:
    """Ctrl-C twice while the kernel computes in one long Python call (no chance to answer a polite shutdown):
    the kernel runs in a session of its own, so only this process can stop it, and it must not outlive it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "kernel.pid"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                                          "x = sum(range(10**12))")]  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "busy.ipynb")
    args = [sys.executable, "-c", _INTERRUPTED, str(tmp_path / "busy.ipynb"), str(tmp_path / "out.ipynb")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    kernel = int(pid_file.read_text())
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)  # impatient: a second Ctrl-C during the shutdown
        proc.wait(timeout=30)
        time.sleep(1)
        stat = Path(f"/proc/{kernel}/stat")
        if stat.parent.parent.is_dir():  # Linux: a zombie (state Z) has stopped, only not been reaped
            alive = stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        else:
            try:
                os.kill(kernel, 0)
                alive = True
            except ProcessLookupError:
                alive = False
        assert not alive, "the notebook's kernel outlived the interrupted run"
        assert proc.returncode != 0 and b"KeyboardInterrupt" in proc.stderr.read()
    finally:
        for pid in (proc.pid, kernel):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
