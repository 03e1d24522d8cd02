"""Paths are relative to the repository root, never to the working directory."""

from pathlib import Path

from hw4lib import paths


def test_resolve_is_relative_to_the_repo_root_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.resolve("runs/x") == paths.repo_root() / "runs" / "x"
    assert paths.resolve(tmp_path / "abs") == tmp_path / "abs"


def test_relative_records_inside_paths_portably_and_outside_ones_absolutely(tmp_path):
    root = paths.repo_root()
    assert paths.relative(root / "runs" / "demo-l1") == "runs/demo-l1"
    assert paths.relative("data/demo") == "data/demo"
    assert paths.relative(root / "data" / ".." / "runs") == "runs"
    outside = tmp_path / "elsewhere"
    assert paths.relative(outside) == str(outside.resolve())
    assert Path(paths.relative(outside)).is_absolute()
