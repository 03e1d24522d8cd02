"""Probing a trained model: the zoom window, and a clear message when the data to evaluate is missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hw4lib import probe, report
from hw4lib.tables import ReportError
from tests.fabricate import make_run


def test_crop_box_finds_the_strongest_degradation() -> None:
    clean = np.zeros((32, 32, 3), np.uint8)
    degraded = clean.copy()
    degraded[20:28, 4:12] = 200
    top, left, size = probe.zoom_box(degraded, clean)
    assert size == 8 and (top, left) == (20, 4)


def test_evaluation_without_data_says_how_to_get_it(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", "t-l1", "l1", 25.0, 24.0, 26.0)
    config = json.loads((run / "config.json").read_text()) | {"data_dir": str(tmp_path / "missing")}
    (run / "config.json").write_text(json.dumps(config))
    (run / "best.pt").write_bytes(b"")
    with pytest.raises(ReportError, match=r"needs its validation images in .*missing.*make demo-data"):
        report.collect_runs([run], dest=tmp_path / "snap", verbose=False)


