"""One round of the first-compile table, in a fresh process (see ``suites.compile_suite``).

``python -m benchmarks.compile_probe BATCH VOCAB NAME...`` prints one JSON line:
the seconds of the first compile of each named function, in the order given.
"""

from __future__ import annotations

import json
import sys

from benchmarks.suites import compile_once


def main(argv: list[str] | None = None) -> int:
    """Parse ``BATCH VOCAB NAME...``, compile each function once and print the times."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        print("usage: python -m benchmarks.compile_probe BATCH VOCAB NAME...", file=sys.stderr)
        return 2
    batch, vocab, names = int(args[0]), int(args[1]), args[2:]
    print(json.dumps(compile_once(batch, vocab, names)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
