"""Project paths, resolved from the repository root so notebooks run the same from anywhere.

JupyterLab and nbval start a kernel in the notebook's folder, papermill in the caller's folder: every path a
notebook uses comes from here, never from the working directory.

What the project *writes* (``runs/``, ``figures/``, ``report/``) goes under :func:`output_root`: the
repository root, unless ``$HW4_OUTPUT`` names another folder. The tests set it to a temporary folder, so they
never touch the repository's files; what they read (the committed report snapshot, the data) still comes from
the root, or, for what is missing there (the generated demo set of a fresh clone), from what the tests
generated under ``$HW4_OUTPUT``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "repo_root",
    "output_root",
    "resolve",
    "output",
    "relative",
    "data_dir",
    "runs_dir",
    "figures_dir",
    "report_dir",
    "notebooks_dir",
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


def report_dir(*parts: str) -> Path:
    """``report/<parts>`` under the output root, created on demand."""
    path = output_root().joinpath("report", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"
