"""Probing a trained model: per-image evaluation, the prompt weights it chooses, and what its prompts do.

:func:`evaluate_run` restores every validation image of a run with its checkpoint (through the one
restore-and-score path of ``hw4lib.scoring``) and writes ``eval/per_image.csv``: PSNR/SSIM of the output and
of the input, the softmax weights of each prompt-generation block, and the PSNR with the prompts changed
(the columns ``prompts.ABLATIONS`` names): the prompt weights replaced by the mean weights of the image's own
type and of the other type (a swap), by uniform weights, by one-hot weights on each component, and the prompt
branch zeroed.
It also records where each restored image's remaining error sits (``errors.error_shares``: on edges, on
the streaks and flakes, in a veil, in flat regions), and saves the images of the report's visual comparison
and of each run's worst cases, in the layout of ``images`` (a restored image beside the table, the clean and
degraded ones in a folder the runs of a snapshot share). The report reads those files; it never needs the
checkpoint again.

Every change to the prompts is a forward hook on the model (removed afterwards), and every restoration goes
through ``score_model``, so an ablated PSNR differs from the plain one only by what the hook changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hw4lib import paths, runs
from hw4lib.data import KINDS, Pair, load_image, most_degraded_window, to_uint8
from hw4lib.device import resolve_device
from hw4lib.paths import atomic_write, save_png_atomic, write_json_atomic
from hw4lib.runs import Run
from hw4lib.scoring import Sample, samples_from_pairs, score_model
from hw4lib.study.errors import error_shares
from hw4lib.study.prompts import prompt_levels
from hw4lib.study.tables import ReportError

__all__ = ["evaluate_run", "validation_pairs", "zoom_box"]

VISUAL_ZOOM = 0.25  # side of the magnified window, as a share of the image's shorter side


def validation_pairs(
    run: Run, data_dir: str | os.PathLike[str] | None = None
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """The training engine's own split of the run's data set: all pairs, validation pairs, and the validation
    pairs training scored (``TrainConfig.split``)."""
    try:
        config = run.train_config
    except (TypeError, ValueError) as err:
        raise ReportError(f"cannot rebuild the split of {run.name}: {err}") from err
    root = paths.resolve(data_dir or run.config.get("data_dir") or paths.data_dir("demo"))
    if not root.is_dir():
        raise ReportError(
            f"evaluating {run.name} needs its validation images in {paths.relative(root)}, which does not "
            "exist; generate the demo data with `make demo-data`, or pass data_dir="
        )
    train_pairs, val, scored, _ = config.split(root)
    return train_pairs + val, val, scored


def zoom_box(degraded: np.ndarray, clean: np.ndarray, frac: float = VISUAL_ZOOM) -> tuple[int, int, int]:
    """(top, left, size) of the square window where the degradation is strongest (same for every run)."""
    h, w = clean.shape[:2]
    size = max(8, int(round(min(h, w) * frac)))
    top, left = most_degraded_window(degraded, clean, size)
    return top, left, size


def _prompt_weights(model: Any) -> dict[str, float]:
    """The softmax weights of each prompt block in the model's last forward pass: ``prompt1_0``, ..."""
    row = {}
    for level, weights in sorted(getattr(model, "last_prompt_weights", {}).items()):
        for j, value in enumerate(weights[0].float().cpu().numpy().ravel()):
            row[f"{level}_{j}"] = float(value)
    return row


def evaluate_run(
    run: Run,
    out_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    checkpoint: str = "best",
    n_visual: int = 2,
    prompt_swap: bool = True,
    device: str = "auto",
    ablations: bool = True,
    n_worst: int = 2,
    images_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Restore every validation image with the run's model; write ``eval/per_image.csv`` and the visual PNGs.

    Per image: PSNR and SSIM of the restored and of the degraded image (against clean), the softmax
    weights of each prompt-generation block (``prompt1_0`` ...), and how the restored image's squared error
    splits over edges, streaks and flakes, veil and flat pixels with each class's share of the pixels
    (``err_<class>``, ``px_<class>``: ``errors.error_shares``, on the full-resolution images). With
    ``prompt_swap``, each image is restored twice more with its prompt weights replaced by the mean weights
    of its own type (``psnr_own_mean``) and of the other type (``psnr_other_mean``), see
    ``prompts.prompt_swap_table``. With ``ablations`` (a compute series can skip them: they cost one
    restoration each), it is restored with uniform prompt weights (``psnr_uniform``), with one-hot weights on
    component ``j`` at every level (``psnr_onehot_{j}``), and with the prompt branch zeroed
    (``psnr_zero_prompt``: each prompt block's output, the prompt that joins the features, replaced by
    zeros). For the visual comparison the ``n_visual`` most degraded validation images of each type (lowest
    input PSNR: a choice that depends on the data only, so every run shows the same images) are saved,
    ``<name>_restored.png`` in ``out_dir`` and ``<name>_{degraded,clean}.png`` in ``images_dir`` (default
    ``out_dir``; a snapshot's runs share one, ``images.IMAGES``), with the zoom box in ``visual.json``; so are
    the ``n_worst`` images with the lowest PSNR change against their input (its worst regressions, or its
    smallest gains when it made none worse; ``worst`` in ``visual.json``): a loss's worst case over its seeds
    is then at hand (``images.worst_cases``).
    The model sees each whole image once (no TTA), as in training validation.
    """
    out = Path(out_dir) if out_dir is not None else run.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    # first: a missing data set is the likelier, cheaper error
    all_pairs, val_all, pairs = validation_pairs(run, data_dir)
    model = runs.load_model(run.path, checkpoint, map_location=dev)
    if not pairs:
        raise ReportError(
            f"{run.name} has no validation images to evaluate; check the data set and val_fraction"
        )
    restored: dict[str, np.ndarray] = {}

    def keep(sample: Sample, image: torch.Tensor, row: dict[str, Any]) -> None:
        row.update(_prompt_weights(model))
        row.update(error_shares(image, sample.degraded, sample.clean))
        restored[sample.name] = to_uint8(image[0].cpu())

    table = score_model(model, samples_from_pairs(pairs), device=dev, with_input=True, on_restored=keep)
    levels = prompt_levels(table)
    if prompt_swap and levels and set(KINDS) <= set(table["kind"]):
        means = {
            kind: {
                lvl: table.loc[table["kind"] == kind, cols].mean().to_numpy(float)
                for lvl, cols in levels.items()
            }
            for kind in KINDS
        }
        own, other = _swapped_psnr(model, pairs, means, dev)
        table["psnr_own_mean"], table["psnr_other_mean"] = own, other
    if ablations and levels:
        for column, values in _ablated_psnr(model, pairs, levels, dev).items():
            table[column] = values
    visual, worst = _save_images(table, pairs, restored, out, Path(images_dir or out), n_visual, n_worst)
    with atomic_write(out / "per_image.csv", "w") as f:
        table.to_csv(f, index=False, float_format="%.8g")
    split = {"pairs": len(all_pairs), "train": len(all_pairs) - len(val_all), "val": len(val_all),
             "evaluated": len(pairs)}  # fmt: skip
    record = {
        "checkpoint": checkpoint,
        "split": split,
        "images": visual,
        "worst": worst,
    }
    write_json_atomic(record, out / "visual.json")
    run.per_image = table
    return table


def _save_images(
    table: pd.DataFrame,
    pairs: Sequence[Pair],
    restored: Mapping[str, np.ndarray],
    out: Path,
    images_dir: Path,
    n_visual: int,
    n_worst: int,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Save the images of the visual comparison (the ``n_visual`` lowest input PSNRs of each type) and of the
    ``n_worst`` lowest PSNR changes: restored in ``out``, degraded and clean in ``images_dir``. Returns the
    visual images with their zoom boxes and the worst images with their PSNR change (``visual.json``)."""
    by_name = {p.name: p for p in pairs}
    visual: dict[str, Any] = {}

    def save(name: str) -> None:
        degraded, clean = load_image(by_name[name].degraded), load_image(by_name[name].clean)
        for folder, tag, img in ((images_dir, "degraded", degraded), (out, "restored", restored[name]),
                                 (images_dir, "clean", clean)):  # fmt: skip
            save_png_atomic(img, folder / f"{name}_{tag}.png")

    for kind in KINDS:
        chosen = table[table["kind"] == kind].sort_values(["input_psnr", "name"]).head(n_visual)
        for name in chosen["name"]:
            save(name)
            top, left, size = zoom_box(load_image(by_name[name].degraded), load_image(by_name[name].clean))
            visual[name] = {"kind": kind, "top": top, "left": left, "size": size}
    change = (table["psnr"] - table["input_psnr"]).rename("change")
    worst = table.assign(change=change).sort_values(["change", "name"]).head(n_worst)
    for name in worst["name"]:
        if name not in visual:
            save(name)
    return visual, {name: round(float(c), 4) for name, c in zip(worst["name"], worst["change"], strict=True)}


# ----------------------------------------------------------------------------------------------------------
# prompt ablations: forward hooks, removed after use


def _prompt_linear(model: Any, level: str) -> Any:
    """The ``nn.Linear`` of prompt block ``level`` that produces the component logits (None if not found)."""
    block = getattr(model, level, None)
    if block is None:
        return None
    linears = [m for m in block.modules() if isinstance(m, torch.nn.Linear)]
    return linears[0] if len(linears) == 1 else None


WeightChoice = Callable[[Sample, str], "np.ndarray | None"]


@contextmanager
def _hooked(modules: Mapping[str, Any], make_hook: Callable[[str], Any]) -> Iterator[None]:
    """Forward hooks ``make_hook(level)`` on each module of ``modules``, removed on exit (also on errors)."""
    handles = [module.register_forward_hook(make_hook(level)) for level, module in modules.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _psnr_with_weights(
    model: Any, pairs: Sequence[Pair], levels: Sequence[str], choose: WeightChoice, device: torch.device
) -> list[float]:
    """PSNR of each image restored with the prompt weights ``choose(sample, level)`` at each level.

    A forward hook on each prompt block's ``Linear`` replaces its logits by ``log(w)``, so the softmax that
    follows returns exactly the chosen weights ``w`` (they sum to 1; a zero weight becomes ``1e-12``).
    ``choose`` returning ``None`` leaves that level as the model computes it.
    """
    layers = {lvl: _prompt_linear(model, lvl) for lvl in levels}
    if any(layer is None for layer in layers.values()):
        return [float("nan")] * len(pairs)
    current: dict[str, Sample | None] = {"sample": None}

    def make_hook(level: str) -> Any:
        def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
            sample = current["sample"]
            w = None if sample is None else choose(sample, level)
            if w is None:
                return None
            weights = torch.tensor(np.asarray(w, np.float64), dtype=output.dtype, device=output.device)
            return torch.log(weights.clamp_min(1e-12)).expand_as(output).clone()

        return hook

    def tracked() -> Iterator[Sample]:
        for sample in samples_from_pairs(pairs):
            current["sample"] = sample
            yield sample

    with _hooked(layers, make_hook):
        return score_model(model, tracked(), device=device)["psnr"].tolist()


def _swapped_psnr(
    model: Any, pairs: Sequence[Pair], means: Mapping[str, Mapping[str, np.ndarray]], device: torch.device
) -> tuple[list[float], list[float]]:
    """PSNR of each image restored with the mean prompt weights (``means[kind][level]``) of its own type and
    of the other type."""
    levels = list(next(iter(means.values())))

    def other(kind: str) -> str:
        return next(k for k in KINDS if k != kind)

    own = _psnr_with_weights(model, pairs, levels, lambda s, lvl: means[s.kind][lvl], device)
    swapped = _psnr_with_weights(model, pairs, levels, lambda s, lvl: means[other(s.kind)][lvl], device)
    return own, swapped


def _zero_prompt_psnr(
    model: Any, pairs: Sequence[Pair], levels: Sequence[str], device: torch.device
) -> list[float]:
    """PSNR of each image restored with every prompt block's output (the prompt) replaced by zeros."""
    blocks = {lvl: getattr(model, lvl, None) for lvl in levels}
    if any(block is None for block in blocks.values()):
        return [float("nan")] * len(pairs)

    def make_hook(_level: str) -> Any:
        def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(output)

        return hook

    with _hooked(blocks, make_hook):
        return score_model(model, samples_from_pairs(pairs), device=device)["psnr"].tolist()


def _ablated_psnr(
    model: Any, pairs: Sequence[Pair], levels: Mapping[str, Sequence[str]], device: torch.device
) -> dict[str, list[float]]:
    """The ablation columns, in this order: uniform weights (``psnr_uniform``), one-hot on each component at
    every level at once (``psnr_onehot_{j}``), and the prompt branch zeroed (``psnr_zero_prompt``)."""
    sizes = {lvl: len(cols) for lvl, cols in levels.items()}
    n_components = min(sizes.values())
    names = list(levels)
    out = {"psnr_uniform": _psnr_with_weights(
        model, pairs, names, lambda _s, lvl: np.full(sizes[lvl], 1.0 / sizes[lvl]), device
    )}  # fmt: skip
    for j in range(n_components):
        out[f"psnr_onehot_{j}"] = _psnr_with_weights(
            model, pairs, names, lambda _s, lvl, j=j: np.eye(sizes[lvl])[j], device
        )
    out["psnr_zero_prompt"] = _zero_prompt_psnr(model, pairs, names, device)
    return out
