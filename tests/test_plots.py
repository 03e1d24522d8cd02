"""Figures render from fabricated runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from hw4lib import plots
from hw4lib.runs import load_runs
from tests.fabricate import rng_image, write_png


def test_figures_render_from_fabricated_runs(three_runs: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = load_runs([str(p) for p in three_runs])
    curves = plots.plot_learning_curves(runs)
    assert len(curves.axes) == 3 and len(curves.axes[1].lines) == 3 * 2 + 1  # curve + best star, + baseline
    assert plots.plot_psnr_distribution(runs) is not None
    weights = plots.plot_prompt_weights(runs)
    assert weights is not None and len(weights.axes) == 3 * 2
    assert plots.plot_prompt_projection(runs) is not None
    assert plots.plot_visual_grid(runs, "rain") is None  # no eval images in these runs
    plt.close("all")


def test_before_after_grid_is_saved_atomically(tmp_path: Path) -> None:
    degraded, clean = tmp_path / "test" / "degraded", tmp_path / "test" / "clean"
    perfect = {}
    for i in range(2):
        img = rng_image(16, 16, seed=i)
        write_png(clean / f"{i}.png", img)
        write_png(degraded / f"{i}.png", np.clip(img.astype(int) + 10, 0, 255).astype(np.uint8))
        perfect[f"{i}.png"] = img.transpose(2, 0, 1)
    path = tmp_path / "fig" / "grid.png"
    figure = plots.plot_before_after(degraded, perfect, clean_dir=clean, n=2, path=path)
    assert len(figure.axes) == 6 and figure.axes[1].get_title() == "restored 100.00 dB"
    assert Image.open(tmp_path / "fig" / "grid.png").format == "PNG"
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["grid.png"]  # no temp file left
