"""Project paths, resolved from the repository root so notebooks run the same from anywhere.

JupyterLab and nbval start a kernel in the notebook's folder, papermill in the caller's folder: every path a
notebook uses comes from here, never from the working directory.

What the project *writes* (``runs/``, ``figures/``, ``report/``) goes under :func:`output_root`: the
repository root, unless ``$HW4_OUTPUT`` names another folder. The tests set it to a temporary folder, so they
never touch the repository's files; what they read (the committed report snapshot, the data) still comes from
the root, or, for what is missing there (the generated demo set of a fresh clone), from what the tests
generated under ``$HW4_OUTPUT``.

Every file the project writes is written atomically (:func:`atomic_write` and the writers built on it): to a
temporary file in the destination folder, flushed and fsynced, then ``os.replace``d over the destination, so
a crash or Ctrl-C never leaves a half-written checkpoint, CSV or PNG.
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

__all__ = [
    "repo_root",
    "output_root",
    "resolve",
    "output",
    "relative",
    "data_dir",
    "runs_dir",
    "figures_dir",
    "env_folder",
    "check_writable",
    "atomic_write",
    "save_torch_atomic",
    "write_json_atomic",
    "write_text_atomic",
    "save_png_atomic",
]


def _looks_like_root(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() and (path / "hw4lib").is_dir()


def repo_root() -> Path:
    """The project root: ``$HW4_ROOT`` if set, else the folder above this package, else the nearest root
    above the working directory."""
    env = os.environ.get("HW4_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parent.parent
    if _looks_like_root(here):
        return here
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if _looks_like_root(candidate):
            return candidate
    return cwd


def resolve(path: str | os.PathLike[str]) -> Path:
    """An absolute path; a relative one is relative to the repository root, not the working directory.

    When the root has no such file but ``$HW4_OUTPUT`` does (something generated while the outputs go
    elsewhere, e.g. the demo set made by the tests), that one."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    in_root = repo_root() / p
    if not in_root.exists() and os.environ.get("HW4_OUTPUT"):
        written = output_root() / p
        if written.exists():
            return written
    return in_root


def output_root() -> Path:
    """Where the project writes runs, figures and reports: ``$HW4_OUTPUT`` if set, else the repo root."""
    env = os.environ.get("HW4_OUTPUT")
    return Path(env).expanduser().resolve() if env else repo_root()


def output(path: str | os.PathLike[str]) -> Path:
    """Where to *write* ``path``: an absolute path as it is, a relative one under :func:`output_root`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else output_root() / p


def relative(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the repository root when it lies inside it (what files written for others record,
    so they read the same on every clone), else the absolute path."""
    p = resolve(path).resolve()
    for root in dict.fromkeys((repo_root().resolve(), output_root())):
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            continue
    return str(p)


def data_dir(name: str = "demo") -> Path:
    """``data/<name>`` (see :func:`resolve`): ``demo`` is the generated set, ``hw4_realse_dataset`` the
    course data."""
    return resolve(Path("data") / name)


def runs_dir() -> Path:
    """``runs/`` under the output root: where training writes and prediction finds run folders."""
    return output_root() / "runs"


def figures_dir(*parts: str) -> Path:
    """``figures/<parts>`` under the output root, created on demand."""
    path = output_root().joinpath("figures", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def env_folder(variable: str) -> Path | None:
    """The folder an environment variable names (relative paths from the repository root), or None when the
    variable is unset. Outside material (a copy of Rain100L, real snow masks) is found this way: the library
    says what it needs, each machine says where it keeps it. A name that is not a folder is an error."""
    value = os.environ.get(variable)
    if not value:
        return None
    folder = resolve(value)
    if not folder.is_dir():
        raise FileNotFoundError(f"${variable} names {folder}, which is not a folder; fix or unset {variable}")
    return folder


def check_writable(folder: str | os.PathLike[str], what: str = "output folder") -> Path:
    """``folder`` (created if missing) when this process can write files into it; else ``PermissionError``
    naming it. Called before long work, so that a result is never lost at the end for want of a place."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise PermissionError(
            f"cannot write into the {what} {folder} ({err.strerror or err}); choose another one"
        ) from None
    return folder


# ----------------------------------------------------------------------------------------------------------
# atomic writes


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


def save_png_atomic(
    img_uint8_hwc: np.ndarray, path: str | os.PathLike[str], compress_level: int | None = None
) -> Path:
    """Save an (H, W, 3) or (H, W) uint8 array as PNG atomically; returns the path. ``compress_level`` (0-9,
    default Pillow's 6) trades file size for speed; the pixels are the same."""
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
    options = {} if compress_level is None else {"compress_level": compress_level}
    with atomic_write(path, "wb") as f:
        image.save(f, format="PNG", **options)
    return Path(path)
