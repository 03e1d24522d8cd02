"""Figures render from fabricated runs and their tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from hw4lib.runs import load_runs
from hw4lib.study import figures, plots, prompts, tables
from hw4lib.study.report_tables import compute_tables
from tests.fabricate import fake_eval_images, make_study, rng_image, write_png


def test_figures_render_from_fabricated_runs(three_runs: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = load_runs([str(p) for p in three_runs])
    curves = figures.plot_learning_curves(runs)
    assert len(curves.axes) == 4 and len(curves.axes[1].lines) == 3 * 2 + 1  # curve + best star, + baseline
    # each type's panel: its own input PSNR (metrics input_psnr_rain 19 dB, input_psnr_snow 21 dB)
    for ax, kind, level in ((curves.axes[2], "rain", 19.0), (curves.axes[3], "snow", 21.0)):
        assert kind in ax.get_title() and list(ax.lines[-1].get_ydata()) == [level, level]
    assert figures.plot_psnr_distribution(runs) is not None
    weights = figures.plot_prompt_weights(runs)
    assert weights is not None and len(weights.axes) == 3 * 2
    assert figures.plot_prompt_projection(runs) is not None
    assert figures.plot_visual_grid(runs, "rain") is None  # no eval images in these runs
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


def test_study_figures_render_readably(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    made = make_study(tmp_path / "runs")
    for path in made[:12:3]:  # seed 0 of each loss: images of the visual comparison and of a regression
        fake_eval_images(path, ["rain-0", "snow-11"])
    runs = load_runs(made)
    compared = [r for arm in tables.study_arms(runs).values() for r in arm]
    computed = compute_tables(runs)

    seeds = figures.plot_loss_seeds(runs, computed.summary, computed.paired)
    left, right = seeds.axes[:2]
    assert left.get_ylabel() == "PSNR (dB)" and right.get_ylabel() == "PSNR difference (dB)"
    assert len([ln for ln in left.lines if ln.get_label().startswith("seed")]) == 3  # one line per seed
    assert [t.get_text() for t in left.get_xticklabels()] == ["L1", "MSE", "L1+SSIM", "L1 + 0.1*Edge(Y)"]

    level = figures.plot_level_dependence(
        computed.level_points, computed.level_correlation, computed.level_bands, computed.band_edges
    )
    assert "r = -1.00" in level.axes[0].get_title() and "(dB" in level.axes[0].get_xlabel()

    worst = figures.plot_worst_regressions(compared)  # every loss loses most on the lightest image, snow-11
    assert len(worst.axes) == 4 * 4 + 1  # a row per loss: degraded, restored, clean, error map; a colour bar
    titles = [ax.get_title() for ax in worst.axes[:16:4]]
    assert titles == [f"{loss} (seed 0): snow-11\ninput 29.75 dB" for loss in
                      ("L1", "MSE", "L1+SSIM", "L1 + 0.1*Edge(Y)")]  # fmt: skip
    assert "grey levels" in worst.axes[-1].get_ylabel() and "(-1.79 dB)" in worst.axes[5].get_title()

    compute = figures.plot_compute_curve(runs, computed.compute)
    assert compute.axes[0].get_xscale() == "log" and "images seen" in compute.axes[0].get_xlabel()
    assert compute.axes[1].get_xlabel() == "wall time (s, log scale)"

    ablations = figures.plot_prompt_ablations(computed.ablations)
    assert ablations.axes[0].get_ylabel() == "PSNR change vs own prompts (dB)" and len(ablations.axes) == 4

    grid = figures.plot_visual_grid(tables.shown_runs(runs), "rain")
    every = [*grid.axes, *(inset for ax in grid.axes for inset in ax.child_axes)]
    interpolations = {im.get_interpolation() for ax in every for im in ax.images}
    assert interpolations == {"antialiased", "lanczos"}  # the insets magnified smoothly, never "nearest"

    curves = figures.plot_learning_curves(compared)  # a colour per loss, a legend entry per loss
    [legend] = curves.legends
    assert len(legend.get_texts()) == 4 + 2 and all(ax.get_legend() is None for ax in curves.axes)
    for fig in (seeds, level, worst, compute, ablations, grid, curves):
        assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)  # no overlapping labels
    plt.close("all")


def test_study_figures_leave_out_what_the_runs_lack(three_runs: list[Path]) -> None:
    runs = load_runs([str(p) for p in three_runs])  # one seed per loss, no series, no ablations, no images
    computed = compute_tables(runs)
    assert figures.plot_loss_seeds(runs, computed.summary, computed.paired) is None
    assert figures.plot_compute_curve(runs, tables.compute_table(runs)) is None
    assert figures.plot_prompt_ablations(prompts.prompt_ablations(runs)) is None
    assert figures.plot_worst_regressions(runs) is None
    level = (computed.level_points, computed.level_correlation, computed.level_bands, computed.band_edges)
    assert figures.plot_level_dependence(*level) is not None


def test_validation_curves_join_the_validated_epochs(three_runs: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = load_runs([str(three_runs[0])])[0]
    h = run.history
    h.loc[h.index[0], ["val_psnr", "val_psnr_rain", "val_psnr_snow"]] = float("nan")  # val_every 2: a gap
    curves = figures.plot_learning_curves([run])
    line = curves.axes[1].lines[0]
    validated = h.loc[h["val_psnr"].notna(), "epoch"].tolist()
    assert len(validated) == len(h) - 1 >= 2
    assert list(line.get_xdata()) == validated and not np.isnan(line.get_ydata()).any()
    assert all(not np.isnan(ln.get_ydata()).any() for ax in curves.axes[2:] for ln in ax.lines)
    plt.close("all")


def test_learning_curve_legend_hides_no_data(tmp_path: Path) -> None:
    """Eight losses, three seeds each: the legend sits below the panels, outside every one of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = ("l1", "mse", "l1_ssim", "l1+0.1*edge_y", "berhu", "mse@snow+l1_ssim@rain", "charbonnier", "fft")
    runs = load_runs(make_study(tmp_path / "runs", losses=losses, series=()))
    curves = figures.plot_learning_curves(runs)
    curves.canvas.draw()
    [legend] = curves.legends
    box = legend.get_window_extent()
    assert len(legend.get_texts()) == 8 + 2
    assert all(box.y1 <= ax.get_tightbbox().y0 for ax in curves.axes)  # below every panel and its labels
    assert 0 <= box.x0 and box.x1 <= curves.bbox.width and box.y0 >= 0  # and inside the figure
    plt.close("all")


def test_the_prompt_swap_chart_is_gone() -> None:
    assert "prompt_swap" not in figures.FIGURE_KEYS and not hasattr(figures, "plot_prompt_swap")


def test_history_draws_each_types_own_input(three_runs: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plots.plot_history(load_runs([str(three_runs[0])])[0])
    levels = {
        ln.get_label(): ln.get_ydata()[0] for ln in fig.axes[1].lines if ln.get_label().startswith("input")
    }
    assert levels == {"input (identity)": 20.0, "input, rain": 19.0, "input, snow": 21.0}
    plt.close("all")
