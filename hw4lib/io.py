"""Atomic file writes: a crash or Ctrl-C mid-write never leaves a half-written checkpoint, CSV or PNG.

Every writer goes to a temporary file in the destination folder (same file system, so the final rename is
atomic), flushes and fsyncs it, then ``os.replace``s it over the destination. On an exception the temporary
file is removed and the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["atomic_write", "save_torch_atomic", "write_json_atomic", "write_text_atomic", "save_png_atomic"]


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; on success it replaces ``path`` atomically.

    ``mode`` is ``"wb"`` (bytes) or ``"w"`` (text, UTF-8 unless ``encoding`` says otherwise). Parent folders
    are created. If the block raises, the temporary file is deleted, ``path`` is untouched and the exception
    propagates.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        kwargs: dict[str, Any] = {} if mode == "wb" else {"encoding": encoding or "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_file_mode())  # mkstemp makes 0600; a finished file gets the usual umask mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def save_torch_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj, path)`` atomically; returns the path."""
    import torch  # imported here so io.py stays importable by tools that never touch torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def write_json_atomic(obj: Any, path: str | os.PathLike[str], indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (UTF-8, trailing newline) atomically; returns the path.

    Fails *before* touching the destination when ``obj`` is not JSON-serialisable.
    """
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    return write_text_atomic(text + "\n", path)


def write_text_atomic(text: str, path: str | os.PathLike[str], encoding: str = "utf-8") -> Path:
    """Write a string atomically (no newline translation); returns the path."""
    with atomic_write(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def save_png_atomic(img_uint8_hwc: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Save an (H, W, 3) or (H, W) uint8 array as PNG atomically; returns the path."""
    from PIL import Image

    arr = np.asarray(img_uint8_hwc)
    if arr.dtype != np.uint8:
        raise ValueError(
            f"save_png_atomic expects uint8 pixels, got {arr.dtype} for {path}; use hw4lib.data.to_uint8"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(
            f"save_png_atomic expects (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape} for {path}"
        )
    image = Image.fromarray(np.ascontiguousarray(arr))
    with atomic_write(path, "wb") as f:
        image.save(f, format="PNG")
    return Path(path)
