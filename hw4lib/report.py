"""The report: tables, figures and ``report/report.md`` built from training runs, with nothing pasted by hand.

Pipeline (``notebooks/report.ipynb`` calls these in order):

1. :func:`collect_runs` copies the small files of each run folder (``config.json``, ``history.csv``,
   ``metrics.json``) into a snapshot under ``report/run-data/<name>/`` and, where the run's checkpoint and
   data are at hand, evaluates it once on its validation images (``eval/per_image.csv``: per-image PSNR, SSIM
   and prompt weights; ``eval/*.png``: the images of the visual comparison). The snapshot is small and
   committed, so the report can be rebuilt (and tested) on a clone that has neither checkpoints nor data.
2. :func:`load_runs` reads run folders (or snapshots) with a clear message for missing or unfinished runs.
3. :func:`comparison_table` / :func:`save_table`, the ``plot_*`` functions, and :func:`write_report` /
   :func:`render_html` produce the deliverables.
"""

from __future__ import annotations

import glob
import html
import json
import math
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hw4lib import paths
from hw4lib.io import atomic_write, write_json_atomic, write_text_atomic

__all__ = [
    "ReportError",
    "Run",
    "REQUIRED_METRICS",
    "SNAPSHOT_DIR",
    "FIGURES_SUBDIR",
    "load_run",
    "load_runs",
    "collect_runs",
    "evaluate_run",
    "comparison_table",
    "hyperparameter_table",
    "paired_differences",
    "prompt_separation",
    "save_table",
    "save_figure",
    "plot_learning_curves",
    "plot_visual_grid",
    "plot_psnr_distribution",
    "plot_prompt_weights",
    "plot_prompt_projection",
    "plot_prompt_swap",
    "prompt_swap_table",
    "load_benchmarks",
    "collect_benchmarks",
    "load_transfer",
    "format_table",
    "to_markdown",
    "to_latex",
    "write_report",
    "render_html",
    "loss_label",
    "run_labels",
    "KINDS",
]

SNAPSHOT_DIR = "report/run-data"  # committed copies of the runs' small files and evaluations
FIGURES_SUBDIR = "report"  # figures/report/
REQUIRED_METRICS = (
    "best_epoch",
    "best_val_psnr",
    "best_val_psnr_rain",
    "best_val_psnr_snow",
    "best_val_ssim",
    "input_psnr",
    "params",
    "wall_seconds",
    "device",
    "loss",
)
SMALL_FILES = ("config.json", "history.csv", "metrics.json")
KINDS = ("rain", "snow")
KIND_COLORS = {"rain": "#1f77b4", "snow": "#d62728"}
_LOSS_LABELS = {
    "l1": "L1",
    "l1_ssim": "L1+SSIM",
    "mse": "MSE",
    "charbonnier": "Charbonnier",
    "ssim": "SSIM",
    "ms_ssim": "MS-SSIM",
    "edge": "Edge",
    "fft": "FFT",
}
# the seed solution of the course assignment (their numbers on the hidden test set, 25 epochs; not ours)
SEED_RESULTS = {"l1": 28.88, "l1_ssim": 29.34, "mse": 29.74}


class ReportError(ValueError):
    """A run the report cannot use; the message names the folder, what is missing and how to produce it."""


def loss_label(loss: str) -> str:
    """Display name of a loss spec: ``l1_ssim`` -> ``L1+SSIM``, ``l1+0.1*edge`` -> ``L1 + 0.1*Edge``."""
    if loss in _LOSS_LABELS:
        return _LOSS_LABELS[loss]
    parts = []
    for term in loss.split("+"):
        weight, _, name = term.rpartition("*")
        name = _LOSS_LABELS.get(name.strip(), name.strip())
        parts.append(f"{weight.strip()}*{name}" if weight else name)
    return " + ".join(parts)


# ----------------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One training run as the report sees it (a run folder or its snapshot)."""

    name: str
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: pd.DataFrame
    per_image: pd.DataFrame | None = None  # eval/per_image.csv, when the run was evaluated

    @property
    def loss(self) -> str:
        return str(self.metrics.get("loss") or self.config.get("loss") or self.name)

    @property
    def label(self) -> str:
        return loss_label(self.loss)

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def epochs(self) -> int:
        return int(len(self.history))


def _fix_hint(run_dir: Path) -> str:
    name = run_dir.name
    prefix, _, loss = name.rpartition("-")
    if prefix and loss:
        return (
            f"train it with `python -m hw4lib experiments --prefix {prefix} --losses {loss}` (or `make demo` "
            f"for the demo runs); an interrupted run resumes from its last.pt"
        )
    return "train it with `python -m hw4lib train` or notebooks/train.ipynb (run_name=" + repr(name) + ")"


def _rel(path: Path) -> str:
    return paths.relative(path)


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """Read ``metrics.json``, ``history.csv`` and ``config.json`` (optional) of one run folder.

    Raises :class:`ReportError` naming the folder, the missing file or keys, and the command that makes them.
    """
    run_dir = paths.resolve(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"run folder {_rel(run_dir)} does not exist; {_fix_hint(run_dir)}")
    metrics_path, history_path = run_dir / "metrics.json", run_dir / "history.csv"
    if not metrics_path.is_file():
        what = (
            "has history.csv but no metrics.json (the run did not finish)"
            if history_path.is_file()
            else ("has no metrics.json (the run never started or was not written there)")
        )
        raise ReportError(f"run folder {_rel(run_dir)} {what}; {_fix_hint(run_dir)}")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReportError(f"{_rel(metrics_path)} is not valid JSON ({err}); {_fix_hint(run_dir)}") from err
    missing = [key for key in REQUIRED_METRICS if key not in metrics]
    if missing:
        raise ReportError(
            f"{_rel(metrics_path)} lacks {', '.join(missing)} (a partial or older run); {_fix_hint(run_dir)}"
        )
    if metrics.get("complete", True) is False:
        raise ReportError(
            f"run folder {_rel(run_dir)} stopped after epoch {metrics.get('epochs_done', '?')} (metrics.json "
            f"says complete: false); {_fix_hint(run_dir)}"
        )
    if not history_path.is_file():
        raise ReportError(f"run folder {_rel(run_dir)} has no history.csv; {_fix_hint(run_dir)}")
    history = pd.read_csv(history_path)
    if history.empty:
        raise ReportError(f"{_rel(history_path)} has no epochs; {_fix_hint(run_dir)}")
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    per_image_path = run_dir / "eval" / "per_image.csv"
    per_image = pd.read_csv(per_image_path) if per_image_path.is_file() else None
    return Run(run_dir.name, run_dir, config, metrics, history, per_image)


def _looks_like_run(folder: Path) -> bool:
    """A folder a glob should match: it holds one of a run's files (others, e.g. bench/, are skipped)."""
    return folder.is_dir() and any((folder / name).is_file() for name in SMALL_FILES)


def _expand(runs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    items = [runs] if isinstance(runs, (str, os.PathLike)) else list(runs)
    found: list[Path] = []
    for item in items:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(paths.resolve(text))) if _looks_like_run(Path(p)))
            if not matches:
                raise ReportError(
                    f"no run folders match {text!r} (under {paths.repo_root()}); train them first, e.g. "
                    "`make demo` for runs/demo-*, or point the report at the committed snapshot "
                    f"'{SNAPSHOT_DIR}/*'"
                )
            found.extend(matches)
        else:
            found.append(paths.resolve(text))
    return list(dict.fromkeys(found))


def load_runs(runs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Run]:
    """Load several runs from a glob (``"runs/demo-*"``) or a list of folders, sorted by the glob's order.

    A glob skips ``.ipynb`` files and folders without ``metrics.json`` only if every match is such (then it
    raises); an unfinished run named explicitly or matched by a glob raises :class:`ReportError`.
    """
    folders = _expand(runs)
    if not folders:
        raise ReportError("no runs given; pass a glob like 'runs/demo-*' or a list of run folders")
    return [load_run(folder) for folder in folders]


# ----------------------------------------------------------------------------------------------- evaluation


def _split(run: Run, data_dir: str | os.PathLike[str] | None) -> tuple[list[Any], list[Any], list[Any]]:
    """The training engine's own split of the run's data set: all pairs, validation pairs, and the validation
    pairs training scored (``train.validation_split`` with the run's config)."""
    from hw4lib import train as htrain

    try:
        config = htrain.TrainConfig.from_dict(run.config, f"{_rel(run.path)}/config.json")
    except (TypeError, ValueError) as err:
        raise ReportError(f"cannot rebuild the split of {run.name}: {err}") from err
    root = paths.resolve(data_dir or run.config.get("data_dir") or paths.data_dir("demo"))
    if not root.is_dir():
        raise ReportError(
            f"evaluating {run.name} needs its validation images in {_rel(root)}, which does not exist; "
            "generate the demo data with `make demo-data`, or pass data_dir="
        )
    train_pairs, val, scored, _ = htrain.validation_split(config, root)
    return train_pairs + val, val, scored


def _load_model(run_dir: Path, checkpoint: str, device: str = "cpu") -> Any:
    from hw4lib import train as htrain

    return htrain.load_run_model(run_dir, checkpoint, map_location=device)


def _device(spec: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if spec == "auto" else spec


def _crop_box(degraded: np.ndarray, clean: np.ndarray, frac: float = 0.25) -> tuple[int, int, int]:
    """(top, left, size) of the square window where the degradation is strongest (same for every run)."""
    h, w = clean.shape[:2]
    size = max(8, int(round(min(h, w) * frac)))
    err = np.abs(degraded.astype(np.float32) - clean.astype(np.float32)).sum(axis=2)
    # box sums over every window through an integral image; ties go to the top-left-most window
    integral = np.pad(err, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    sums = (
        integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    )
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left), size


def evaluate_run(
    run: Run,
    out_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    checkpoint: str = "best",
    n_visual: int = 2,
    prompt_swap: bool = True,
    device: str = "auto",
) -> pd.DataFrame:
    """Restore every validation image with the run's model; write ``eval/per_image.csv`` and the visual PNGs.

    Per image: PSNR and SSIM of the restored and of the degraded image (against clean), and the softmax
    weights of each prompt-generation block (``prompt1_0`` ...). With ``prompt_swap``, each image is restored
    twice more with its prompt weights replaced by the mean weights of its own type (``psnr_own_mean``) and of
    the other type (``psnr_other_mean``), see :func:`prompt_swap_table`. For the visual comparison the
    ``n_visual`` most degraded validation images of each type (lowest input PSNR: a choice that depends on the
    data only, so every run shows the same images) are saved as ``<name>_{degraded,restored,clean}.png`` with
    the zoom box in ``visual.json``. The model sees each whole image once (no TTA), as in training validation.
    """
    import torch

    from hw4lib import data as hdata
    from hw4lib import metrics as hmetrics
    from hw4lib.io import save_png_atomic

    out = Path(out_dir) if out_dir is not None else run.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    device = _device(device)
    # first: a missing data set is the likelier, cheaper error
    all_pairs, val_all, pairs = _split(run, data_dir)
    model = _load_model(run.path, checkpoint, device)
    model.eval()
    if not pairs:
        raise ReportError(
            f"{run.name} has no validation images to evaluate; check the data set and val_fraction"
        )
    rows: list[dict[str, Any]] = []
    restored: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for pair in pairs:
            x, y = (
                hdata.to_tensor(hdata.load_image(p))[None].to(device) for p in (pair.degraded, pair.clean)
            )
            pred = model(x).float().clamp(0, 1)
            row: dict[str, Any] = {
                "name": pair.name,
                "kind": pair.kind,
                "psnr": float(hmetrics.psnr(pred, y)),
                "ssim": float(hmetrics.ssim(pred, y)),
                "input_psnr": float(hmetrics.psnr(x, y)),
                "input_ssim": float(hmetrics.ssim(x, y)),
            }
            for level, weights in sorted(getattr(model, "last_prompt_weights", {}).items()):
                for j, value in enumerate(weights[0].float().cpu().numpy().ravel()):
                    row[f"{level}_{j}"] = float(value)
            rows.append(row)
            restored[pair.name] = hdata.to_uint8(pred[0].cpu())
    table = pd.DataFrame(rows)
    if prompt_swap and _prompt_levels(table) and set(KINDS) <= set(table["kind"]):
        own, other = _swapped_psnr(model, pairs, table, device)
        table["psnr_own_mean"], table["psnr_other_mean"] = own, other
    visual: dict[str, Any] = {}
    by_name = {p.name: p for p in pairs}
    for kind in KINDS:
        chosen = table[table["kind"] == kind].sort_values(["input_psnr", "name"]).head(n_visual)
        for name in chosen["name"]:
            degraded, clean = hdata.load_image(by_name[name].degraded), hdata.load_image(by_name[name].clean)
            for tag, img in (("degraded", degraded), ("restored", restored[name]), ("clean", clean)):
                save_png_atomic(img, out / f"{name}_{tag}.png")
            top, left, size = _crop_box(degraded, clean)
            visual[name] = {"kind": kind, "top": top, "left": left, "size": size}
    with atomic_write(out / "per_image.csv", "w") as f:
        table.to_csv(f, index=False, float_format="%.8g")
    split = {"pairs": len(all_pairs), "train": len(all_pairs) - len(val_all), "val": len(val_all),
             "evaluated": len(pairs)}  # fmt: skip
    write_json_atomic({"checkpoint": checkpoint, "split": split, "images": visual}, out / "visual.json")
    run.per_image = table
    return table


def _prompt_linear(model: Any, level: str) -> Any:
    """The ``nn.Linear`` of prompt block ``level`` that produces the component logits (None if not found)."""
    import torch

    block = getattr(model, level, None)
    if block is None:
        return None
    linears = [m for m in block.modules() if isinstance(m, torch.nn.Linear)]
    return linears[0] if len(linears) == 1 else None


def _swapped_psnr(
    model: Any, pairs: Sequence[Any], table: pd.DataFrame, device: str = "cpu"
) -> tuple[list[float], list[float]]:
    """PSNR of each image restored with the mean prompt weights of its own type and of the other type.

    A forward hook on each prompt block's ``Linear`` replaces its logits by ``log(w)``, so the softmax that
    follows returns exactly the chosen weights ``w`` (the means, from ``table``, sum to 1).
    """
    import torch

    from hw4lib import data as hdata
    from hw4lib import metrics as hmetrics

    levels = _prompt_levels(table)
    means = {
        kind: {
            lvl: table.loc[table["kind"] == kind, cols].mean().to_numpy(float) for lvl, cols in levels.items()
        }
        for kind in KINDS
    }
    layers = {lvl: _prompt_linear(model, lvl) for lvl in levels}
    if any(layer is None for layer in layers.values()):
        nan = [float("nan")] * len(pairs)
        return nan, nan
    state: dict[str, str | None] = {"kind": None}

    def make_hook(level: str) -> Any:
        def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
            if state["kind"] is None:
                return None
            w = torch.tensor(means[state["kind"]][level].copy(), dtype=output.dtype, device=output.device)
            return torch.log(w.clamp_min(1e-12)).expand_as(output).clone()

        return hook

    handles = [layer.register_forward_hook(make_hook(lvl)) for lvl, layer in layers.items()]
    own: list[float] = []
    other: list[float] = []
    try:
        with torch.no_grad():
            for pair in pairs:
                x, y = (
                    hdata.to_tensor(hdata.load_image(p))[None].to(device) for p in (pair.degraded, pair.clean)
                )
                for kind, values in ((pair.kind, own), ("snow" if pair.kind == "rain" else "rain", other)):
                    state["kind"] = kind
                    values.append(float(hmetrics.psnr(model(x).float().clamp(0, 1), y)))
    finally:
        for handle in handles:
            handle.remove()
    return own, other


def prompt_swap_table(run: Run) -> pd.DataFrame | None:
    """Per-type mean PSNR: own prompt weights, own type's mean weights, the *other* type's mean weights.

    ``swap cost`` = other - own-type-mean: how much a rain image loses when the model is handed the prompt it
    uses for snow (and the reverse). A large cost means the prompts carry the degradation type and the decoder
    relies on them; near zero means the prompts are not what tells the two apart. ``None`` when the run's
    evaluation has no swap columns.
    """
    df = run.per_image
    if df is None or "psnr_other_mean" not in df.columns or df["psnr_other_mean"].isna().all():
        return None
    table = df.groupby("kind")[["psnr", "psnr_own_mean", "psnr_other_mean"]].mean()
    table.columns = ["own prompt", "own type mean", "other type mean"]
    table["swap cost (dB)"] = table["other type mean"] - table["own type mean"]
    table.index.name = "images"
    return table


def collect_runs(
    runs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    dest: str | os.PathLike[str] = SNAPSHOT_DIR,
    data_dir: str | os.PathLike[str] | None = None,
    n_visual: int = 2,
    checkpoint: str = "best",
    prune: bool = True,
    verbose: bool = True,
    device: str = "auto",
) -> list[Run]:
    """Snapshot runs into ``dest/<name>/`` (small files + evaluation); returns them loaded from the snapshot.

    A run that is already in ``dest`` is used as it is. A run with a checkpoint is (re-)evaluated on its
    validation images; one without keeps the evaluation its snapshot has, if any. With ``prune``, snapshots in
    ``dest`` that are not among ``runs`` are removed, so the report shows exactly the runs asked for.
    """
    dest_dir = paths.resolve(dest)
    sources = [load_run(folder) for folder in _expand(runs)]
    snapshots: list[Run] = []
    for run in sources:
        target = dest_dir / run.name
        if run.path.resolve() != target.resolve():
            target.mkdir(parents=True, exist_ok=True)
            for name in SMALL_FILES:
                if (run.path / name).is_file():
                    with atomic_write(target / name, "wb") as f:
                        f.write((run.path / name).read_bytes())
            if (run.path / f"{checkpoint}.pt").is_file():
                if verbose:
                    print(f"evaluating {run.name} ({checkpoint}.pt) on its validation images")
                if (target / "eval").is_dir():
                    shutil.rmtree(target / "eval")
                evaluate_run(
                    run,
                    target / "eval",
                    data_dir=data_dir,
                    checkpoint=checkpoint,
                    n_visual=n_visual,
                    device=device,
                )
            elif (run.path / "eval" / "per_image.csv").is_file():
                shutil.copytree(run.path / "eval", target / "eval", dirs_exist_ok=True)
            elif verbose:
                print(f"{run.name}: no {checkpoint}.pt, so no per-image evaluation or visual comparison")
        snapshots.append(load_run(target))
    if prune and dest_dir.is_dir():
        keep = {r.name for r in snapshots}
        for folder in sorted(dest_dir.iterdir()):
            if folder.is_dir() and folder.name not in keep and (folder / "metrics.json").is_file():
                shutil.rmtree(folder)
    return snapshots


# --------------------------------------------------------------------------------------------------- tables


def _history_at_best(run: Run) -> pd.Series | None:
    if "epoch" not in run.history.columns:
        return None
    rows = run.history[run.history["epoch"] == run.metrics["best_epoch"]]
    return rows.iloc[-1] if len(rows) else None


def _metric(run: Run, key: str) -> float:
    """``metrics[key]``, else history column ``key`` (minus ``best_``) at the best epoch, else NaN."""
    if key in run.metrics and run.metrics[key] is not None:
        return float(run.metrics[key])
    best = _history_at_best(run)
    column = key.removeprefix("best_")
    if best is not None and column in best.index and pd.notna(best[column]):
        return float(best[column])
    return float("nan")


def run_labels(runs: Sequence[Run]) -> list[str]:
    labels = [r.label for r in runs]
    return labels if len(set(labels)) == len(labels) else [r.name for r in runs]


TABLE_COLUMNS = [
    "PSNR (dB)",
    "PSNR rain",
    "PSNR snow",
    "SSIM",
    "SSIM rain",
    "SSIM snow",
    "gain (dB)",
    "best epoch",
    "epochs",
    "wall time (s)",
    "params",
]


def comparison_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Best validation PSNR/SSIM per run (overall, rain, snow), gain over input, epochs, wall time, params.

    The first row, ``input (no restoration)``, is the identity baseline on the same validation images. One row
    per run, labelled by its loss (or by run name when two runs share a loss).
    """
    if not runs:
        raise ReportError("comparison_table needs at least one run")
    inputs = np.array([float(r.metrics["input_psnr"]) for r in runs])
    if np.ptp(inputs) > 1e-3:
        warnings.warn(
            "the runs were validated on different images (input PSNR "
            f"{', '.join(f'{v:.3f}' for v in inputs)}); their scores are not comparable",
            stacklevel=2,
        )
    first = runs[0]
    base = {
        "PSNR (dB)": float(first.metrics["input_psnr"]),
        "PSNR rain": _metric(first, "input_psnr_rain"),
        "PSNR snow": _metric(first, "input_psnr_snow"),
        "SSIM": _metric(first, "input_ssim"),
        "SSIM rain": _metric(first, "input_ssim_rain"),
        "SSIM snow": _metric(first, "input_ssim_snow"),
        "gain (dB)": 0.0,
    }
    if first.per_image is not None:  # fill what metrics.json does not hold from the per-image evaluation
        groups = first.per_image.groupby("kind")
        for kind in KINDS:
            if math.isnan(base[f"PSNR {kind}"]) and kind in groups.groups:
                base[f"PSNR {kind}"] = float(groups.get_group(kind)["input_psnr"].mean())
            if math.isnan(base[f"SSIM {kind}"]) and kind in groups.groups:
                base[f"SSIM {kind}"] = float(groups.get_group(kind)["input_ssim"].mean())
        if math.isnan(base["SSIM"]):
            base["SSIM"] = float(first.per_image["input_ssim"].mean())
    rows = {"input (no restoration)": base}
    for label, run in zip(run_labels(runs), runs, strict=True):
        rows[label] = {
            "PSNR (dB)": float(run.metrics["best_val_psnr"]),
            "PSNR rain": float(run.metrics["best_val_psnr_rain"]),
            "PSNR snow": float(run.metrics["best_val_psnr_snow"]),
            "SSIM": float(run.metrics["best_val_ssim"]),
            "SSIM rain": _metric(run, "best_val_ssim_rain"),
            "SSIM snow": _metric(run, "best_val_ssim_snow"),
            "gain (dB)": float(run.metrics["best_val_psnr"]) - float(run.metrics["input_psnr"]),
            "best epoch": int(run.metrics["best_epoch"]),
            "epochs": run.epochs,
            "wall time (s)": float(run.metrics["wall_seconds"]),
            "params": int(run.metrics["params"]),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table = table.reindex(columns=TABLE_COLUMNS)
    table.index.name = "loss"
    for col in ("best epoch", "epochs", "params"):
        table[col] = table[col].astype("Int64")
    return table


_CONFIG_ROWS = [
    ("preset", "model preset"),
    ("loss", "loss"),
    ("epochs", "epochs"),
    ("batch_size", "batch size"),
    ("patch_size", "patch size (px, none = whole image)"),
    ("patches_per_image", "random crops per image per epoch"),
    ("augment", "random flips / rotations"),
    ("lr", "learning rate (AdamW)"),
    ("weight_decay", "weight decay"),
    ("warmup_epochs", "warm-up epochs (linear)"),
    ("min_lr", "final learning rate (cosine)"),
    ("grad_clip", "gradient clipping (norm)"),
    ("ema", "EMA decay of the weights (0: off)"),
    ("identity_init", "identity start (last conv zeroed)"),
    ("precision", "precision (training)"),
    ("val_fraction", "validation fraction"),
    ("seed", "seed"),
    ("max_train_steps", "max steps per epoch"),
]


def hyperparameter_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Training settings from each run's ``config.json``, one column per run (rows no run has dropped)."""
    data: dict[str, dict[str, Any]] = {}
    for label, run in zip(run_labels(runs), runs, strict=True):
        # device and precision as the run used them (config.amp is ignored on CPU, which trains in fp32)
        cfg = {**run.config, "device": run.metrics.get("device"), "precision": run.metrics.get("precision")}
        data[label] = {title: cfg.get(key) for key, title in [*_CONFIG_ROWS, ("device", "device")]}
    table = pd.DataFrame(data)
    table = table.dropna(how="all")
    table.index.name = "setting"
    return table.astype(object).where(table.notna(), "-")


def _format_cell(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    if column.startswith("SSIM"):
        return f"{value:.4f}"
    if column.startswith(("PSNR", "gain")):
        return f"{value:+.2f}" if column.startswith("gain") else f"{value:.2f}"
    if column == "wall time (s)":
        return f"{value:.0f}"
    if column == "params":
        return f"{int(value):,}"
    return str(value)


def format_table(df: pd.DataFrame) -> pd.DataFrame:
    """The same table with every cell a display string (PSNR 2 decimals, SSIM 4, params with separators)."""
    shown = df.copy().astype(object)
    for col in df.columns:
        shown[col] = [_format_cell(str(col), v) for v in df[col]]
    return shown


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "_": r"\_",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(df: pd.DataFrame) -> str:
    """A booktabs ``tabular`` (formatted cells), written by hand so no LaTeX templating package is needed."""
    shown = format_table(df)
    cols = [str(df.index.name or "")] + [str(c) for c in shown.columns]
    lines = [
        r"\begin{tabular}{l" + "r" * len(shown.columns) + "}",
        r"\toprule",
        " & ".join(_latex_escape(c) for c in cols) + r" \\",
        r"\midrule",
    ]
    for label, row in shown.iterrows():
        lines.append(" & ".join(_latex_escape(str(v)) for v in [label, *row.tolist()]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the formatted cells."""
    shown = format_table(df)
    shown.index.name = df.index.name or ""
    align = ["left"] + ["right"] * len(shown.columns)
    return shown.to_markdown(colalign=align, disable_numparse=True) + "\n"


def save_table(df: pd.DataFrame, stem: str, out_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Write ``<out_dir>/<stem>.md``, ``.tex`` (formatted), ``.csv``; default report/tables."""
    folder = paths.resolve(out_dir) if out_dir is not None else paths.report_dir("tables")
    folder.mkdir(parents=True, exist_ok=True)
    written = {
        "md": write_text_atomic(to_markdown(df), folder / f"{stem}.md"),
        "tex": write_text_atomic(to_latex(df), folder / f"{stem}.tex"),
    }
    with atomic_write(folder / f"{stem}.csv", "w") as f:
        df.to_csv(f, float_format="%.6g")
    written["csv"] = folder / f"{stem}.csv"
    return written


def paired_differences(runs: Sequence[Run], reference: int = 0) -> pd.DataFrame:
    """Per-image PSNR difference of each run against ``runs[reference]``: mean, standard error, images better.

    The same validation images are scored by every model, so the paired difference separates a real gap from
    image-to-image spread (the standard error is std / sqrt(n)). Needs the per-image evaluation.
    """
    ref = runs[reference]
    if ref.per_image is None:
        raise ReportError(
            f"{ref.name} has no eval/per_image.csv; build the report with its checkpoint at hand"
        )
    rows = {}
    labels = run_labels(runs)
    for label, run in zip(labels, runs, strict=True):
        if run is ref or run.per_image is None:
            continue
        merged = run.per_image.merge(ref.per_image, on="name", suffixes=("", "_ref"))
        diff = merged["psnr"] - merged["psnr_ref"]
        n = len(diff)
        rows[f"{label} - {labels[reference]}"] = {
            "mean (dB)": float(diff.mean()),
            "s.e. (dB)": float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
            "images better": int((diff > 0).sum()),
            "images": n,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


# -------------------------------------------------------------------------------------------------- prompts


def _prompt_levels(per_image: pd.DataFrame) -> dict[str, list[str]]:
    levels: dict[str, list[str]] = {}
    for col in per_image.columns:
        head, _, idx = col.rpartition("_")
        if head.startswith("prompt") and idx.isdigit():
            levels.setdefault(head, []).append(col)
    return {k: sorted(v, key=lambda c: int(c.rpartition("_")[2])) for k, v in sorted(levels.items())}


def _centroid_loo_accuracy(x: np.ndarray, kinds: np.ndarray) -> float:
    """Leave-one-out accuracy of a nearest-class-mean classifier (rain vs snow) on the rows of ``x``."""
    correct = 0
    for i in range(len(x)):
        mask = np.ones(len(x), bool)
        mask[i] = False
        dists = {}
        for kind in KINDS:
            sel = mask & (kinds == kind)
            if not sel.any():
                return float("nan")
            dists[kind] = float(np.sum((x[i] - x[sel].mean(0)) ** 2))
        correct += min(dists, key=dists.get) == kinds[i]
    return correct / len(x)


def prompt_separation(runs: Sequence[Run]) -> pd.DataFrame:
    """How differently each prompt level weights its components for rain and for snow.

    Per run and level: ``L1 gap`` = sum over components of |mean rain weight - mean snow weight| (0 = the
    level treats both types alike, 2 = disjoint components); ``separation`` = squared distance of class means
    divided by the mean within-class variance (a Fisher ratio); ``LOO acc`` = leave-one-out accuracy of a
    nearest-class-mean classifier on that level's weights (0.5 = chance).
    """
    rows = []
    for label, run in zip(run_labels(runs), runs, strict=True):
        if run.per_image is None:
            continue
        df = run.per_image
        kinds = df["kind"].to_numpy()
        levels = _prompt_levels(df)
        for level, cols in [*levels.items(), ("all", [c for cs in levels.values() for c in cs])]:
            if not cols:
                continue
            x = df[cols].to_numpy(float)
            means = {k: x[kinds == k].mean(0) for k in KINDS if (kinds == k).any()}
            if len(means) < 2:
                continue
            within = np.mean([x[kinds == k].var(0).sum() for k in KINDS])
            gap = float(np.sum((means["rain"] - means["snow"]) ** 2))
            rows.append(
                {
                    "run": label,
                    "level": level,
                    "L1 gap": float(np.abs(means["rain"] - means["snow"]).sum()),
                    "separation": gap / within if within > 0 else (0.0 if gap == 0 else float("inf")),
                    "LOO acc": _centroid_loo_accuracy(x, kinds),
                }
            )
    return pd.DataFrame(rows)


def _pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` on their first two principal components (numpy SVD); returns (coords, explained)."""
    centered = x - x.mean(0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    # fix each component's sign (largest |loading| positive) so the picture does not flip between machines
    signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    vt = vt * signs[:, None]
    var = s**2
    explained = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    coords = centered @ vt[:2].T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        explained = np.pad(explained, (0, 2 - len(explained)))
    return coords, explained[:2]


# -------------------------------------------------------------------------------------------------- figures


def save_figure(fig: Any, name: str, subdir: str = FIGURES_SUBDIR, dpi: int = 110) -> Path:
    """Save a figure as ``figures/<subdir>/<name>.png`` atomically (no version stamp: same bytes)."""
    path = paths.figures_dir(subdir) / f"{name}.png"
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path


def _col(history: pd.DataFrame, *names: str) -> str | None:
    return next((n for n in names if n in history.columns), None)


def plot_learning_curves(runs: Sequence[Run]) -> Any:
    """Overlaid curves: training loss (log scale, each in its own units), validation PSNR, PSNR per type."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, run) in enumerate(zip(run_labels(runs), runs, strict=True)):
        h, c = run.history, colors[i % len(colors)]
        x = h[_col(h, "epoch") or h.columns[0]]
        loss_col = _col(h, "train_loss", "loss")
        if loss_col:
            axes[0].plot(x, h[loss_col], color=c, marker="o", ms=3, label=label)
        psnr_col = _col(h, "val_psnr")
        if psnr_col:
            axes[1].plot(x, h[psnr_col], color=c, marker="o", ms=3, label=label)
            axes[1].plot(run.metrics["best_epoch"], run.metrics["best_val_psnr"], "*", color=c, ms=11)
        for kind, style in (("rain", "-"), ("snow", "--")):
            col = _col(h, f"val_psnr_{kind}")
            if col:
                axes[2].plot(x, h[col], style, color=c, label=f"{label} {kind}")
    base = float(runs[0].metrics["input_psnr"])
    for ax in axes[1:]:
        ax.axhline(base, color="gray", ls=":", lw=1.2, label="input (no restoration)")
    axes[0].set(title="training loss (each in its own units)", xlabel="epoch", yscale="log")
    axes[1].set(title="validation PSNR (star: best epoch)", xlabel="epoch", ylabel="dB")
    axes[2].set(title="validation PSNR per type (rain -, snow --)", xlabel="epoch", ylabel="dB")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _inset_corner(shape: tuple[int, ...], top: int, left: int, size: int) -> list[float]:
    """Axes-fraction bounds of a zoom inset in the image corner farthest from the zoomed box."""
    h, w = shape[:2]
    cy, cx = (top + size / 2) / h, (left + size / 2) / w  # box centre, 0..1 from the top left
    x0 = 0.0 if cx > 0.5 else 0.58
    y0 = 0.58 if cy > 0.5 else 0.0  # inset_axes counts y from the bottom, the image from the top
    return [x0, y0, 0.42, 0.42]


def _visual_images(runs: Sequence[Run], kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, box) of the visual-comparison images of ``kind`` that every evaluated run has."""
    common: dict[str, dict[str, Any]] | None = None
    for run in runs:
        meta_path = run.eval_dir / "visual.json"
        if not meta_path.is_file():
            return []
        images = {k: v for k, v in json.loads(meta_path.read_text())["images"].items() if v["kind"] == kind}
        common = images if common is None else {k: v for k, v in common.items() if k in images}
    return sorted((common or {}).items())


def plot_visual_grid(runs: Sequence[Run], kind: str) -> Any | None:
    """Rows: validation images of ``kind``; columns: degraded | one per run | clean, each with a zoomed inset.

    The inset magnifies the window where the degradation is strongest; titles give each image's PSNR.
    Returns ``None`` when the runs have no visual evaluation (no checkpoint was available).
    """
    import matplotlib.pyplot as plt

    images = _visual_images(runs, kind)
    if not images:
        return None
    labels = run_labels(runs)
    ncols = len(runs) + 2
    fig, axes = plt.subplots(
        len(images), ncols, figsize=(2.3 * ncols, 2.8 * len(images)), squeeze=False, layout="constrained"
    )
    for r, (name, box) in enumerate(images):
        ref = runs[0]
        row_pi = ref.per_image.set_index("name").loc[name] if ref.per_image is not None else None
        panels = [
            (
                "degraded",
                _read_png(ref.eval_dir / f"{name}_degraded.png"),
                None if row_pi is None else row_pi["input_psnr"],
            )
        ]
        for label, run in zip(labels, runs, strict=True):
            psnr = run.per_image.set_index("name").loc[name, "psnr"] if run.per_image is not None else None
            panels.append((label, _read_png(run.eval_dir / f"{name}_restored.png"), psnr))
        panels.append(("clean", _read_png(ref.eval_dir / f"{name}_clean.png"), None))
        top, left, size = box["top"], box["left"], box["size"]
        for c, (title, img, psnr) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title if psnr is None else f"{title}\n{psnr:.2f} dB", fontsize=9)
            inset = ax.inset_axes(_inset_corner(img.shape, top, left, size))
            inset.imshow(img[top : top + size, left : left + size], interpolation="nearest")
            inset.set_xticks([])
            inset.set_yticks([])
            for spine in inset.spines.values():
                spine.set_edgecolor("yellow")
            ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), size, size, fill=False, ec="yellow", lw=1))
        axes[r, 0].set_ylabel(name, fontsize=9)
    fig.suptitle(
        f"{kind}: degraded | restored by each loss | clean (inset: zoom on the yellow box)", fontsize=10
    )
    return fig


def plot_psnr_distribution(runs: Sequence[Run]) -> Any | None:
    """Per-image validation PSNR for the input and each run, one panel per degradation type (box + points)."""
    import matplotlib.pyplot as plt

    evaluated = [
        (label, r) for label, r in zip(run_labels(runs), runs, strict=True) if r.per_image is not None
    ]
    if not evaluated:
        return None
    fig, axes = plt.subplots(1, len(KINDS), figsize=(5.5 * len(KINDS), 3.8), sharey=True)
    rng = np.random.default_rng(0)  # fixed jitter: the same picture every time
    for ax, kind in zip(axes, KINDS, strict=True):
        first = evaluated[0][1].per_image
        series = [("input", first.loc[first["kind"] == kind, "input_psnr"].to_numpy())]
        series += [
            (label, r.per_image.loc[r.per_image["kind"] == kind, "psnr"].to_numpy()) for label, r in evaluated
        ]
        values = [s[1] for s in series]
        ax.boxplot(values, widths=0.5, showfliers=False)
        ax.set_xticks(range(1, len(series) + 1), [s[0] for s in series])
        for i, v in enumerate(values, 1):
            ax.plot(i + rng.uniform(-0.12, 0.12, len(v)), v, "o", ms=3, alpha=0.6, color=KIND_COLORS[kind])
        ax.set(title=f"{kind}: per-image validation PSNR ({len(values[0])} images)", ylabel="dB")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def plot_prompt_weights(runs: Sequence[Run]) -> Any | None:
    """Mean prompt-component weights per degradation type: rows = runs, columns = prompt blocks."""
    import matplotlib.pyplot as plt

    evaluated = [
        (label, r) for label, r in zip(run_labels(runs), runs, strict=True) if r.per_image is not None
    ]
    evaluated = [(label, r) for label, r in evaluated if _prompt_levels(r.per_image)]
    if not evaluated:
        return None
    levels = list(_prompt_levels(evaluated[0][1].per_image))
    fig, axes = plt.subplots(
        len(evaluated),
        len(levels),
        figsize=(3.6 * len(levels), 2.4 * len(evaluated)),
        squeeze=False,
        sharey=True,
    )
    for r, (label, run) in enumerate(evaluated):
        df = run.per_image
        for c, level in enumerate(levels):
            cols = _prompt_levels(df)[level]
            ax = axes[r, c]
            x = np.arange(len(cols))
            for k, kind in enumerate(KINDS):
                sel = df[df["kind"] == kind][cols]
                ax.bar(
                    x + (k - 0.5) * 0.4,
                    sel.mean(),
                    0.4,
                    yerr=sel.std(ddof=0),
                    capsize=2,
                    color=KIND_COLORS[kind],
                    label=kind,
                )
            ax.set_xticks(x, [str(i) for i in x])
            ax.set_title(f"{label}: {level}", fontsize=9)
            ax.axhline(1 / len(cols), color="gray", ls=":", lw=1)
            if c == 0:
                ax.set_ylabel("softmax weight")
            if r == len(evaluated) - 1:
                ax.set_xlabel("prompt component")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        "Prompt-generation weights, mean and std over validation images (dotted: uniform)", fontsize=10
    )
    fig.tight_layout()
    return fig


def plot_prompt_projection(runs: Sequence[Run]) -> Any | None:
    """2-D PCA of each image's prompt weights (all levels), coloured by rain/snow; one panel per run."""
    import matplotlib.pyplot as plt

    evaluated = [
        (label, r) for label, r in zip(run_labels(runs), runs, strict=True) if r.per_image is not None
    ]
    evaluated = [(label, r) for label, r in evaluated if _prompt_levels(r.per_image)]
    if not evaluated:
        return None
    fig, axes = plt.subplots(1, len(evaluated), figsize=(4.2 * len(evaluated), 3.8), squeeze=False)
    for ax, (label, run) in zip(axes[0], evaluated, strict=True):
        df = run.per_image
        cols = [c for cs in _prompt_levels(df).values() for c in cs]
        coords, explained = _pca_2d(df[cols].to_numpy(float))
        for kind in KINDS:
            sel = (df["kind"] == kind).to_numpy()
            ax.scatter(coords[sel, 0], coords[sel, 1], s=18, color=KIND_COLORS[kind], label=kind, alpha=0.8)
        acc = _centroid_loo_accuracy(df[cols].to_numpy(float), df["kind"].to_numpy())
        ax.set(
            title=f"{label}: nearest-mean accuracy {acc:.0%}",
            xlabel=f"PC1 ({explained[0]:.0%} of variance)",
            ylabel=f"PC2 ({explained[1]:.0%})",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Per-image prompt weights projected on two principal components", fontsize=10)
    fig.tight_layout()
    return fig


def plot_prompt_swap(tables: dict[str, pd.DataFrame]) -> Any | None:
    """Bars of :func:`prompt_swap_table` per run: PSNR with own prompt, own-type and other-type mean."""
    import matplotlib.pyplot as plt

    tables = {label: t for label, t in tables.items() if t is not None}
    if not tables:
        return None
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.4), squeeze=False, sharey=True)
    cols = ["own prompt", "own type mean", "other type mean"]
    values = np.concatenate([t[cols].to_numpy(float).ravel() for t in tables.values()])
    for ax, (label, table) in zip(axes[0], tables.items(), strict=True):
        x = np.arange(len(table.index))
        for i, col in enumerate(cols):
            ax.bar(x + (i - 1) * 0.27, table[col], 0.27, label=col)
        ax.set_xticks(x, [f"{k} images" for k in table.index])
        ax.set_ylim(float(values.min()) - 1.0, float(values.max()) + 0.5)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].set_ylabel("validation PSNR (dB)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Prompt weights swapped between rain and snow", fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------- benchmarks

BENCH_KEYS = (
    "preset",
    "budget_s",
    "val_psnr",
    "val_psnr_tta",
    "val_psnr_tta_hflip",
    "val_ssim",
    "input_psnr",
    "steps_per_s",
    "peak_mem_mb",
)


def _load_result_files(
    pattern: str, required: str, what: str, row: Callable[[dict[str, Any]], dict[str, Any]]
) -> pd.DataFrame | None:
    """One row per JSON file matching ``pattern`` (index: the file stem), or ``None`` when there is none.

    Files that do not parse or lack the ``required`` key are skipped with a warning naming them.
    """
    rows = {}
    for path in sorted(glob.glob(str(paths.resolve(pattern)))):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            warnings.warn(f"skipping {what} file {path}: {err}", stacklevel=3)
            continue
        if not isinstance(data, dict) or required not in data:
            warnings.warn(f"skipping {what} file {path}: no {required} key", stacklevel=3)
            continue
        rows[Path(path).stem] = row(data)
    if not rows:
        return None
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "benchmark"
    return table


def load_benchmarks(pattern: str = f"{SNAPSHOT_DIR}/bench/bench-rain100l-*.json") -> pd.DataFrame | None:
    """Real-data benchmark results (``bench-rain100l-*.json``: preset, budget, PSNR with and without TTA ...).

    Returns one row per file (index: the file stem) or ``None`` when there is none. Files that do not parse or
    lack ``val_psnr`` are skipped with a warning naming them.
    """

    def row(data: dict[str, Any]) -> dict[str, Any]:
        extra = {key: data[key] for key in ("n_val", "device") if key in data}
        return {key: data.get(key) for key in BENCH_KEYS} | extra

    return _load_result_files(pattern, "val_psnr", "benchmark", row)


TRANSFER_KEYS = (
    "preset", "budget_s", "input_psnr", "real_psnr", "gain_db", "tta_images", "input_psnr_on_tta_subset",
    "real_psnr_tta", "real_psnr_tta_hflip", "steps_per_s", "n_real", "device",
)  # fmt: skip


def load_transfer(pattern: str = f"{SNAPSHOT_DIR}/bench/bench-transfer*.json") -> pd.DataFrame | None:
    """Synthetic-to-real transfer results (``benchmarks/transfer.py``): one row per file, or ``None``.

    Files that do not parse or lack ``real_psnr`` are skipped with a warning naming them.
    """

    def row(data: dict[str, Any]) -> dict[str, Any]:
        steps = (data.get("training") or {}).get("steps")
        return {key: data.get(key) for key in TRANSFER_KEYS} | {"steps": steps}

    return _load_result_files(pattern, "real_psnr", "transfer", row)


def _cell(value: Any, spec: str = "{:.2f}") -> str:
    """A table cell: ``spec`` applied to ``value``, or "-" when it is missing (None or NaN)."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return "-" if missing else spec.format(value)


def _transfer_markdown(table: pd.DataFrame) -> str:
    rows = []
    for _, r in table.iterrows():
        base = r.get("input_psnr_on_tta_subset")  # TTA gains are over the input of the TTA subset
        gain = {
            key: None if r.get(key) is None or base is None else r[key] - base
            for key in ("real_psnr_tta", "real_psnr_tta_hflip")
        }
        rows.append({
            "preset": r["preset"], "budget (s)": _cell(r["budget_s"], "{:.0f}"),
            "steps": _cell(r["steps"], "{:.0f}"),
            "real pairs": _cell(r["n_real"], "{:.0f}"), "input PSNR": _cell(r["input_psnr"]),
            "PSNR": _cell(r["real_psnr"]), "gain (dB)": _cell(r["gain_db"], "{:+.2f}"),
            "TTA (8) gain": _cell(gain["real_psnr_tta"], "{:+.2f}"),
            "mirror TTA gain": _cell(gain["real_psnr_tta_hflip"], "{:+.2f}"),
            "TTA pairs": _cell(r["tta_images"], "{:.0f}"), "device": r["device"] or "-",
        })  # fmt: skip
    shown = pd.DataFrame(rows, index=table.index)
    shown.index.name = "result"
    return shown.to_markdown(disable_numparse=True, colalign=["left"] + ["right"] * len(shown.columns))


def _benchmark_markdown(table: pd.DataFrame) -> str:
    names = {
        "preset": "preset", "budget_s": "budget (s)", "input_psnr": "input PSNR", "val_psnr": "PSNR",
        "val_psnr_tta": "PSNR + TTA", "val_psnr_tta_hflip": "PSNR + mirror",
        "val_ssim": "SSIM", "steps_per_s": "steps/s", "peak_mem_mb": "peak MiB",
        "n_val": "test pairs", "device": "device",
    }  # fmt: skip
    fmt = {"budget_s": "{:.0f}", "val_ssim": "{:.4f}", "steps_per_s": "{:.2f}", "peak_mem_mb": "{:.0f}"}
    shown = pd.DataFrame(index=table.index)
    for key, title in names.items():
        if key in table.columns:
            spec = fmt.get(key, "{:.2f}" if "psnr" in key else "{}")
            shown[title] = [_cell(v, spec) for v in table[key]]
    shown.index.name = "result"
    return shown.to_markdown(disable_numparse=True, colalign=["left"] + ["right"] * len(shown.columns))


def _tta_sentence(table: pd.DataFrame, plain: str, tta: str, mirror: str) -> list[str]:
    """What the 8-way self-ensemble and the mirror alone did to PSNR (dB, mean over rows that have both)."""
    if tta not in table.columns or mirror not in table.columns:
        return []
    rows = table.dropna(subset=[plain, tta, mirror])
    if rows.empty:
        return []
    d8 = float((rows[tta] - rows[plain]).mean())
    dm = float((rows[mirror] - rows[plain]).mean())
    if d8 < 0:
        why = (
            f"The 8-way flip/rotate self-ensemble changes PSNR by {d8:+.2f} dB on average here: rain "
            "streaks have a direction, and rotated by 90 degrees they look like nothing in the training "
            "data (these runs train without rotations), so the rotated passes restore badly. The left-right "
            f"mirror alone keeps the direction and changes PSNR by {dm:+.2f} dB: for rain, mirror-only TTA "
            "(`tta=\"hflip\"`, `predict --tta hflip`) is the safe choice."
        )
    else:
        why = (
            f"The 8-way flip/rotate self-ensemble changes PSNR by {d8:+.2f} dB on average, the left-right "
            f"mirror alone by {dm:+.2f} dB."
        )
    return [why, ""]


def collect_benchmarks(
    pattern: str = "runs/bench-*.json", dest: str = f"{SNAPSHOT_DIR}/bench"
) -> list[Path]:
    """Copy benchmark JSON files matching ``pattern`` into the snapshot (kept when none match)."""
    copied = []
    for path in sorted(glob.glob(str(paths.resolve(pattern)))):
        target = paths.resolve(dest) / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, "wb") as f:
            f.write(Path(path).read_bytes())
        copied.append(target)
    return copied


# --------------------------------------------------------------------------------------------------- report


def _fmt(value: Any, nd: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{nd}f}"


def _link(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(paths.resolve(path), out_dir)).as_posix()


def _analysis(runs: Sequence[Run], table: pd.DataFrame, paired: pd.DataFrame | None) -> list[str]:
    """Sentences about the loss comparison, computed from the table (no hand-written numbers)."""
    labels = run_labels(runs)
    scores = {label: float(table.loc[label, "PSNR (dB)"]) for label in labels}
    order = sorted(scores, key=scores.get, reverse=True)
    base = float(table.iloc[0]["PSNR (dB)"])
    out = []
    ranking = " > ".join(f"{label} ({scores[label]:.2f} dB)" for label in order)
    out.append(
        f"Ranking by best validation PSNR: {ranking}. Every model is compared with the degraded input itself "
        f"({base:.2f} dB): the gains are "
        + ", ".join(f"{label} {scores[label] - base:+.2f} dB" for label in labels)
        + "."
    )
    spread = max(scores.values()) - min(scores.values())
    if paired is not None and not paired.empty:
        parts = []
        for idx, row in paired.iterrows():
            parts.append(
                f"{idx}: {row['mean (dB)']:+.2f} ± {row['s.e. (dB)']:.2f} dB "
                f"(better on {int(row['images better'])} of {int(row['images'])} images)"
            )
        significant = [
            idx
            for idx, row in paired.iterrows()
            if pd.notna(row["s.e. (dB)"]) and abs(row["mean (dB)"]) > 2 * row["s.e. (dB)"]
        ]
        out.append(
            "Paired per-image differences (mean ± standard error over the same validation images): "
            + "; ".join(parts)
            + ". "
            + (
                f"Differences larger than two standard errors: {', '.join(significant)}."
                if significant
                else "None of the differences exceeds two standard errors: at this scale the losses are not "
                "distinguishable, and the ranking above should not be read as a verdict."
            )
        )
    else:
        out.append(f"The variants are {spread:.2f} dB apart (no per-image evaluation to test that gap).")
    per_type = []
    for kind in KINDS:
        col = f"PSNR {kind}"
        best = max(labels, key=lambda lbl, c=col: table.loc[lbl, c])
        per_type.append(
            f"on {kind} {best} ({table.loc[best, col]:.2f} dB, input {_fmt(table.iloc[0][col])} dB)"
        )
    out.append("Best per degradation type: " + "; ".join(per_type) + ".")
    seed_losses = [r.loss for r in runs if r.loss in SEED_RESULTS]
    if len(seed_losses) >= 2:
        seed_order = sorted(seed_losses, key=SEED_RESULTS.get, reverse=True)
        ours = [
            r.loss
            for r in sorted(
                (r for r in runs if r.loss in SEED_RESULTS),
                key=lambda r: float(r.metrics["best_val_psnr"]),
                reverse=True,
            )
        ]
        agree = "the same order as" if ours == seed_order else "a different order from"
        out.append(
            "For context, the seed solution of the assignment (their runs, not ours: full PromptIR, 25 "
            "epochs on the course data, scored on the hidden test set) reported "
            + ", ".join(f"{loss_label(k)} {SEED_RESULTS[k]:.2f} dB" for k in ("l1", "l1_ssim", "mse"))
            + f"; our runs give {agree} theirs. Their gaps "
            f"({SEED_RESULTS['l1_ssim'] - SEED_RESULTS['l1']:.2f} and "
            f"{SEED_RESULTS['mse'] - SEED_RESULTS['l1']:.2f} dB over L1) come from single runs too, "
            "so neither ranking is settled without repeated seeds."
        )
    return out


def write_report(
    runs: Sequence[Run],
    figures: dict[str, Path | None],
    out_dir: str | os.PathLike[str] | None = None,
    paired: pd.DataFrame | None = None,
    separation: pd.DataFrame | None = None,
    swaps: dict[str, pd.DataFrame | None] | None = None,
    benchmarks: pd.DataFrame | None = None,
    data_name: str | None = None,
    transfer: pd.DataFrame | None = None,
) -> Path:
    """Write ``report.md`` (the seed solution's outline), every number and figure from ``runs``.

    ``figures`` maps keys (``curves``, ``visual_rain``, ``visual_snow``, ``psnr``, ``prompt_weights``,
    ``prompt_pca``, ``prompt_swap``) to saved PNGs; missing ones leave out their paragraph.
    """
    out = paths.resolve(out_dir) if out_dir is not None else paths.report_dir()
    out.mkdir(parents=True, exist_ok=True)
    table = comparison_table(runs)
    hyper = hyperparameter_table(runs)
    first = runs[0]
    cfg = first.config
    labels = run_labels(runs)
    data_name = data_name or str(cfg.get("data_dir", "the data set"))
    counts = first.per_image["kind"].value_counts().to_dict() if first.per_image is not None else {}
    visual_meta = first.eval_dir / "visual.json"
    split_info = json.loads(visual_meta.read_text()).get("split", {}) if visual_meta.is_file() else {}

    numbers = {"figure": 0, "section4": 0}

    def fig(key: str, caption: str) -> list[str]:
        path = figures.get(key)
        if not path:
            return []
        numbers["figure"] += 1
        caption = f"Figure {numbers['figure']}: {caption}"
        return [f"![{caption}]({_link(path, out)})", "", f"*{caption}*", ""]

    def section(title: str) -> str:
        numbers["section4"] += 1
        return f"### 4.{numbers['section4']} {title}"

    md: list[str] = []
    add = md.extend
    add(
        [
            "# Rain and snow removal with PromptIR: a loss-function study",
            "",
            f"*Generated by `notebooks/report.ipynb` from the runs {', '.join(f'`{r.name}`' for r in runs)} "
            f"on `{data_name}`. Every number, table and figure below is read from those runs; rebuild with "
            "`make report` (or `make demo` to retrain them first).*",
            "",
            "## 1. Introduction",
            "",
            "Photos taken in bad weather carry rain streaks or snowflakes over the scene. The task of the "
            "course assignment is to restore the clean photo from a degraded one, for both degradations with "
            "a single model that is not told which one it sees, and it is scored by PSNR against the clean "
            "image. We use PromptIR (Potlapalli et al., 2023), an all-in-one restoration network whose "
            "decoder asks learned *prompts* to encode what kind of degradation is present. This report "
            "trains the same model with three loss functions (L1, L1+SSIM, MSE), the experiment of the "
            "assignment's seed solution, and also looks inside the model at what its prompts learned.",
            "",
            "## 2. Method",
            "",
            "### 2.1 Data pre-processing",
            "",
        ]
    )
    fraction = f"{float(cfg['val_fraction']):.0%}" if "val_fraction" in cfg else "a fixed fraction"
    by_kind = f" ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))})" if counts else ""
    seed = cfg.get("seed", 0)
    if split_info:
        capped = split_info.get("evaluated", split_info["val"]) < split_info["val"]
        held_out = (
            f"Of the {split_info['pairs']} pairs, {fraction} of each type (seed {seed}) is held out: "
            f"{split_info['val']} validation pairs{'' if capped else by_kind} and {split_info['train']} "
            "training pairs"
        )
        if capped:
            held_out += (
                f"; {split_info['evaluated']} of the validation pairs{by_kind}, balanced by type, are scored"
            )
    else:
        held_out = f"{fraction} of the pairs of each type (seed {seed}) is held out for validation"
    patch = cfg.get("patch_size")
    md.append(
        f"Pairs of degraded and clean images are read from `{data_name}` (course layout: "
        "`train/degraded/{rain,snow}-N.png` with `train/clean/{rain,snow}_clean-N.png`). "
        + held_out
        + ", the same for every variant. Pixels are scaled to [0, 1]; "
        + (f"training uses random {patch}x{patch} crops" if patch else "training uses whole images")
        + (
            f" ({cfg['patches_per_image']} per image per epoch)"
            if cfg.get("patches_per_image", 1) not in (1, None)
            else ""
        )
        + (
            " with random flips and 90-degree rotations applied identically to both images of a pair"
            if cfg.get("augment", True)
            else ""
        )
        + ". Validation uses whole images."
    )
    arch = first.metrics.get("model_config") or {}
    alpha = float(cfg.get("alpha", 0.84))
    md += [
        "",
        "### 2.2 Model architecture",
        "",
        "PromptIR is a four-level U-Net of Restormer transformer blocks: each block is multi-head transposed "
        "attention across channels (MDTA) followed by a gated depthwise-convolution feed-forward network "
        "(GDFN). At the bottleneck and the two decoder levels below the top, a *prompt-generation block* "
        "pools the features, turns them into softmax weights over a small set of learned prompt components, "
        "and adds the weighted prompt to the features through a further transformer block (the "
        "prompt-interaction block). The output is added to the input image (global residual), so the network "
        "learns the correction.",
        "",
        f"The runs use the `{cfg.get('preset', 'n/a')}` preset"
        + (f" ({', '.join(f'{k}={v}' for k, v in arch.items() if k != 'preset')})" if arch else "")
        + f": {int(first.metrics['params']):,} trainable parameters (the official full model has 35.4 M).",
        "",
        "### 2.3 Hyperparameters",
        "",
        to_markdown(hyper).rstrip(),
        "",
        "## 3. Loss-function experiment",
        "",
        "All variants share the data split, the model, the seed and the schedule; only the training loss "
        "changes: **L1** = mean |x̂ - x|; **MSE** = mean (x̂ - x)², the loss whose minimum maximises PSNR; "
        f"**L1+SSIM** = {alpha:g} (1 - SSIM) + {1 - alpha:g} L1 (Zhao et al., 2017), which adds a structural "
        "term. Each model is scored at its best validation epoch.",
        "",
        to_markdown(table).rstrip(),
        "",
        "*Table 1: best validation PSNR (dB) and SSIM, overall and per degradation type; the first row is "
        "the degraded input scored against the clean image (what doing nothing gets). Also in "
        "`report/tables/loss_comparison.{md,tex,csv}`.*",
        "",
        "### Analysis",
        "",
    ]
    for sentence in _analysis(runs, table, paired):
        md += [sentence, ""]
    md += [
        "## 4. Results",
        "",
        section("Learning curves"),
        "",
    ]
    curve_notes = []
    for label, run in zip(labels, runs, strict=True):
        h = run.history
        last = float(h["val_psnr"].iloc[-1]) if "val_psnr" in h.columns else float("nan")
        curve_notes.append(
            f"{label} peaks at epoch {run.metrics['best_epoch']} of {run.epochs} ({_fmt(last)} dB at the "
            "last epoch)"
        )
    md.append(
        "; ".join(curve_notes) + ". A best epoch at the very end means the model was still improving when "
        "training stopped, so more epochs would help."
    )
    md.append("")
    md += fig("curves", "Training loss and validation PSNR per epoch, all variants overlaid.")
    md += [section("Visual comparisons"), ""]
    if figures.get("visual_rain") or figures.get("visual_snow"):
        md += [
            "The same validation images restored by each variant: the most degraded ones of each type "
            "(lowest input PSNR), with the window of strongest degradation magnified.",
            "",
        ]
        md += fig("visual_rain", f"Rain: degraded | {' | '.join(labels)} | clean.")
        md += fig("visual_snow", f"Snow: degraded | {' | '.join(labels)} | clean.")
    else:
        md += ["(No visual comparison: the checkpoints were not available when this report was built.)", ""]
    if figures.get("psnr"):
        md += [section("Per-image PSNR"), ""]
        improved = []
        for label, run in zip(labels, runs, strict=True):
            if run.per_image is not None:
                pi = run.per_image
                improved.append(f"{label} improves {int((pi['psnr'] > pi['input_psnr']).sum())} of {len(pi)}")
        md += [
            "Averages hide the spread: " + "; ".join(improved) + " validation images over their input.",
            "",
        ]
        md += fig("psnr", "Per-image validation PSNR by degradation type (box: quartiles).")
    has_separation = separation is not None and not separation.empty
    swaps = {k: v for k, v in (swaps or {}).items() if v is not None}
    if figures.get("prompt_weights") or figures.get("prompt_pca") or has_separation or swaps:
        md += [
            section("What the prompts learned"),
            "",
            "Each prompt block mixes its learned components with softmax weights computed from the image. If "
            "the prompts encode the degradation type, rain and snow images should get different weights. The "
            "figures below show the mean weights per type at each level, and every image's weights (all "
            "levels concatenated) projected on two principal components.",
            "",
        ]
        if has_separation:
            sep = separation.copy()
            sep["L1 gap"] = sep["L1 gap"].map(lambda v: f"{v:.2f}")
            sep["separation"] = sep["separation"].map(lambda v: f"{v:.2f}")
            sep["LOO acc"] = sep["LOO acc"].map(lambda v: f"{v:.0%}")
            sep = sep.rename(columns={"LOO acc": "LOO accuracy"})
            md += [
                sep.to_markdown(
                    index=False, disable_numparse=True, colalign=("left", "left") + ("right",) * 3
                )
            ]
            md += [""]
            md += [
                "*Table 2: per level, the L1 distance between the mean rain and mean snow weights (0: same "
                "weights, 2: disjoint), the Fisher separation (squared gap of the means over the within-type "
                "variance), and the leave-one-out accuracy of telling rain from snow by the nearer mean (50% "
                "is chance).*",
                "",
            ]
            total = separation[separation["level"] == "all"]
            if not total.empty:
                best = total.loc[total["LOO acc"].idxmax()]
                acc = float(best["LOO acc"])
                verdict = (
                    "the model has learned, without being told, which degradation it is looking at."
                    if acc >= 0.9
                    else "the prompts partly encode the degradation type."
                    if acc >= 0.7
                    else "at this training scale the prompts do not (yet) encode the degradation type."
                )
                md += [
                    "Classifying each validation image as rain or snow by the nearer mean of its prompt "
                    f"weights (all levels, leave-one-out) is right for {acc:.0%} of them at best "
                    f"({best['run']}; chance is 50%): {verdict}",
                    "",
                ]
        md += fig("prompt_weights", "Mean prompt weights per degradation type at each prompt block.")
        md += fig("prompt_pca", "Per-image prompt weights, first two principal components.")
        if swaps:
            costs = "; ".join(
                f"{label}: "
                + ", ".join(f"{k} images {round(v, 2) + 0.0:+.2f} dB" for k, v in t["swap cost (dB)"].items())
                for label, t in swaps.items()
            )
            worst = min(float(t["swap cost (dB)"].min()) for t in swaps.values())
            md += [
                "Swapping the prompts: each validation image is restored once with the mean prompt weights "
                "of its own type and once with those of the other type (a hook sets the softmax output). The "
                f"change in PSNR caused by the wrong type's prompt is {costs}. "
                + (
                    "Handing the model the other type's prompt costs clearly more than the spread between "
                    "variants: the decoder uses the prompt to decide how to restore."
                    if worst < -0.3
                    else "The cost is small: at this training scale the decoder's output hardly depends on "
                    "which type's prompt it gets."
                ),
                "",
            ]
            md += fig("prompt_swap", "Validation PSNR with own and swapped prompt weights.")
    if benchmarks is not None and not benchmarks.empty:
        md += [
            section("Real data: Rain100L"),
            "",
            "The same code trained on real pairs: Rain100L (photographs with rendered rain), split 80/20, "
            "each preset trained for a fixed wall-clock budget (`benchmarks/rain100l_budget.py`) and scored "
            "on the held-out pairs at full size: plain, with the 8x flip/rotate self-ensemble (TTA), and "
            "with the left-right mirror alone. "
            "For scale: PromptIR trained to convergence on the full Rain100L reaches 37.04 dB (paper).",
            "",
            _benchmark_markdown(benchmarks),
            "",
        ]
        md += _tta_sentence(benchmarks, "val_psnr", "val_psnr_tta", "val_psnr_tta_hflip")
    if transfer is not None and not transfer.empty:
        best = transfer.loc[transfer["gain_db"].astype(float).idxmax()]
        md += [
            section("Synthetic to real: how realistic is the demo rain?"),
            "",
            "A model trained only on the demo set's synthetic rain (`benchmarks/transfer.py`, fixed "
            "wall-clock budget) and scored on all real Rain100L pairs, which it never saw. The gain over the "
            "rainy input measures how much of what it learned on synthetic streaks carries over to real "
            "rendered rain; TTA is scored on an evenly spaced subset (its input PSNR on those pairs is the "
            "baseline of its gain).",
            "",
            _transfer_markdown(transfer),
            "",
            f"The largest transfer gain is {float(best['gain_db']):+.2f} dB ({best['preset']} preset): "
            + (
                "the synthetic streaks teach a lasting part of real deraining."
                if float(best["gain_db"]) >= 2
                else "well below what training on real pairs gives in the same budget (table above), so "
                "the synthetic rain still differs from Rain100L's in ways the model relies on."
            ),
            "",
        ]
    md += [
        "## 5. Reproducing this report",
        "",
        "```bash",
        "make demo     # demo data, the three variants (papermill runs of notebooks/train.ipynb), this "
        "report",
        "make report   # this report only, from existing runs",
        "```",
        "",
        "## References",
        "",
        "1. V. Potlapalli, S. W. Zamir, S. Khan, F. S. Khan. *PromptIR: Prompting for All-in-One Blind Image "
        "Restoration*. NeurIPS 2023. arXiv:2306.13090.",
        "2. S. W. Zamir, A. Arora, S. Khan, M. Hayat, F. S. Khan, M.-H. Yang. *Restormer: Efficient "
        "Transformer for High-Resolution Image Restoration*. CVPR 2022.",
        "3. H. Zhao, O. Gallo, I. Frosio, J. Kautz. *Loss Functions for Image Restoration with Neural "
        "Networks*. IEEE TCI 2017.",
        "4. Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli. *Image Quality Assessment: From Error "
        "Visibility to Structural Similarity*. IEEE TIP 2004.",
        "5. I. Loshchilov, F. Hutter. *Decoupled Weight Decay Regularization* (AdamW). ICLR 2019; *SGDR: "
        "Stochastic Gradient Descent with Warm Restarts* (cosine schedule). ICLR 2017.",
        "6. The course assignment's seed solution (loss study: L1 28.88, L1+SSIM 29.34, MSE 29.74 dB on the "
        "hidden test set), quoted for context only.",
        "",
    ]
    return write_text_atomic("\n".join(md), out / "report.md")


_HTML_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 980px;
       margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; }
img { max-width: 100%; }
code, pre { background: #f6f8fa; }
pre { padding: 0.6em; overflow-x: auto; }
"""


def render_html(md_path: str | os.PathLike[str], out_path: str | os.PathLike[str] | None = None) -> Path:
    """Render ``report.md`` to a standalone ``report.html`` beside it (mistune, which nbconvert uses)."""
    import mistune

    md_path = paths.resolve(md_path)
    text = md_path.read_text(encoding="utf-8")
    markdown = mistune.create_markdown(plugins=["table"])
    body = markdown(text)
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), "Report")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
    target = Path(out_path) if out_path is not None else md_path.with_suffix(".html")
    return write_text_atomic(page, target)
