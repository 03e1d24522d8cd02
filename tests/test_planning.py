"""Sizing a run: the budget planner's arithmetic, the epoch plan, the default recipe, the refusal message.
Numbers in, numbers out: nothing here is timed."""

from __future__ import annotations

import json

import pytest
import torch

from hw4lib import planning
from hw4lib.config import default_recipe, make_config
from hw4lib.planning import BudgetTooSmall, Plan, plan_budget, plan_epochs, refusal


def test_a_budget_plan_fills_the_budget_and_no_more():
    config = make_config("demo", time_budget="10m")  # warm-up: 0.5 of 3 epochs = 1/6 of the run
    plan = plan_budget(config, global_batch=8, spent_s=30.0, step_s=0.5, validation_s=4.0, checkpoint_s=1.0)
    # left for training: 600 - 30 - 4 (the final samples) = 566 s; 10 epochs each with a checkpoint and a
    # validation (50 s): 516 s of steps = 1032 steps -> 103 per epoch
    assert (plan.epochs, plan.steps_per_epoch, plan.total_steps) == (10, 103, 1030)
    assert plan.horizon_steps == plan.total_steps and plan.warmup_steps == round(1030 / 6)
    assert plan.images_seen == 1030 * 8 and plan.sized_by == "time_budget" and plan.budget_s == 600
    # the schedule ends at the budget, short by the steps lost to equal epochs (fewer than one per epoch)
    assert 600 - plan.epochs * plan.step_s < plan.estimate_s <= 600
    assert plan.pixels_seen() == 1030 * 8 * 48 * 48


def test_a_short_budget_has_fewer_epochs_and_validates_every_n():
    config = make_config("demo", time_budget="30s", val_every=2)
    plan = plan_budget(config, global_batch=8, spent_s=5.0, step_s=1.0, validation_s=2.0, checkpoint_s=0.5)
    # 23 s left, of which validations and checkpoints may take a fifth (4.6 s): 2 epochs cost one
    # validation and two checkpoints (3 s), 3 epochs two validations and three checkpoints (5.5 s)
    assert (plan.epochs, plan.validations) == (2, 1)
    assert plan.total_steps == 2 * ((23 - 2 * 0.5 - 1 * 2.0) // 1.0 // 2) == 20
    assert plan.estimate_s <= 30


def test_validations_never_eat_the_budget():
    # a minute on a CPU whose validation takes 3.5 s: ten validations would leave a third of it for training
    config = make_config("demo", time_budget="60s")
    plan = plan_budget(
        config, global_batch=8, spent_s=4.5, step_s=0.28, validation_s=3.46, checkpoint_s=0.03
    )
    left = 60 - 4.5 - 3.46
    assert plan.epochs == 2
    assert plan.validations * 3.46 + plan.epochs * 0.03 <= planning.BUDGET_OVERHEAD * left
    assert plan.total_steps == 2 * int((left - 2 * 0.03 - 2 * 3.46) / 0.28 // 2)
    # one epoch even when its validation alone is more than the share: the run still ends validated
    slow = plan_budget(config, global_batch=8, spent_s=4.5, step_s=0.28, validation_s=20.0, checkpoint_s=0.03)
    assert (slow.epochs, slow.validations) == (1, 1) and slow.estimate_s <= 60


def test_a_budget_too_small_for_one_step_says_what_it_needs():
    config = make_config("demo", time_budget="20s")
    with pytest.raises(BudgetTooSmall, match=r"leaves no time to train: the setup took 18 s"):
        plan_budget(config, global_batch=8, spent_s=18.0, step_s=1.0, validation_s=2.0, checkpoint_s=0.5)


def test_an_epoch_plan_keeps_the_recipe_schedule():
    config = make_config("official")
    plan = plan_epochs(config, natural_steps=1000, global_batch=8)
    assert (plan.epochs, plan.steps_per_epoch) == (120, 1000)
    assert (plan.warmup_steps, plan.horizon_steps) == (15000, 150000)
    capped = plan_epochs(make_config("smoke", max_train_steps=20), natural_steps=45, global_batch=8)
    assert capped.steps_per_epoch == 20 and capped.validations == 1


def test_a_plan_survives_its_json_file():
    plan = plan_epochs(make_config("demo"), natural_steps=45, global_batch=8)
    plan.step_s, plan.validation_s, plan.checkpoint_s, plan.setup_s = 0.4, 2.0, 0.1, 5.0
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert plan.estimate_s == pytest.approx(5.0 + 135 * 0.4 + 3 * 2.0 + 3 * 0.1 + 2.0)
    assert "3 epochs x 45 steps of 8 crops of 48 px = 135 steps, 1,080 images seen" in plan.describe()


def test_default_recipe_follows_the_data_and_the_device(tmp_path):
    generated = tmp_path / "my_own_demo"
    generated.mkdir()
    (generated / "synth.json").write_text("{}")  # what demo-data writes into every set it makes
    course = tmp_path / "hw4_realse_dataset"
    course.mkdir()
    assert default_recipe(generated, "cpu") == default_recipe(generated, "cuda") == "demo"
    assert default_recipe(course, "cpu") == "cpu" and default_recipe(course, torch.device("cuda")) == "seed"


def test_a_long_cpu_plan_is_refused_and_a_gpu_or_an_explicit_yes_is_not():
    config = make_config("seed", data_dir="data/hw4_realse_dataset")
    plan = plan_epochs(config, natural_steps=2880, global_batch=1)
    plan.step_s, plan.validation_s, plan.checkpoint_s, plan.setup_s = 10.0, 60.0, 2.0, 30.0
    message = str(refusal(config, plan, torch.device("cpu")))
    assert "estimated at 8.4 days on this CPU" in message and "72,000 steps of the full model" in message
    assert "-p data_dir data/hw4_realse_dataset" in message and "-p time_budget 45m" in message
    assert refusal(config, plan, torch.device("cuda")) is None
    assert refusal(make_config("seed", allow_long_cpu=True), plan, torch.device("cpu")) is None
    plan.step_s = planning.MAX_CPU_HOURS * 3600 / 72000 / 2  # half the limit: fine
    assert refusal(config, plan, torch.device("cpu")) is None


def test_the_estimate_leaves_the_seeded_rng_alone(tmp_path):
    # fit seeds, then estimates, then builds the model: an estimate that drew from the global RNG gave a seed
    # other initial weights than the same seed without it (the smoke run's loss moved 2% when it came in)
    from tests.fabricate import tiny_dataset

    data = tiny_dataset(tmp_path / "course", per_kind=4, size=32)
    config = make_config(recipe="smoke", data_dir=str(data), seed=0)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    estimate = planning.estimate_run(config, torch.device("cpu"))
    assert estimate.step_gflop > 0
    assert torch.equal(torch.get_rng_state(), before)
