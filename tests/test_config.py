"""Run settings: recipes match their sources, explicit values win, a run is sized by epochs or a budget."""

from __future__ import annotations

import pandas as pd
import pytest

from hw4lib.config import (
    RECIPES,
    TrainConfig,
    format_duration,
    make_config,
    parse_duration,
    recipe_table,
)


def test_recipes_fill_the_config_and_explicit_values_win(tmp_path):
    official = make_config("official")
    assert (official.loss, official.patch_size, official.warmup_epochs, official.schedule_epochs) == (
        "l1", 128, 15.0, 150
    )
    assert official.recipe == "official"
    strong = make_config("strong", loss="mse", epochs=None)
    assert strong.loss == "mse" and strong.epochs == 150 and strong.ema == 0 and strong.tta == "x8"
    seed = make_config("seed")
    assert (seed.loss, seed.batch_size, seed.patch_size, seed.epochs, seed.lr, seed.min_lr) == (
        "mse", 1, None, 25, 2e-4, 1e-6
    )
    assert make_config(patch_size=0).patch_size is None
    assert set(RECIPES) >= {"seed", "official", "strong", "demo", "smoke"}
    with pytest.raises(ValueError, match="unknown recipe"):
        make_config("fastest")
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        make_config(learning_rate=1.0)
    with pytest.raises(ValueError, match="preset"):
        make_config(preset="huge")
    path = tmp_path / "c.json"
    strong.to_json(path)
    assert TrainConfig.from_json(path) == strong
    path.write_text('{"lr": 1, "colour": "red"}')
    with pytest.raises(ValueError, match=r"c\.json.*colour"):
        TrainConfig.from_json(path)


# ------------------------------------------------------------------------------------------ plans and budgets


def test_recipes_match_their_sources():
    # the official loader repeats the derain set 120 times per epoch; the paper trains L1 on 128 px crops,
    # 15 warm-up epochs then cosine over 150, stopped at 120
    official = RECIPES["official"]
    assert (official["patches_per_image"], official["patch_size"], official["loss"]) == (120, 128, "l1")
    assert (official["epochs"], official["schedule_epochs"], official["warmup_epochs"]) == (120, 150, 15.0)
    # the best public solutions: 120 crops per image per epoch, 150 epochs, 15 warm-up, cosine to 1e-6,
    # AdamW 2e-4 / wd 1e-4, L1 + 0.1 x luma Sobel edge, batch ~16, no EMA, 8x TTA
    strong = RECIPES["strong"]
    assert (strong["patches_per_image"], strong["epochs"], strong["warmup_epochs"]) == (120, 150, 15.0)
    assert (strong["lr"], strong["weight_decay"], strong["min_lr"]) == (2e-4, 1e-4, 1e-6)
    assert (strong["loss"], strong["batch_size"]) == ("l1+0.1*edge_y", 16)
    assert (strong["ema"], strong["tta"]) == (0.0, "x8")
    # the seed solution as its report describes it
    seed = RECIPES["seed"]
    assert (seed["loss"], seed["epochs"], seed["batch_size"], seed["patch_size"]) == ("mse", 25, 1, None)


def test_recipe_table_counts_images_and_pixels_seen():
    table = recipe_table(train_pairs=2880, image_side=256)
    assert table.loc["seed", "images seen"] == 2880 * 25  # whole images, 25 epochs
    assert table.loc["seed", "pixels seen"] == 2880 * 25 * 256 * 256
    assert table.loc["strong", "images seen"] == 2880 * 120 * 150
    assert table.loc["strong", "pixels seen"] == 2880 * 120 * 150 * 128 * 128
    assert table.loc["strong", "x seed"] == 720  # "about 700 times the images the seed solution showed"
    assert pd.isna(table.loc["cpu", "images seen"]) and pd.isna(table.loc["cpu", "x seed"])  # the run decides
    assert table.loc["cpu", "epochs or budget"] == "20m"


def test_a_run_is_sized_by_epochs_or_by_a_budget_not_both():
    with pytest.raises(ValueError, match="epochs or by a time budget, not both"):
        make_config("demo", epochs=3, time_budget="10m")
    cpu = make_config("cpu")
    assert cpu.time_budget == "20m"
    assert make_config("cpu", epochs=2).time_budget is None  # explicit epochs replace the recipe's budget
    budget = make_config("demo", time_budget="90s")
    assert budget.time_budget == "90s" and budget.epochs == 3  # epochs stay only as the warm-up's share
    with pytest.raises(ValueError, match="not a duration"):
        make_config(time_budget="soon")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45m", 2700), ("6h", 21600), ("1h30m", 5400), ("90s", 90), ("2.5h", 9000), ("90", 90), (120, 120)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_durations_and_formatting():
    for bad in ("", "5 minutes", "m5", "-3m", "0s"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert format_duration(3725) == "1 h 02 min" and format_duration(95) == "1 min 35 s"
    assert format_duration(12.3) == "12 s" and format_duration(2 * 86400) == "2.0 days"


def test_tta_is_a_choice_and_old_boolean_configs_still_read():
    assert TrainConfig().tta == "auto"
    assert TrainConfig.from_dict({"tta": True}).tta == "x8"
    assert TrainConfig.from_dict({"tta": False}).tta == "none"
    with pytest.raises(ValueError, match="tta must be one of"):
        TrainConfig(tta="x4")
