"""Shared test setup: the repository root on ``sys.path`` so tests can import ``benchmarks.*``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"  # developer material; tests that read it skip when it is absent

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared``, or a skip when this checkout has none."""
    if not SHARED.is_dir():
        pytest.skip("../shared (developer reference material) is not available")
    return SHARED
