"""Probing a trained model: per-image evaluation, the prompt weights it chooses, and what its prompts do.

:func:`evaluate_run` restores every validation image of a run with its checkpoint (through the one
restore-and-score path of ``hw4lib.scoring``) and writes ``eval/per_image.csv``: PSNR/SSIM of the output and
of the input, the softmax weights of each prompt-generation block, and the PSNR with the prompt weights
replaced by the mean weights of the image's own type and of the other type (a swap). It also saves the
images of the report's visual comparison. The report reads those files; it never needs the checkpoint again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hw4lib import paths, runs
from hw4lib.data import KINDS, Pair, load_image, most_degraded_window, to_uint8
from hw4lib.device import resolve_device
from hw4lib.io import atomic_write, save_png_atomic, write_json_atomic
from hw4lib.runs import Run
from hw4lib.scoring import Sample, samples_from_pairs, score_model
from hw4lib.tables import ReportError, prompt_levels
from hw4lib.train import validation_split

__all__ = ["evaluate_run", "validation_pairs", "zoom_box"]

VISUAL_ZOOM = 0.25  # side of the magnified window, as a share of the image's shorter side


def validation_pairs(
    run: Run, data_dir: str | os.PathLike[str] | None = None
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """The training engine's own split of the run's data set: all pairs, validation pairs, and the validation
    pairs training scored (``train.validation_split`` with the run's config)."""
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
    train_pairs, val, scored, _ = validation_split(config, root)
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
) -> pd.DataFrame:
    """Restore every validation image with the run's model; write ``eval/per_image.csv`` and the visual PNGs.

    Per image: PSNR and SSIM of the restored and of the degraded image (against clean), and the softmax
    weights of each prompt-generation block (``prompt1_0`` ...). With ``prompt_swap``, each image is restored
    twice more with its prompt weights replaced by the mean weights of its own type (``psnr_own_mean``) and of
    the other type (``psnr_other_mean``), see ``tables.prompt_swap_table``. For the visual comparison the
    ``n_visual`` most degraded validation images of each type (lowest input PSNR: a choice that depends on the
    data only, so every run shows the same images) are saved as ``<name>_{degraded,restored,clean}.png`` with
    the zoom box in ``visual.json``. The model sees each whole image once (no TTA), as in training validation.
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
        restored[sample.name] = to_uint8(image[0].cpu())

    table = score_model(model, samples_from_pairs(pairs), device=dev, with_input=True, on_restored=keep)
    if prompt_swap and prompt_levels(table) and set(KINDS) <= set(table["kind"]):
        own, other = _swapped_psnr(model, pairs, table, dev)
        table["psnr_own_mean"], table["psnr_other_mean"] = own, other
    visual: dict[str, Any] = {}
    by_name = {p.name: p for p in pairs}
    for kind in KINDS:
        chosen = table[table["kind"] == kind].sort_values(["input_psnr", "name"]).head(n_visual)
        for name in chosen["name"]:
            degraded, clean = load_image(by_name[name].degraded), load_image(by_name[name].clean)
            for tag, img in (("degraded", degraded), ("restored", restored[name]), ("clean", clean)):
                save_png_atomic(img, out / f"{name}_{tag}.png")
            top, left, size = zoom_box(degraded, clean)
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
    block = getattr(model, level, None)
    if block is None:
        return None
    linears = [m for m in block.modules() if isinstance(m, torch.nn.Linear)]
    return linears[0] if len(linears) == 1 else None


def _swapped_psnr(
    model: Any, pairs: Sequence[Pair], table: pd.DataFrame, device: torch.device
) -> tuple[list[float], list[float]]:
    """PSNR of each image restored with the mean prompt weights of its own type and of the other type.

    A forward hook on each prompt block's ``Linear`` replaces its logits by ``log(w)``, so the softmax that
    follows returns exactly the chosen weights ``w`` (the means, from ``table``, sum to 1).
    """
    levels = prompt_levels(table)
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

    def with_prompt_of(own: bool) -> Iterator[Sample]:
        """The samples, each restored with its own type's (or the other type's) mean prompt weights."""
        for sample in samples_from_pairs(pairs):
            state["kind"] = sample.kind if own else next(k for k in KINDS if k != sample.kind)
            yield sample

    handles = [layer.register_forward_hook(make_hook(lvl)) for lvl, layer in layers.items()]
    try:
        own = score_model(model, with_prompt_of(True), device=device)["psnr"].tolist()
        other = score_model(model, with_prompt_of(False), device=device)["psnr"].tolist()
    finally:
        state["kind"] = None
        for handle in handles:
            handle.remove()
    return own, other
