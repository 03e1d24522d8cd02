"""The GPU path, proven on the CPU: stand-ins for what only a GPU (or several) would show.

- resume loads its checkpoint to the CPU and lets ``load_state_dict`` place it (a model on the ``meta`` device
  stands in for a GPU);
- bfloat16 only where the card computes it natively (``torch.cuda`` queries patched for four capabilities);
- several processes share one plan even when their clocks differ (two ``gloo`` processes, one started late);
- under torchrun every process takes the GPU of its local rank, and ``cuda`` on a CPU-only torch is a clear
  error (``torch.cuda`` queries and the process group patched);
- the plan times an epoch's checkpoints as training writes them.

The kernels' float16, batching and ``torch.compile`` checks are in ``test_model.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hw4lib import device as device_mod
from hw4lib import loop, runs, train
from hw4lib.config import make_config
from hw4lib.paths import repo_root
from hw4lib.synth import generate_demo_dataset

MICRO = {
    "dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 2, 4, 8],
    "prompt_dims": [8, 8, 16], "prompt_sizes": [4, 4, 4], "prompt_len": 2,
}  # fmt: skip


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "demo"
    generate_demo_dataset(root, pairs_per_type=6, test_per_type=1, size=32, seed=0)
    return root


def _config(data_root: Path, run_dir: Path, **overrides):
    values = dict(
        data_dir=str(data_root), run_dir=str(run_dir), preset="tiny", model_overrides=MICRO,
        patch_size=16, batch_size=4, epochs=2, val_fraction=0.34, device="cpu", progress=False,
        save_samples=0,
    )  # fmt: skip
    return make_config("smoke", **{**values, **overrides})


# ---- 1. resume on a GPU -----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_resume_loads_to_the_cpu_and_places_state_on_the_model_device(data_root, tmp_path):
    """The checkpoint's RNG states must stay CPU tensors (torch.set_rng_state takes no other), and AdamW's
    step counters too (on a GPU each one would cost a sync per parameter per step); moments and weights go
    where the parameters are. The ``meta`` device stands in for the GPU."""
    config = _config(data_root, tmp_path / "run", epochs=1)
    train.fit(config)
    ckpt = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=True)
    meta = torch.device("meta")
    r = train._Run(config, loop.Dist(), meta, tmp_path / "run", runs.RunLog(silent=True), None, 0.0)
    r.model = train.initial_model(config).to(meta)
    r.optimizer = torch.optim.AdamW(r.model.parameters(), lr=config.lr)
    r.scaler = torch.amp.GradScaler("cuda", enabled=False)
    r.ema = loop.ModelEMA(r.model, config.ema)
    torch.manual_seed(123)  # the RNG elsewhere: the resume must bring the saved state back
    train._restore_resume(r)
    assert torch.equal(torch.get_rng_state(), ckpt["rng"]["torch"])
    states = list(r.optimizer.state.values())
    assert states and all(s["step"].device.type == "cpu" for s in states)
    assert all(s["exp_avg"].device == meta and s["exp_avg_sq"].device == meta for s in states)
    assert all(p.device == meta for p in r.model.parameters())
    assert r.first_epoch == 2 and r.ema.num_updates == ckpt["ema"]["num_updates"]


# ---- 2. bfloat16 only where the card has it ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("capability", "expected"),
    [((7, 0), torch.float16), ((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)],
)
def test_mixed_precision_is_bfloat16_only_on_cards_that_compute_it(monkeypatch, capability, expected):
    """A V100 (7.0) or T4 (7.5) emulates bfloat16 (``is_bf16_supported()`` says True) but cuDNN has no
    bfloat16 convolutions there: float16 with loss scaling. Ampere (8.0) and Hopper (9.0): bfloat16."""

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return including_emulation or capability >= (8, 0)

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert device_mod.amp_dtype(torch.device("cuda", 0)) == expected
    assert device_mod.amp_dtype(torch.device("cuda", 0), enabled=False) is None
    assert device_mod.amp_dtype(torch.device("cpu")) is None  # a CPU trains in float32


# ---- 6. several processes, one plan -----------------------------------------------------------------------

_SKEWED = """
import json, os, sys, time
from hw4lib.config import TrainConfig
from hw4lib.train import fit
rank = int(os.environ["RANK"])
if rank == 1:
    time.sleep(6)  # this process starts late: its clock says less time has gone by
run = fit(TrainConfig.from_json(sys.argv[1]))
with open(sys.argv[2] + f"/rank{rank}.json", "w") as f:
    json.dump({"total_steps": run.plan["total_steps"], "steps": run.metrics.get("steps")}, f)
"""


def test_processes_started_apart_share_one_budget_plan(data_root, tmp_path):
    """Each process sized a budget run from its own clock, so two processes could plan different step counts
    and then wait forever for each other's collectives. Two gloo processes, the second started 6 s late."""
    config = _config(data_root, tmp_path / "ddp", batch_size=2, time_budget="30s", epochs=None)
    config.to_json(tmp_path / "config.json")
    (tmp_path / "skewed.py").write_text(_SKEWED)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo_root())}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "skewed.py"), str(tmp_path / "config.json"), str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=repo_root(), env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plans = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert plans[0] == plans[1] and plans[0]["total_steps"] >= 1


# ---- 7. devices under torchrun ----------------------------------------------------------------------------


def test_cuda_on_a_torch_without_cuda_is_a_clear_error_before_the_process_group(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loop.dist, "init_process_group", lambda **kw: pytest.fail("group started first"))
    with pytest.raises(RuntimeError, match="this torch has no CUDA; use device='cpu'"):
        loop.init_distributed("cuda")


@pytest.mark.parametrize("spec", ["cuda", "cuda:1", "auto"])
def test_every_torchrun_process_takes_the_gpu_of_its_local_rank(monkeypatch, spec):
    chosen, groups = [], []
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(loop.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(loop.dist, "init_process_group", lambda backend: groups.append(backend))
    monkeypatch.setattr(loop.dist, "get_rank", lambda: 3)
    monkeypatch.setattr(loop.dist, "get_world_size", lambda: 4)
    ddp, device = loop.init_distributed(spec)
    assert device == torch.device("cuda", 3) and chosen == [torch.device("cuda", 3)]
    assert groups == ["nccl"] and (ddp.rank, ddp.world, ddp.local_rank) == (3, 4, 3)


def test_the_plan_times_the_checkpoints_as_an_epoch_writes_them(data_root, tmp_path, monkeypatch):
    """Each epoch writes and fsyncs last.pt and, when it improves, best.pt: the probe times both writes to
    the run folder's file system, not one serialisation in memory."""
    written = []
    real = runs.save_checkpoint

    def recording(state, run_dir, best=False):
        written.append((Path(run_dir), best))
        return real(state, run_dir, best=best)

    monkeypatch.setattr(runs, "save_checkpoint", recording)
    run = train.fit(_config(data_root, tmp_path / "plan", epochs=1))
    probe_dir, probe_best = written[0]
    assert probe_best and probe_dir.parent == tmp_path and probe_dir.name.startswith(".probe-")
    assert not probe_dir.exists() and run.plan["checkpoint_s"] > 0
