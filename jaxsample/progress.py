"""Progress that reaches a terminal and a log file alike.

On a terminal, :class:`Progress` draws a tqdm bar on stderr. When stderr is not a
terminal (a log file, CI, a notebook cell), it prints a plain line such as
``train small: 120/1000 steps (12%), 14 s, train=2.104 val=2.131`` at most every
``interval`` seconds, plus one line at the end, so that a long job is never silent.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

from tqdm.auto import tqdm

__all__ = ["Progress", "note"]

#: Seconds between two plain progress lines when stderr is not a terminal.
DEFAULT_INTERVAL = 5.0


def note(message: str, stream: TextIO | None = None) -> None:
    """Print one line on stderr (or ``stream``) and flush it at once.

    Args:
        message: the text, without a trailing newline.
        stream: where to write; ``sys.stderr`` when ``None``.
    """
    out = sys.stderr if stream is None else stream
    print(message, file=out, flush=True)


class Progress:
    """A progress bar on a terminal, plain lines every few seconds elsewhere.

    Use it as a context manager and call :meth:`update` after each unit of work::

        with Progress(total=1000, desc="train small", unit="steps") as bar:
            for step in range(1000):
                ...
                bar.update(1, train=f"{loss:.3f}")

    Args:
        total: number of units in all (``> 0``), or ``None`` when unknown.
        desc: what is progressing, printed first.
        unit: the unit's plural name.
        initial: units already done (a resumed run).
        enabled: ``False`` shows nothing at all.
        interval: seconds between plain lines when stderr is not a terminal.
        stream: where to write; ``sys.stderr`` when ``None``.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "steps",
        *,
        initial: int = 0,
        enabled: bool = True,
        interval: float = DEFAULT_INTERVAL,
        stream: TextIO | None = None,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = initial
        self.enabled = enabled
        self.interval = interval
        self.stream = sys.stderr if stream is None else stream
        self.postfix: dict[str, str] = {}
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False
        self._bar: Any = None
        self._start = time.perf_counter()
        self._last = self._start
        self._printed_n = initial

    def __enter__(self) -> Progress:
        self._start = self._last = time.perf_counter()
        if self.enabled and self.tty:
            self._bar = tqdm(
                total=self.total,
                initial=self.n,
                desc=self.desc,
                unit=self.unit.rstrip("s") or self.unit,
                file=self.stream,
                dynamic_ncols=True,
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and exc_type is None and self.n != self._printed_n:
            self._line()

    def update(self, n: int = 1, **postfix: str) -> None:
        """Record ``n`` more units done and, optionally, figures to show after the count.

        Args:
            n: units just completed (``>= 0``).
            **postfix: short labelled figures (``train="2.104"``), kept until replaced.
        """
        self.n += n
        self.postfix.update(postfix)
        if not self.enabled:
            return
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(self.postfix, refresh=False)
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self._line()

    def text(self) -> str:
        """The plain progress line as it would be printed now."""
        elapsed = time.perf_counter() - self._start
        if self.total:
            count = f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)"
        else:
            count = f"{self.n} {self.unit}"
        extra = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        return f"{self.desc}: {count}, {elapsed:.0f} s" + (f", {extra}" if extra else "")

    def _line(self) -> None:
        self._printed_n = self.n
        note(self.text(), self.stream)
