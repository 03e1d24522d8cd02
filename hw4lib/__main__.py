"""``python -m hw4lib``: the core's commands (``hw4lib.cli``) and those of its two rooms, the synthesizer
(``demo-data``, ``study-data``) and the report (``report``, ``demo``, ``study``). The core never imports the
rooms; this entry point is where they meet."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hw4lib import cli
from hw4lib.study.cli import add_commands as study_commands
from hw4lib.synth.cli import add_commands as synth_commands

__all__ = ["ROOMS", "build_parser", "main"]

ROOMS = (synth_commands, study_commands)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m hw4lib`` with every command."""
    return cli.build_parser(ROOMS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command of ``python -m hw4lib``; returns its exit status."""
    return cli.main(argv, rooms=ROOMS)


if __name__ == "__main__":
    raise SystemExit(main())
