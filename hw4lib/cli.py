"""``python -m hw4lib <command>``: one entry point, each module contributes its subcommands.

A module listed in ``COMMAND_MODULES`` defines ``add_commands(subparsers)``, which adds its subparsers and
sets ``func`` (called with the parsed arguments, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hw4lib import __version__

COMMAND_MODULES = ("data", "synth", "importers", "train", "infer", "experiments")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hw4lib",
        description="PromptIR rain and snow removal: data, training, prediction and the report.",
    )
    parser.add_argument("--version", action="version", version=f"hw4lib {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"hw4lib.{name}")
        except ModuleNotFoundError as err:  # skip a module not written yet; re-raise any other
            if err.name == f"hw4lib.{name}":
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
