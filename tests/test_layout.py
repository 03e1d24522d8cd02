"""The package's shape, kept by tests: every core module is under the layering contract, and no library
file names where one developer machine keeps its material."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
ROOMS = {"synth", "study"}


def test_every_core_module_is_in_the_layering_contract():
    """A new core module must not escape `lint-imports`: the contract lists the core explicitly."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    forbidden = [c for c in config["contracts"] if c["type"] == "forbidden"]
    contract = next(c for c in forbidden if "hw4lib.cli" in c["source_modules"])
    core = {p.stem for p in (ROOT / "hw4lib").glob("*.py")} - {"__init__", "__main__"}
    assert {m.removeprefix("hw4lib.") for m in contract["source_modules"]} == core
    assert set(contract["forbidden_modules"]) == {f"hw4lib.{room}" for room in ROOMS}
    packages = {p.name for p in (ROOT / "hw4lib").iterdir() if (p / "__init__.py").is_file()}
    assert packages == ROOMS


def test_no_library_file_names_the_developer_folder_beside_the_repository():
    """Users have no ../shared: the library takes such folders as parameters or environment variables."""
    files = [p for p in (ROOT / "hw4lib").rglob("*") if p.is_file() and p.suffix in (".py", ".j2")]
    offenders = [str(p.relative_to(ROOT)) for p in files if "../shared" in p.read_text(encoding="utf-8")]
    assert offenders == []
