"""The run folder: the one place that knows its files, names, reading, writing, checks and model loading.

A training run (``hw4lib.train.fit``) writes ``runs/<name>/``:

- ``config.json``: the :class:`~hw4lib.config.TrainConfig`;
- ``history.csv`` / ``history.json``: one row per epoch (train loss, validation PSNR/SSIM overall and per
  degradation type, learning rate, seconds, images per second);
- ``metrics.json``: the summary (``REQUIRED_METRICS`` at least; ``complete`` is false until the last epoch);
- ``best.pt`` / ``last.pt``: checkpoints, written atomically, with ``model`` (the weights to infer with) and
  ``model_config`` (``build_model`` arguments incl. ``preset``), plus what a resume needs;
- ``samples/``: a few validation images restored by the best model (``samples.json`` says which);
- ``plan.json``: how the run was sized before its first step (steps, measured speed, estimated time);
- ``log.txt``: the lines printed during the run;
- ``tb/``: the curves for TensorBoard, when the run asked for them (``tensorboard=True``).

The report keeps copies of the small files (``SMALL_FILES``) of each run in a snapshot folder of the same
shape, with its per-image evaluation in ``eval/``; :func:`load_run` reads both.

:func:`load_model` is the one model loader: a run folder (best or last checkpoint), one of our checkpoints, a
plain state dict, or the official PromptIR Lightning ``model.ckpt``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import math
import os
import pickle
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hw4lib import paths
from hw4lib.config import TrainConfig
from hw4lib.infer import resolve_tta
from hw4lib.losses import loss_label
from hw4lib.model import DEAD_LAYERS, PromptIR, build_model
from hw4lib.paths import atomic_write, save_torch_atomic, write_json_atomic, write_text_atomic

__all__ = [
    "CONFIG", "HISTORY_CSV", "HISTORY_JSON", "METRICS", "LOG", "PLAN", "BEST", "LAST", "SAMPLES", "EVAL",
    "TENSORBOARD",
    "SMALL_FILES", "REQUIRED_METRICS", "TIME_COLUMNS", "CHECKPOINT_VERSION",
    "RunError", "RunExistsError", "CheckpointError", "Run",
    "safe_name", "variant_name", "find_run", "load_run", "load_runs", "expand_runs", "read_metrics",
    "unfinished_reason",
    "is_finished", "holds_run", "clear_run", "write_config", "write_history", "write_metrics", "jsonable",
    "save_checkpoint", "copy_small_files", "RunLog",
    "read_checkpoint", "load_checkpoint", "load_weights", "load_model", "prediction_tta",
]  # fmt: skip

CONFIG = "config.json"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
METRICS = "metrics.json"
LOG = "log.txt"
PLAN = "plan.json"  # how the run was sized before its first step (hw4lib.planning.Plan)
BEST = "best.pt"
LAST = "last.pt"
SAMPLES = "samples"
EVAL = "eval"  # the report's per-image evaluation of a run (in its snapshot)
TENSORBOARD = "tb"  # the curves for TensorBoard (config.tensorboard)
SMALL_FILES = (CONFIG, HISTORY_CSV, METRICS, PLAN)  # what a snapshot keeps (no checkpoints; plan: when there)
_RUN_FILES = (BEST, LAST, HISTORY_CSV, HISTORY_JSON, METRICS, LOG, PLAN)  # what starting over removes
# metrics.json keys every finished run has (hw4lib.train writes them; the report and experiments rely on them)
REQUIRED_METRICS = (
    "best_epoch", "best_val_psnr", "best_val_psnr_rain", "best_val_psnr_snow", "best_val_ssim", "input_psnr",
    "params", "wall_seconds", "device", "loss",
)  # fmt: skip
TIME_COLUMNS = ("seconds", "images_per_s")  # history columns that legitimately differ between equal runs
CHECKPOINT_VERSION = 1


class RunError(ValueError):
    """A run folder that cannot be used; the message names the folder, what is missing and how to make it."""


class RunExistsError(FileExistsError):
    """A fresh run would overwrite an earlier run's checkpoints."""


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model it should be loaded into."""


# ----------------------------------------------------------------------------------------------------------
# names


def safe_name(text: str) -> str:
    """A folder-safe run name: ``train-l1+0.1*edge`` -> ``train-l1_0.1_edge``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def variant_name(prefix: str, loss: str) -> str:
    """The run name of one loss variant of a sweep: ``<prefix>-<loss>``, folder-safe."""
    return safe_name(f"{prefix}-{loss}" if prefix else loss)


def find_run(run: str | os.PathLike[str]) -> Path:
    """A run folder given as a path (from the working folder or the repo root) or a name in ``runs/``; a
    missing one is a ``FileNotFoundError`` that lists the runs with a checkpoint."""
    for candidate in (Path(run), paths.resolve(run), paths.runs_dir() / str(run)):
        if candidate.is_dir():
            return candidate
    where = paths.relative(paths.runs_dir())
    found = sorted(p.name for p in paths.runs_dir().glob("*") if (p / BEST).is_file())
    have = f"runs with a checkpoint in {where}: {', '.join(found)}" if found else (
        f"no run in {where} has a checkpoint yet (train one first)")  # fmt: skip
    raise FileNotFoundError(f"run {str(run)!r} not found; {have}")


# ----------------------------------------------------------------------------------------------------------
# reading


@dataclass
class Run:
    """One training run as its files hold it (a run folder or a report snapshot of one)."""

    path: Path
    config: dict[str, Any]  # config.json as written (see ``train_config`` for the parsed TrainConfig)
    metrics: dict[str, Any]
    history: pd.DataFrame
    per_image: pd.DataFrame | None = None  # eval/per_image.csv, when the report evaluated the run
    plan: dict[str, Any] | None = None  # plan.json: how the run was sized (hw4lib.planning.Plan)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def loss(self) -> str:
        return str(self.metrics.get("loss") or self.config.get("loss") or self.name)

    @property
    def label(self) -> str:
        return loss_label(self.loss)

    @property
    def epochs(self) -> int:
        return int(len(self.history))

    @property
    def eval_dir(self) -> Path:
        return self.path / EVAL

    @property
    def best_checkpoint(self) -> Path:
        return self.path / BEST

    @property
    def last_checkpoint(self) -> Path:
        return self.path / LAST

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config, f"{paths.relative(self.path / CONFIG)}")


def _hint(run_dir: Path) -> str:
    """The command that makes or finishes the run in ``run_dir``."""
    rel = paths.relative(run_dir)
    if (run_dir / CONFIG).is_file():
        return (
            f"finish it with `python -m hw4lib train --config {rel}/{CONFIG} --resume` "
            "(the demo runs: `make demo`)"
        )
    return (
        "train it with `python -m hw4lib train`, notebooks/train.ipynb (run_name="
        f"{run_dir.name!r}) or `make demo` for the demo runs"
    )


def _read_json(path: Path, run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RunError(f"{paths.relative(path)} is not valid JSON ({err}); {_hint(run_dir)}") from err
    if not isinstance(data, dict):
        raise RunError(f"{paths.relative(path)} does not hold a JSON object; {_hint(run_dir)}")
    return data


def unfinished_reason(run_dir: str | os.PathLike[str]) -> str | None:
    """Why ``run_dir`` is not a finished run, or ``None`` when it is one: no ``metrics.json``, required
    keys missing, or ``"complete": false`` (training rewrites it after every epoch and marks the last)."""
    run_dir = paths.resolve(run_dir)
    rel = paths.relative(run_dir)
    if not run_dir.is_dir():
        return f"run folder {rel} does not exist"
    metrics_path = run_dir / METRICS
    if not metrics_path.is_file():
        if (run_dir / HISTORY_CSV).is_file():
            return f"run folder {rel} has {HISTORY_CSV} but no {METRICS} (the run did not finish)"
        return f"run folder {rel} has no {METRICS} (the run never started or was not written there)"
    try:
        metrics = _read_json(metrics_path, run_dir)
    except RunError as err:
        return str(err).split(";")[0]
    missing = [key for key in REQUIRED_METRICS if key not in metrics]
    if missing:
        return f"{paths.relative(metrics_path)} lacks {', '.join(missing)} (a partial or older run)"
    if metrics.get("complete", True) is False:
        return (
            f"run folder {rel} stopped after epoch {metrics.get('epochs_done', '?')} ({METRICS} says "
            "complete: false)"
        )
    return None


def read_metrics(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``metrics.json`` of a run folder, or ``{}`` when it is missing or unreadable (a run still starting)."""
    try:
        data = json.loads((paths.resolve(run_dir) / METRICS).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def is_finished(run_dir: str | os.PathLike[str]) -> bool:
    """True when ``run_dir`` holds a finished run (see :func:`unfinished_reason`)."""
    return unfinished_reason(run_dir) is None


def load_run(run_dir: str | os.PathLike[str], finished: bool = True) -> Run:
    """Read a run folder (or snapshot): ``config.json``, ``history.csv``, ``metrics.json``, ``eval/``.

    ``finished=True`` (the report, sweeps) requires a complete run with the ``REQUIRED_METRICS``;
    ``finished=False`` reads a started or interrupted one too (its metrics may be empty). Either way a
    :class:`RunError` names the folder, what is missing and the command that makes it.
    """
    run_dir = paths.resolve(run_dir)
    rel = paths.relative(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run folder {rel} does not exist; {_hint(run_dir)}")
    if finished:
        reason = unfinished_reason(run_dir)
        if reason is not None:
            raise RunError(f"{reason}; {_hint(run_dir)}")
    elif not (run_dir / CONFIG).is_file():
        raise RunError(f"{rel}/{CONFIG} is missing: {rel} is not a (started) training run; {_hint(run_dir)}")
    history_path = run_dir / HISTORY_CSV
    if not history_path.is_file():
        raise RunError(f"run folder {rel} has no {HISTORY_CSV}; {_hint(run_dir)}")
    history = pd.read_csv(history_path)
    if finished and history.empty:
        raise RunError(f"{rel}/{HISTORY_CSV} has no epochs; {_hint(run_dir)}")
    metrics = _read_json(run_dir / METRICS, run_dir) if (run_dir / METRICS).is_file() else {}
    config = _read_json(run_dir / CONFIG, run_dir) if (run_dir / CONFIG).is_file() else {}
    per_image_path = run_dir / EVAL / "per_image.csv"
    per_image = pd.read_csv(per_image_path) if per_image_path.is_file() else None
    plan = _read_json(run_dir / PLAN, run_dir) if (run_dir / PLAN).is_file() else None
    return Run(run_dir, config, metrics, history, per_image, plan)


def _looks_like_run(folder: Path) -> bool:
    """A folder a glob should match: it holds one of a run's files (others, e.g. bench/, are skipped)."""
    return folder.is_dir() and any((folder / name).is_file() for name in SMALL_FILES)


def expand_runs(runs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Run folders from a glob (``"runs/demo-*"``, relative to the repo root) or a list of folders."""
    items = [runs] if isinstance(runs, (str, os.PathLike)) else list(runs)
    found: list[Path] = []
    for item in items:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(paths.resolve(text))) if _looks_like_run(Path(p)))
            if not matches:
                raise RunError(
                    f"no run folders match {text!r} (under {paths.repo_root()}); train them first, e.g. "
                    "`make demo` for runs/demo-*, or point at a committed snapshot, e.g. "
                    "'report/demo/run-data/*'"
                )
            found.extend(matches)
        else:
            found.append(paths.resolve(text))
    if not found:
        raise RunError("no runs given; pass a glob like 'runs/demo-*' or a list of run folders")
    return list(dict.fromkeys(found))


def load_runs(runs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Run]:
    """Load finished runs from a glob or a list of folders, in the glob's (sorted) order."""
    return [load_run(folder) for folder in expand_runs(runs)]


# ----------------------------------------------------------------------------------------------------------
# writing


def holds_run(run_dir: Path) -> bool:
    """True when ``run_dir`` already holds (part of) a training run that a fresh start would overwrite."""
    return (run_dir / LAST).is_file() or (run_dir / HISTORY_CSV).is_file()


def clear_run(run_dir: Path) -> None:
    """Remove a run's files (checkpoints, history, metrics, log, samples) so it can start over."""
    for name in _RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for folder in (SAMPLES, TENSORBOARD):
        shutil.rmtree(run_dir / folder, ignore_errors=True)


def jsonable(obj: Any) -> Any:
    """NaN/inf -> None, tuples -> lists: the JSON files stay standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def write_config(run_dir: Path, config: TrainConfig) -> Path:
    config.to_json(run_dir / CONFIG)
    return run_dir / CONFIG


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """``history.csv`` and ``history.json``, one row per epoch."""
    write_text_atomic(pd.DataFrame(history).to_csv(index=False), run_dir / HISTORY_CSV)
    write_json_atomic(jsonable(history), run_dir / HISTORY_JSON)


def write_metrics(run_dir: Path, metrics: Mapping[str, Any]) -> Path:
    return write_json_atomic(jsonable(dict(metrics)), run_dir / METRICS)


def save_checkpoint(state: Mapping[str, Any], run_dir: Path, best: bool = False) -> None:
    """``last.pt`` (and ``best.pt`` when ``best``), each written atomically."""
    save_torch_atomic(dict(state), run_dir / LAST)
    if best:
        save_torch_atomic(dict(state), run_dir / BEST)


def copy_small_files(run: Run, dest: Path) -> None:
    """Copy the run's ``SMALL_FILES`` into ``dest`` (a snapshot folder), atomically each."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SMALL_FILES:
        if (run.path / name).is_file():
            with atomic_write(dest / name, "wb") as f:
                f.write((run.path / name).read_bytes())


class RunLog:
    """Prints a line and keeps it for ``log.txt``: lines are held until :meth:`attach` names the run folder
    (a run writes nothing before it has started), then appended there. ``silent=True``: the other processes
    of a DDP run."""

    def __init__(self, run_dir: Path | None = None, silent: bool = False) -> None:
        self.silent = silent
        self.path: Path | None = None
        self.pending: list[str] = []
        if run_dir is not None:
            self.attach(run_dir)

    def attach(self, run_dir: Path) -> None:
        """From now on lines go to ``run_dir/log.txt``, after the ones held so far."""
        if self.silent:
            return
        self.path = run_dir / LOG
        self._write(self.pending)
        self.pending = []

    def _write(self, lines: list[str]) -> None:
        if lines and self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))

    def __call__(self, line: str) -> None:
        if self.silent:
            return
        print(line, flush=True)
        if self.path is None:
            self.pending.append(line)
        else:
            self._write([line])


# ----------------------------------------------------------------------------------------------------------
# checkpoints and models

_DEAD_MODULES = frozenset(name.split(".")[0] for name in DEAD_LAYERS)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One of our training checkpoints (``best.pt`` / ``last.pt``) as a dict on the CPU, with clear errors
    (``load_state_dict`` then places weights and optimiser state where the model is)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; train first (hw4lib.train.fit) or check the path"
        )
    ckpt = read_checkpoint(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
        raise ValueError(
            f"{path} is not an hw4lib training checkpoint (needs keys 'model' and 'model_config'); "
            "for the official PromptIR weights use hw4lib.runs.load_model"
        )
    return ckpt


def _extract_state_dict(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The tensors of a Lightning / training / plain checkpoint, and our own model config if it has one."""
    config = None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):  # Lightning
        obj = obj["state_dict"]
    elif isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):  # our training checkpoints
        config = obj.get("model_config")
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path}: not a PromptIR checkpoint (expected a Lightning checkpoint with 'state_dict', "
            f"a training checkpoint with 'model', or a state dict of tensors)"
        )
    state = {}
    for name, tensor in obj.items():
        for prefix in ("net.", "module."):  # Lightning attribute / DistributedDataParallel wrapper
            if name.startswith(prefix):
                name = name[len(prefix) :]
        if name.split(".")[0] not in _DEAD_MODULES:
            state[name] = tensor
    return state, dict(config) if isinstance(config, Mapping) else None


def _listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


class _Record(dict):
    """Stands in for a record class pickled into a Lightning checkpoint: keeps its fields, runs no code."""

    def __setstate__(self, state: Any) -> None:
        self.update(state if isinstance(state, dict) else {})


# What a PyTorch Lightning checkpoint pickles besides tensors, numbers, strings and containers:
# hyper-parameters as an argparse Namespace or Lightning's AttributeDict. Anything else is refused unless the
# caller trusts the file: a pickled callable runs when it is unpickled.
_CHECKPOINT_GLOBALS: list[Any] = [
    argparse.Namespace,
    (_Record, "lightning.fabric.utilities.data.AttributeDict"),
    (_Record, "pytorch_lightning.utilities.parsing.AttributeDict"),
]


def read_checkpoint(path: str | os.PathLike[str], trust: bool = False) -> Any:
    """The object saved in a checkpoint file, loaded to the CPU without running any code it carries: tensors,
    numbers, strings, containers and the few record types Lightning pickles are read; a file that asks for
    anything else is refused with :class:`CheckpointError`. ``trust=True`` unpickles it fully (only for files
    from a source you trust: a pickled callable runs while it loads)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if trust:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise CheckpointError(f"{path}: cannot be read by torch.load ({err})") from err
    try:
        with torch.serialization.safe_globals(_CHECKPOINT_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001 -- not a zip checkpoint: say what torch said
            unsafe = []
        asks = f"asks to run {_listing(unsafe, 4)} while loading" if unsafe else f"is not plain data ({err})"
        raise CheckpointError(
            f"{path} {asks}, so it was not loaded (it could run code); if you trust where it comes from, "
            "pass --trust-checkpoint (trust=True)"
        ) from None
    except Exception as err:  # truncated or foreign file
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {err}); retrain or pick another file"
        ) from None


def load_weights(
    path: str | os.PathLike[str], map_location: Any = "cpu", trust: bool = False, **model_kwargs: Any
) -> PromptIR:
    """PromptIR in eval mode with the weights of one file: the official Lightning ``.ckpt``, a plain state
    dict, or our ``best.pt``.

    ``model_kwargs`` go to ``build_model`` (``preset="small"`` or ``PromptIR`` keywords; default: the official
    model, or for our own training checkpoints their stored ``model_config``). Names may carry the Lightning
    ``net.`` prefix; the official dead layers are dropped. Any other missing or unexpected name, or a shape
    mismatch, raises ``CheckpointError`` listing them. The file is read by :func:`read_checkpoint` (no code
    runs unless ``trust``).
    """
    path = Path(path)
    obj = read_checkpoint(path, trust=trust)
    state, config = _extract_state_dict(obj, path)
    settings = dict(model_kwargs or config or {})
    preset = settings.pop("preset", "full")
    model = build_model(preset, **settings)

    expected = model.state_dict()
    missing = [n for n in expected if n not in state]
    unexpected = [n for n in state if n not in expected]
    mismatched = [
        f"{n} {tuple(state[n].shape)} vs model {tuple(t.shape)}"
        for n, t in expected.items()
        if n in state and state[n].shape != t.shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing {len(missing)}: {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected {len(unexpected)}: {_listing(unexpected)}")
        if mismatched:
            problems.append(f"wrong shape {len(mismatched)}: {_listing(mismatched)}")
        raise CheckpointError(
            f"{path} does not fit PromptIR({model_kwargs or config or 'official defaults'}): "
            + "; ".join(problems)
            + ". Pass the model settings the checkpoint was trained with "
            "(e.g. dim=, num_blocks=, prompt_dims=)."
        )
    model.load_state_dict(state)
    return model.eval()


def load_model(
    source: str | os.PathLike[str] | Run,
    checkpoint: str | os.PathLike[str] = "best",
    map_location: str | torch.device = "cpu",
    preset: str | None = None,
    trust: bool = False,
) -> PromptIR:
    """The model to infer with (eval mode, on ``map_location``), from a run or a checkpoint file.

    ``source``: a run folder (a path, or a name under ``runs/``) or a :class:`Run`, whose ``checkpoint`` is
    ``"best"``, ``"last"`` or a file name inside it; or a checkpoint file: ours (``model`` + ``model_config``,
    EMA weights when the run used EMA), a plain state dict, or the official PromptIR Lightning ``model.ckpt``
    (the official architecture unless ``preset`` names another ``hw4lib.model.PRESETS`` entry).
    """
    if isinstance(source, Run):
        source = source.path
    file = next((c for c in (Path(source), paths.resolve(source)) if c.is_file()), None)
    if file is None:
        run_dir = find_run(source)
        if str(checkpoint) in ("best", "last"):
            candidates = [run_dir / f"{checkpoint}.pt"]
        else:  # a file: from the working folder, the repository root, or inside the run folder
            candidates = [Path(checkpoint), paths.resolve(checkpoint), run_dir / checkpoint]
        file = next((c for c in candidates if c.is_file()), None)
        if file is None:
            looked = ", ".join(paths.relative(c) for c in dict.fromkeys(candidates))
            raise FileNotFoundError(
                f"checkpoint {checkpoint} of {paths.relative(run_dir)} not found (looked at {looked}); train "
                "the run first (hw4lib.train.fit), or pick another checkpoint (best, last or a file)"
            )
    model = load_weights(file, trust=trust, **({} if preset is None else {"preset": preset}))
    return model.to(map_location).eval()


def prediction_tta(source: str | os.PathLike[str] | Run | None, tta: str | bool | None = "auto") -> str:
    """The self-ensemble to predict a run's checkpoint with: :func:`hw4lib.infer.resolve_tta` of ``tta`` (or,
    for ``"auto"``, of the run's own ``tta`` setting) and the run's ``augment``. A checkpoint without our
    config (the official release, trained with flips and rotations) counts as trained with ``"x8"``."""
    config: dict[str, Any] | None = None
    if isinstance(source, Run):
        config = source.config
    elif source is not None and tta == "auto":
        path = next((p for p in (Path(source), paths.resolve(source)) if p.exists()), None)
        if path is None:
            with contextlib.suppress(FileNotFoundError):
                path = find_run(source)
        if path is not None and path.is_dir() and (path / CONFIG).is_file():
            config = _read_json(path / CONFIG, path)
        elif path is not None and path.is_file():
            with contextlib.suppress(Exception):  # a foreign or official checkpoint: no config of ours
                config = read_checkpoint(path).get("config")
    if not config:
        return resolve_tta(tta, "x8")
    trained = TrainConfig.from_dict(dict(config), "config")
    return resolve_tta(trained.tta if tta == "auto" else tta, trained.augment)
