"""The GPU check (scripts/gpu_check.sh, benchmarks/gpu_check.py) runs first time on a bare CUDA machine: these
tests prove on a CPU what they can of it (every part as a dry run through the shell script, without the
packages such a machine lacks; the deadline; the float32 reference; the precision policy)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from benchmarks import bench_train, gpu_check

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
# What the GPU machine does not have: importing any of them must not be needed by the check.
ABSENT = ("pytorch_msssim", "papermill", "nbconvert", "nbval", "nbformat", "mistune", "jupyter",
          "jupyter_client", "ipykernel", "IPython", "importlinter", "tensorboard")  # fmt: skip
STEP = {"seconds_per_step": 0.5, "images_per_s": 4.0, "peak_memory_mb": 1.0, "precision": "fp32"}


def _blocking_site(folder: Path) -> Path:
    """A folder whose sitecustomize.py makes every ABSENT package unimportable (as on the GPU machine) and
    leaves a mark that it ran; put it on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        textwrap.dedent(f"""
        import os, sys
        for name in {ABSENT!r}:
            sys.modules[name] = None  # import name -> ImportError
        if os.environ.get("BLOCKED_MARK"):
            open(os.environ["BLOCKED_MARK"], "w").close()
    """)
    )
    return folder


def test_gpu_check_imports_nothing_a_bare_gpu_machine_lacks(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        for name in {ABSENT!r}:
            sys.modules[name] = None
        import benchmarks.gpu_check, benchmarks.bench_train, hw4lib.train, hw4lib.synth, hw4lib.planning
        from hw4lib.config import RECIPES
        from hw4lib.losses import build_loss
        build_loss(RECIPES["strong"]["loss"])  # the budget run's loss: no SSIM term, no pytorch-msssim
        print("imports ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imports ok" in done.stdout


def test_gpu_check_runs_every_part_as_a_dry_run_on_the_cpu(tmp_path):
    """The shell script's DRY_RUN=1, as a developer runs it: every part on the CPU, without the packages the
    GPU machine lacks (the run would record their ImportError as a failed part and exit 1)."""
    out, mark = tmp_path / "gpu", tmp_path / "blocked"
    site = _blocking_site(tmp_path / "site")
    env = {
        **os.environ, "PY": sys.executable, "DRY_RUN": "1", "GPU_OUT": str(out), "BLOCKED_MARK": str(mark),
        "PYTHONPATH": str(site), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }  # fmt: skip
    started = time.time()
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert mark.is_file()  # the packages were blocked in the check's process
    results = json.loads((out / "gpu_check.json").read_text())
    assert results["device"] == "cpu" and results["preset"] == "tiny"
    assert set(results["steps"]) == {"eager-b2", "checkpointed-b2"}
    assert all(r["images_per_s"] > 0 for r in results["steps"].values())
    # the data part ran (and generated the demo set where there was none) and counts against the deadline
    assert results["data"]["train_pairs"] == 400 and results["data"]["seconds"] >= 0
    assert list(results["timeline"]) == [
        "data", "eager-b2", "checkpointed-b2", "precision", "flops", "engine", "budget"
    ]  # fmt: skip
    assert 0 < results["startup_s"] <= results["timeline"]["data"]["ended_at_s"] <= results["wall_s"]
    assert results["wall_s"] <= time.time() - started + 1  # counted from the script's start, no later
    assert results["deadline_s"] == 480
    assert results["mixed_precision"]["training_dtype"] == "fp32"  # a CPU trains in float32
    p = results["precision"]
    assert p["dtype"] == "bfloat16" and p["reference"].startswith("float32")
    assert p["reference_tf32"] == {"matmul_precision": "highest", "cudnn_allow_tf32": False}
    assert results["flops"]["train_step_gflop_per_image"] > 0 and results["engine"]["engine_over_bare"] > 0
    b = results["budget"]
    assert b["schedule_complete"] is True and b["budget_s"] == 30  # within_budget: a quiet machine's figure
    # every part's own file, and the budget run's small files, are there to be returned
    parts = {f.stem for f in (out / "parts").glob("*.json")}
    assert parts == {"data", "eager-b2", "checkpointed-b2", "precision", "flops", "engine", "budget"}
    assert sorted(f.name for f in (out / "budget-run").iterdir()) == sorted(b["run_files"])
    assert {"config.json", "metrics.json", "plan.json"} <= set(b["run_files"])
    md = (out / "gpu_check.md").read_text()
    assert "# GPU check on cpu" in md and "vs float32 (TF32 off" in md and "Data: " in md


def test_gpu_check_sh_uses_the_machines_python_and_says_what_it_needs():
    text = SCRIPT.read_text()
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert "PY=${PY:-python3}" in text and not any(".venv" in line for line in code)
    assert 'export PYTHONPATH="$PWD' in text and "pip install --no-deps --no-build-isolation -e ." in text
    for needed in ("CUDA build of PyTorch", "numpy", "pillow", "pandas", "tqdm", "einops", "scipy",
                   "scikit-image", "matplotlib", "pytorch-msssim", "papermill", "internet"):  # fmt: skip
        assert needed in text, needed
    assert 'run(command="GPU_OUT=$OUT/gpu bash scripts/gpu_check.sh", timeout_s=600)' in text


def test_gpu_check_sh_refuses_in_one_line_without_torch_or_without_cuda(tmp_path):
    no_site = tmp_path / "python-without-packages"
    no_site.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')  # -S: no site-packages, no torch
    no_site.chmod(0o755)
    env = {**os.environ, "PY": str(no_site), "GPU_OUT": str(tmp_path / "out")}
    env.pop("DRY_RUN", None)
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("gpu_check: ") and "has no PyTorch" in done.stderr

    env.update(PY=sys.executable, CUDA_VISIBLE_DEVICES="")  # a torch that sees no GPU
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    errors = [line for line in done.stderr.splitlines() if "Warning" not in line and line.strip()]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert errors[0].startswith("gpu_check: torch ") and "sees no CUDA GPU" in errors[0]
    assert not (tmp_path / "out").exists()


@pytest.fixture
def restore_tf32():
    """The TF32 switches as the test found them, whatever it does."""
    matmul, conv = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    yield
    torch.set_float32_matmul_precision(matmul)
    torch.backends.cudnn.allow_tf32 = conv


def test_precision_reference_runs_in_true_float32_and_restores_the_tf32_switches(monkeypatch, restore_tf32):
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x):
            seen.append((
                torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32,
                torch.is_autocast_enabled("cpu"),
            ))  # fmt: skip
            return x * 0.5

    monkeypatch.setattr(gpu_check, "build_model", lambda preset: Recorder())
    torch.set_float32_matmul_precision("high")  # what the check sets on a GPU: TF32 for float32 matmuls
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default: TF32 convolutions
    result = gpu_check.precision_figures(Namespace(preset="tiny", patch=8), torch.device("cpu"))
    assert seen == [("highest", False, False), ("high", True, True)]  # reference, then mixed as trained
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == ("high", True)
    assert result["reference"] == "float32 (TF32 off for matmuls and cuDNN convolutions)"
    assert result["reference_tf32"] == {"matmul_precision": "highest", "cudnn_allow_tf32": False}
    assert result["mixed_tf32"] == {"matmul_precision": "high", "cudnn_allow_tf32": True}
    with pytest.raises(ZeroDivisionError), gpu_check.true_float32():
        1 / 0  # noqa: B018
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == ("high", True)


@pytest.mark.parametrize(
    ("capability", "dtype", "why"),
    [((9, 0), "bfloat16", "9.0 >= 8.0"), ((8, 0), "bfloat16", "8.0 >= 8.0"), ((7, 5), "float16", "7.5 < 8")],
)
def test_mixed_precision_policy_names_the_dtype_and_the_capability(monkeypatch, capability, dtype, why):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    policy = gpu_check.mixed_precision_policy(torch.device("cuda"))
    assert policy["dtype"] == policy["training_dtype"] == dtype
    assert policy["compute_capability"] == f"{capability[0]}.{capability[1]}" and why in policy["why"]


def test_forward_flops_on_the_meta_device_match_the_counted_cpu_forward():
    assert gpu_check.forward_flops("tiny", 1, 32) == bench_train.forward_flops("tiny", 1, 32)


def _fake_parts(monkeypatch, calls: list | None = None) -> None:
    monkeypatch.setattr(gpu_check, "data_figures", lambda: {"train_pairs": 4})
    monkeypatch.setattr(gpu_check, "step_figures", lambda *a, **k: dict(STEP))
    for name in ("precision_figures", "flops_figures", "engine_figures"):
        monkeypatch.setattr(gpu_check, name, lambda *a, **k: {})

    def budget(args, device, budget_s=None, out=None, note=None):
        if calls is not None:
            calls.append((budget_s, note))
        return {"budget_s": budget_s}

    monkeypatch.setattr(gpu_check, "budget_figures", budget)


def test_gpu_check_fails_when_any_part_fails_and_still_writes_the_others(tmp_path, monkeypatch):
    _fake_parts(monkeypatch)
    monkeypatch.setattr(gpu_check, "precision_figures", lambda *a, **k: 1 / 0)
    argv = ["--device", "cpu", "--batches", "2", "--skip-compile", "--out", str(tmp_path)]
    code = gpu_check.main(argv)
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert code == 1 and "ZeroDivisionError" in results["precision"]["error"]
    assert results["steps"]["eager-b2"] == STEP and results["budget"] == {"budget_s": 240.0}
    assert "ZeroDivisionError" in json.loads((tmp_path / "parts" / "precision.json").read_text())["error"]
    assert "- precision: failed: ZeroDivisionError" in (tmp_path / "gpu_check.md").read_text()
    monkeypatch.setattr(gpu_check, "precision_figures", lambda *a, **k: {})
    assert gpu_check.main(argv) == 0


def test_budget_is_shortened_or_skipped_to_end_before_the_deadline():
    args = Namespace(budget="4m", min_budget=60.0)
    now = time.time()
    assert gpu_check.budget_seconds(args, gpu_check.Clock(now - 100, 480)) == (240.0, None)
    assert gpu_check.budget_seconds(args, gpu_check.Clock(now, None)) == (240.0, None)
    shortened, note = gpu_check.budget_seconds(args, gpu_check.Clock(now - 250, 480))
    assert 185 <= shortened <= 191 and note.startswith("shortened from 240 s to")  # (230 - 20) / 1.1
    assert gpu_check.budget_seconds(args, gpu_check.Clock(now - 400, 480))[0] is None


def test_gpu_check_skips_what_the_deadline_leaves_no_time_for(tmp_path, monkeypatch):
    calls: list = []
    _fake_parts(monkeypatch, calls)
    argv = ["--device", "cpu", "--batches", "2", "--out", str(tmp_path), "--deadline", "480"]
    # 370 s spent before the check (the shell script's start): the budget run is shortened to (110 - 20) / 1.1
    # s, and compile (120 s needed) skipped
    code = gpu_check.main([*argv, "--started", str(time.time() - 370)])
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert code == 0 and 76 <= calls[0][0] <= 82 and calls[0][1].startswith("shortened")
    assert results["steps"]["eager-b2"] == STEP and results["startup_s"] >= 370
    assert results["steps"]["compiled-b2"]["skipped"].startswith("skipped: ")
    # 475 s spent: only the data part runs; a skipped part is not a failure
    code = gpu_check.main([*argv, "--started", str(time.time() - 475)])
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert code == 0 and len(calls) == 1 and results["data"] == {"train_pairs": 4}
    for r in [*results["steps"].values(), *(results[k] for k in ("precision", "flops", "engine", "budget"))]:
        assert "skipped" in r, r
    assert "- budget: skipped: " in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals: main thread")
def test_a_sigterm_stops_the_check_with_the_running_part_recorded(tmp_path, monkeypatch):
    _fake_parts(monkeypatch)
    before = signal.getsignal(signal.SIGTERM)

    def engine(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)  # what `timeout` sends at HARD_LIMIT
        time.sleep(5)  # interrupted by the handler
        return {"never": True}

    monkeypatch.setattr(gpu_check, "engine_figures", engine)
    code = gpu_check.main(["--device", "cpu", "--batches", "2", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert code == 1 and results["engine"]["error"].startswith("stopped by SIGTERM")
    assert "budget" not in results and results["flops"] == {}  # the parts before it kept their figures
    assert signal.getsignal(signal.SIGTERM) == before
