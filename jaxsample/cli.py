"""The ``jaxsample`` command line: ``train``, ``info``, ``generate``, ``sweep``, ``vocab``, ``lab``.

Each sub-command lives next to the code it drives; a command module exposes
``register(subparsers)``, which adds its parser with :func:`add_command` (its help,
its description and ``func``, a callable taking the parsed namespace and returning an
exit status) and then its arguments.

Compiled code is kept between runs in JAX's persistent compilation cache, in a
per-user folder (see :func:`cache_dir`), so only the first run of a command with
given settings spends its time compiling.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

from jaxsample import __version__

__all__ = ["CACHE_ENV", "CACHE_OFF", "add_command", "build_parser", "cache_dir", "main"]

# Modules that contribute sub-commands, in the order they appear in ``--help``.
_COMMAND_MODULES: tuple[str, ...] = (
    "jaxsample.training.commands",
    "jaxsample.decoding.commands",
    "jaxsample.decoding.sweep_command",
    "jaxsample.data.commands",
    "jaxsample.labs.commands",
)

#: Environment variable naming the compilation-cache folder.
CACHE_ENV = "JAXSAMPLE_CACHE_DIR"
#: Values of :data:`CACHE_ENV` that turn the cache off (compared case-insensitively).
CACHE_OFF = ("off", "0", "none", "false", "no")

_EPILOG = (
    f"Compiled code is cached between runs in $XDG_CACHE_HOME/jaxsample/jax (default "
    f"~/.cache/jaxsample/jax); set {CACHE_ENV}=DIR to move it or {CACHE_ENV}=off to turn it "
    "off. The first run of a command with new settings compiles (a note on stderr says so); "
    "later runs start in a few seconds."
)


def cache_dir(environ: dict[str, str] | None = None) -> Path | None:
    """The folder of the persistent compilation cache, or ``None`` when it is off.

    Args:
        environ: the environment to read (``os.environ`` when ``None``).

    Returns:
        ``$JAXSAMPLE_CACHE_DIR`` if set (``None`` if it is empty or one of
        :data:`CACHE_OFF`), else ``$XDG_CACHE_HOME/jaxsample/jax``, else
        ``~/.cache/jaxsample/jax``.
    """
    env = os.environ if environ is None else environ
    value = env.get(CACHE_ENV)
    if value is not None:
        if value.strip() == "" or value.strip().lower() in CACHE_OFF:
            return None
        return Path(value).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "jaxsample" / "jax"


_cache_state: dict[str, str | None] = {}


def _enable_cache(prog: str) -> None:
    """Point JAX's persistent compilation cache at :func:`cache_dir` (once per process).

    While the cache is on, the first compilation that misses it prints one line,
    ``jaxsample CMD: compiling (first run only; cached in DIR)``, on stderr. Nothing
    is changed when the cache is off or JAX's cache folder was already set.
    """
    _cache_state["prog"] = prog
    if "dir" in _cache_state:
        return
    _cache_state["dir"] = None
    folder = cache_dir()
    if folder is None or jax.config.values.get("jax_compilation_cache_dir"):
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"{prog}: note: compilation cache off ({_os_error_text(err)})", file=sys.stderr)
        return
    _cache_state["dir"] = str(folder)
    settings: dict[str, object] = {
        "jax_compilation_cache_dir": str(folder),
        # Cache every compiled function, however quick to compile or small.
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": -1,
    }
    for name, value in settings.items():
        jax.config.update(name, value)  # type: ignore[no-untyped-call]
    announced = False

    def listener(event: str, **_: object) -> None:
        nonlocal announced
        if announced or event != "/jax/compilation_cache/cache_misses":
            return
        announced = True
        print(
            f"{_cache_state['prog']}: compiling (first run only; cached in {folder})",
            file=sys.stderr,
            flush=True,
        )

    jax.monitoring.register_event_listener(listener)


def add_command(
    subparsers: Any,
    name: str,
    run: Callable[[argparse.Namespace], int],
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    """Add the sub-command ``name`` to an argparse sub-parser set; return its parser.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
        name: The command's name (``jaxsample NAME``).
        run: Its action: called with the parsed namespace, returns the exit status
            (stored as the namespace's ``func``).
        summary: One line for the command list of ``jaxsample --help``.
        description: The paragraph at the top of ``jaxsample NAME --help``.

    Returns:
        The command's ``ArgumentParser``, for its arguments.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=description
    )
    parser.set_defaults(func=run, command_parser=parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="jaxsample",
        description="Token sampling in JAX: train and inspect the Mini-GPT, generate, run labs.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"jaxsample {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _os_error_text(err: OSError) -> str:
    """One line naming the path and the reason of an ``OSError``."""
    if err.filename is None:
        return str(err)
    reason = err.strerror or type(err).__name__
    path = f"{err.filename} -> {err.filename2}" if err.filename2 else str(err.filename)
    return f"{path}: {reason}"


def unrecognised(extra: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """The error for arguments a command's ``parser`` does not know, with hints.

    An unknown option gets the command's closest option (``-n`` -> ``--n``,
    ``--quik`` -> ``--quick``); a word left over where the command takes a
    ``prompt`` gets a reminder to quote a prompt of several words.
    """
    options = [s for action in parser._actions for s in action.option_strings]
    prompt = any(action.dest == "prompt" for action in parser._actions)
    hints: list[str] = []
    follows_option = False  # the word may be the value of an unknown option
    for word in extra:
        is_option = word.startswith("-") and len(word) > 1
        if is_option:
            close = difflib.get_close_matches(word.split("=", 1)[0], options, n=1, cutoff=0.6)
            if close:
                hints.append(f"did you mean {close[0]}?")
        elif prompt and not follows_option:
            hints.append('a prompt of several words is one argument: quote it, e.g. "Tomorrow she"')
        follows_option = is_option and "=" not in word
    text = "unrecognized arguments: " + " ".join(extra)
    return "; ".join([text, *dict.fromkeys(hints)])  # each hint once


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    User errors (``ValueError``; ``OSError`` such as a missing, read-only or
    misplaced ``--out`` or model folder) are printed as one line on stderr, naming
    the path and the reason, with exit status 2, never as a traceback. Arguments a
    command does not know are reported with that command's usage and a hint
    (:func:`unrecognised`), also with status 2.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        args.command_parser.error(unrecognised(extra, args.command_parser))
    prog = f"jaxsample {args.command}"
    try:
        _enable_cache(prog)
        status: int = args.func(args)
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of stdout went away (``jaxsample vocab | head``): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        print(f"{prog}: error: {_os_error_text(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    raise SystemExit(main())
