"""Shared test setup: the repository root on ``sys.path`` (tests import ``benchmarks.*`` and
``tests.fabricate``), and fixtures used by several test modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"  # developer material; tests that read it skip when it is absent
# The library finds outside material through environment variables (hw4lib.paths.env_folder); a developer
# checkout names its copies beside the repository, unless the variable is set already.
for _variable, _folder in (("HW4_RAIN100L", "rain100l"), ("HW4_SNOW100K_MASKS", "snow100k_masks")):
    if (SHARED / "data" / _folder).is_dir():
        os.environ.setdefault(_variable, str(SHARED / "data" / _folder))

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fabricate import fake_per_image, make_run  # noqa: E402 (needs ROOT on sys.path)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared``, or a skip when this checkout has none."""
    if not SHARED.is_dir():
        pytest.skip("../shared (developer reference material) is not available")
    return SHARED


@pytest.fixture
def three_runs(tmp_path: Path) -> list[Path]:
    return [
        make_run(
            tmp_path,
            "demo-l1",
            "l1",
            28.12,
            27.50,
            28.74,
            ssim=0.81,
            wall=61.4,
            per_image=fake_per_image(0.0),
        ),
        make_run(
            tmp_path,
            "demo-l1_ssim",
            "l1_ssim",
            28.46,
            27.90,
            29.02,
            ssim=0.85,
            wall=75.0,
            per_image=fake_per_image(0.5),
        ),
        make_run(
            tmp_path,
            "demo-mse",
            "mse",
            27.80,
            27.20,
            28.40,
            ssim=0.79,
            epochs=4,
            best_epoch=4,
            wall=58.2,
            per_image=fake_per_image(-0.25),
        ),
    ]


@pytest.fixture(autouse=True)
def _outputs_in_a_temporary_folder(tmp_path_factory, monkeypatch):
    """Whatever a test writes under runs/, figures/ or report/ goes to a temporary folder, never into the
    repository (``hw4lib.paths.output_root``)."""
    monkeypatch.setenv("HW4_OUTPUT", str(tmp_path_factory.mktemp("output")))
