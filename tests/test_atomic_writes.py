"""Atomic writers: content round-trips; a failure leaves neither the destination nor a temporary file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hw4lib.paths import (
    atomic_write,
    save_png_atomic,
    save_torch_atomic,
    write_json_atomic,
    write_text_atomic,
)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_bytes_and_text(tmp_path):
    with atomic_write(tmp_path / "a.bin") as f:
        f.write(b"\x00\x01abc")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01abc"
    with atomic_write(tmp_path / "sub" / "b.txt", "w") as f:
        f.write("line1\nline2 é\n")
    assert (tmp_path / "sub" / "b.txt").read_text(encoding="utf-8") == "line1\nline2 é\n"
    assert _leftovers(tmp_path) == ["a.bin", "sub"]
    assert _leftovers(tmp_path / "sub") == ["b.txt"]


def test_exception_leaves_no_file_and_no_temp(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(tmp_path / "x.bin") as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert _leftovers(tmp_path) == []


def test_exception_keeps_previous_content(tmp_path):
    target = tmp_path / "keep.txt"
    write_text_atomic("old", target)
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target, "w") as f:
            f.write("new but incomplete")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == ["keep.txt"]


def test_bad_mode(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass


def test_save_torch_roundtrip(tmp_path):
    obj = {"w": torch.arange(6.0).reshape(2, 3), "epoch": 3}
    save_torch_atomic(obj, tmp_path / "ck.pt")
    back = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert back["epoch"] == 3 and torch.equal(back["w"], obj["w"])
    assert _leftovers(tmp_path) == ["ck.pt"]


def test_json_roundtrip_and_unserialisable(tmp_path):
    write_json_atomic({"psnr": 31.5, "name": "rain-1"}, tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text) == {"psnr": 31.5, "name": "rain-1"}
    assert text.endswith("\n") and "\n  " in text  # indent=2
    with pytest.raises(TypeError):
        write_json_atomic({"bad": object()}, tmp_path / "bad.json")
    assert _leftovers(tmp_path) == ["m.json"]


def test_png_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    save_png_atomic(img, tmp_path / "p.png")
    back = np.asarray(Image.open(tmp_path / "p.png"))
    assert back.dtype == np.uint8 and np.array_equal(back, img)
    with pytest.raises(ValueError, match="uint8"):
        save_png_atomic(img.astype(np.float32), tmp_path / "f.png")
    assert _leftovers(tmp_path) == ["p.png"]


def test_finished_file_gets_the_umask_mode_not_mkstemps_0600(tmp_path):
    import os
    import stat

    target = tmp_path / "out.json"
    write_json_atomic({"a": 1}, target)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
