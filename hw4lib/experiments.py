"""Run the loss variants through the training notebook, and build the report from their runs.

Each variant is one papermill execution of ``notebooks/train.ipynb`` with its own ``loss`` and ``run_name``:
the executed notebook lands in ``runs/<prefix>-<loss>.ipynb`` (a readable record of the run, with its plots)
and the run folder in ``runs/<prefix>-<loss>/``. A variant that fails is reported and the others still run; a
variant whose ``metrics.json`` is already complete is skipped, so a long sweep can be resumed by running the
same command again.

CLI: ``python -m hw4lib experiments``. The demo and the loss study, which also make data and write the report,
are in :mod:`hw4lib.study.protocol`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw4lib import paths
from hw4lib.runs import LAST, is_finished, read_metrics, unfinished_reason, variant_name

__all__ = [
    "DEFAULT_LOSSES",
    "VariantResult",
    "Job",
    "run_variants",
    "run_jobs",
    "run_report",
]

DEFAULT_LOSSES = ("l1", "l1_ssim", "mse")
TRAIN_NOTEBOOK = "notebooks/train.ipynb"
REPORT_NOTEBOOK = "notebooks/report.ipynb"
DEMO_REPORT = "report/demo"  # the committed demo report (a folder: report.md, report.html, run-data/, ...)
DEMO_SNAPSHOT = f"{DEMO_REPORT}/run-data/*"  # its committed snapshot of the demo runs
DEMO_RUN_REPORT = "runs/demo-report"  # where `make demo` writes the report of the runs it trained


@dataclass
class VariantResult:
    """What happened to one variant: ``status`` is ``"done"``, ``"skipped"`` (done before) or ``"failed"``."""

    loss: str
    name: str
    run_dir: Path
    notebook: Path
    status: str
    seconds: float = 0.0
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "skipped")

    def summary(self) -> str:
        """One line for the console."""
        if self.status == "failed":
            return f"{self.name}: FAILED after {self.seconds:.0f} s: {self.error}"
        m = self.metrics
        score = ""
        if "best_val_psnr" in m and "input_psnr" in m:
            score = (
                f": best val PSNR {m['best_val_psnr']:.2f} dB (input {m['input_psnr']:.2f} dB, "
                f"epoch {m.get('best_epoch', '?')})"
            )
        what = "already finished, skipped" if self.status == "skipped" else f"done in {self.seconds:.0f} s"
        return f"{self.name}: {what}{score}"


def describe_error(err: BaseException) -> str:
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename:  # papermill.PapermillExecutionError: the exception raised inside the notebook
        return f"{ename}: {evalue}".strip()
    return f"{type(err).__name__}: {err}"


_KERNELS: list[Any] = []  # the kernel managers of the notebooks being executed (to stop them on Ctrl-C)


def _kernel_manager_class() -> type:
    """papermill's kernel manager, remembering each kernel it starts so that an interrupt can stop it (the
    kernel runs in a session of its own: Ctrl-C in the terminal never reaches it)."""
    from jupyter_client.manager import AsyncKernelManager

    class TrackedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            await super().start_kernel(**kw)
            _KERNELS.append(self)

    return TrackedKernelManager


def _stop_kernels() -> None:
    """Kill every kernel this process started and that still runs, with its own child processes."""
    while _KERNELS:
        process = getattr(getattr(_KERNELS.pop(), "provisioner", None), "process", None)
        if process is None or process.poll() is not None:
            continue
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the kernel leads its own session: its workers go too
        except (AttributeError, OSError):  # no process groups (Windows), or already gone
            process.kill()
        try:
            process.wait(timeout=5)  # reaped here: no zombie left behind
        except Exception:  # noqa: BLE001 -- killed already; nothing more to do
            pass


def _execute(
    notebook: Path, output: Path, parameters: Mapping[str, Any], kernel_name: str, echo: bool = False
) -> None:
    """Execute ``notebook`` into ``output`` with papermill; ``echo``: its printed lines (a run's plan and one
    line per epoch) also go to this terminal as they come.

    The execution runs in a worker thread so that Ctrl-C reaches this one: it kills the notebook's kernel at
    once (papermill alone leaves it training in the background) and raises ``KeyboardInterrupt``."""
    import papermill as pm  # imported here: `python -m hw4lib --help` should not pay for it

    output.parent.mkdir(parents=True, exist_ok=True)
    streams = {"stdout_file": sys.stdout, "stderr_file": sys.stderr} if echo else {}
    failed: list[BaseException] = []

    def work() -> None:
        try:
            pm.execute_notebook(
                str(notebook), str(output), parameters=dict(parameters), kernel_name=kernel_name,
                cwd=str(paths.repo_root()), log_output=False, progress_bar=False,
                kernel_manager_class=_kernel_manager_class(), **streams,
            )  # fmt: skip
        except BaseException as err:  # noqa: BLE001 -- handed to the calling thread
            failed.append(err)

    worker = threading.Thread(target=work, name=f"papermill {notebook.name}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        _stop_kernels()
        worker.join(10)  # papermill notes the dead kernel in the executed notebook
        raise
    finally:
        _KERNELS.clear()  # finished (papermill shut it down) or killed above
    if failed:
        raise failed[0]


def _declared_parameters(notebook: Path) -> set[str]:
    """Names in the notebook's ``parameters`` cell (empty when it has none or cannot be inspected)."""
    import papermill as pm

    try:
        return set(pm.inspect_notebook(str(notebook)))
    except Exception:  # noqa: BLE001 -- inspection is a convenience; execution reports real problems
        return set()


@dataclass(frozen=True)
class Job:
    """One execution of the training notebook: the run's name, its loss, and its other parameters."""

    name: str
    loss: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


def run_variants(
    losses: Sequence[str] = DEFAULT_LOSSES,
    prefix: str = "demo",
    parameters: Mapping[str, Any] | None = None,
    notebook: str | os.PathLike[str] = TRAIN_NOTEBOOK,
    force: bool = False,
    kernel_name: str = "python3",
    runs_dir: str | os.PathLike[str] | None = None,
    verbose: bool = True,
) -> list[VariantResult]:
    """Execute ``notebook`` once per loss with ``parameters`` plus ``loss`` and ``run_name``.

    Writes ``<runs_dir>/<prefix>-<loss>.ipynb`` (the executed notebook) and the run folder
    ``<runs_dir>/<prefix>-<loss>/`` (the notebook's ``run_name`` parameter). A variant whose run folder
    already holds a complete ``metrics.json`` is skipped unless ``force``; a failing variant is recorded with
    its error and the next one runs. Returns one :class:`VariantResult` per loss, in order.
    """
    if not losses:
        raise ValueError("run_variants needs at least one loss, e.g. losses=('l1', 'l1_ssim', 'mse')")
    jobs = [Job(variant_name(prefix, loss), loss, dict(parameters or {})) for loss in losses]
    return run_jobs(jobs, notebook, force, kernel_name, runs_dir, verbose)


def run_jobs(
    jobs: Sequence[Job],
    notebook: str | os.PathLike[str] = TRAIN_NOTEBOOK,
    force: bool = False,
    kernel_name: str = "python3",
    runs_dir: str | os.PathLike[str] | None = None,
    verbose: bool = True,
) -> list[VariantResult]:
    """Execute the training notebook once per job, resumably (see :func:`run_variants`)."""
    for job in jobs:
        clash = {"loss", "run_name"} & set(job.parameters)
        if clash:
            raise ValueError(
                f"run_variants sets {sorted(clash)} itself (one per variant); remove them from parameters"
            )
    nb_path = paths.resolve(notebook)
    if not nb_path.is_file():
        raise FileNotFoundError(
            f"training notebook {nb_path} not found; pass notebook='notebooks/train.ipynb'"
        )
    out_dir = paths.output(runs_dir) if runs_dir is not None else paths.runs_dir()
    declared = _declared_parameters(nb_path)

    results: list[VariantResult] = []
    for i, job in enumerate(jobs, 1):
        name = job.name
        run_dir, executed = out_dir / name, out_dir / f"{name}.ipynb"
        result = VariantResult(loss=job.loss, name=name, run_dir=run_dir, notebook=executed, status="done")
        if not force and is_finished(run_dir):
            result.status, result.metrics = "skipped", read_metrics(run_dir)
        else:
            if verbose:
                print(f"[{i}/{len(jobs)}] {name}: running {nb_path.name} with loss={job.loss!r}", flush=True)
            start = time.perf_counter()
            try:
                extra: dict[str, Any] = {}
                if force and "overwrite" in declared:
                    extra["overwrite"] = True  # start the run over
                elif not force and "resume" in declared and (run_dir / LAST).is_file():
                    extra["resume"] = True  # an interrupted run continues from its last checkpoint
                if "progress" in declared:
                    extra["progress"] = False  # no live bars stored in the executed notebook
                run_params = {**job.parameters, **extra, "loss": job.loss, "run_name": name}
                try:
                    _execute(nb_path, executed, run_params, kernel_name, echo=verbose)
                except KeyboardInterrupt:
                    print(f"[{i}/{len(jobs)}] {name}: interrupted (its kernel stopped); the same command "
                          "continues from its last checkpoint", file=sys.stderr, flush=True)  # fmt: skip
                    raise
            except Exception as err:  # noqa: BLE001 -- any failure of one variant must not stop the others
                result.status, result.error = "failed", f"{describe_error(err)} (see {executed})"
            result.seconds = time.perf_counter() - start
            if result.status == "done":
                reason = unfinished_reason(run_dir)
                if reason:
                    result.status = "failed"
                    result.error = (
                        f"the notebook finished but {reason}; does {nb_path.name} pass run_name to the "
                        f"training run? (see {executed})"
                    )
                else:
                    result.metrics = read_metrics(run_dir)
        if verbose:
            print(f"[{i}/{len(jobs)}] {result.summary()}", flush=True)
        results.append(result)
    return results


def run_report(
    runs: str | Sequence[str] = DEMO_SNAPSHOT,
    out: str = DEMO_REPORT,
    data_dir: str | None = None,
    notebook: str | os.PathLike[str] = REPORT_NOTEBOOK,
    kernel_name: str = "python3",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Execute the report notebook on ``runs`` (a glob or a list of folders), writing the report folder
    ``out`` (``report.md``, ``report.html``, ``tables/``, ``figures/``, the snapshot ``run-data/``); returns
    the executed notebook, ``runs/<out's name>.ipynb``."""
    nb_path = paths.resolve(notebook)
    if not nb_path.is_file():
        raise FileNotFoundError(f"report notebook {nb_path} not found")
    params: dict[str, Any] = {"runs": runs if isinstance(runs, str) else [str(r) for r in runs], "out": out}
    if data_dir is not None:
        params["data_dir"] = str(data_dir)
    params.update(extra or {})
    executed = paths.runs_dir() / f"{Path(out).name}.ipynb"
    _execute(nb_path, executed, params, kernel_name)
    return executed
