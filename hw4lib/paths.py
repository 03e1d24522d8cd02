"""Project paths, resolved from the repository root so notebooks run the same from anywhere.

JupyterLab and nbval start a kernel in the notebook's folder, papermill in the caller's folder: every path a
notebook uses comes from here, never from the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "repo_root", "resolve", "relative", "data_dir", "runs_dir", "figures_dir", "report_dir", "notebooks_dir"
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
    """An absolute path; a relative one is relative to the repository root, not the working directory."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


def relative(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the repository root when it lies inside it (what files written for others record,
    so they read the same on every clone), else the absolute path."""
    p = resolve(path).resolve()
    try:
        return p.relative_to(repo_root().resolve()).as_posix()
    except ValueError:
        return str(p)


def data_dir(name: str = "demo") -> Path:
    """``data/<name>``: ``demo`` is the generated set, ``hw4_realse_dataset`` the course data."""
    return repo_root() / "data" / name


def runs_dir() -> Path:
    return repo_root() / "runs"


def figures_dir(*parts: str) -> Path:
    """``figures/<parts>``, created on demand."""
    path = repo_root().joinpath("figures", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def report_dir(*parts: str) -> Path:
    """``report/<parts>``, created on demand."""
    path = repo_root().joinpath("report", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"
