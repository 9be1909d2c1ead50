"""The ``jaxsample`` command line: ``train``, ``info``, ``generate`` and ``lab``.

Each sub-command lives next to the code it drives; a command module exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
taking the parsed namespace and returning an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that contribute sub-commands, in the order they appear in ``--help``.
_COMMAND_MODULES: tuple[str, ...] = (
    "jaxsample.training.commands",
    "jaxsample.decoding.commands",
    "jaxsample.labs.commands",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="jaxsample",
        description="Token sampling in JAX: train and inspect the Mini-GPT, generate, run labs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    User errors (``ValueError``, ``FileNotFoundError``, ``KeyError`` raised with a
    message for the user) are printed as one line on stderr with exit status 2,
    never as a traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"jaxsample {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jaxsample {args.command}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    raise SystemExit(main())
