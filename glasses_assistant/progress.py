# SPDX-License-Identifier: GPL-3.0-or-later
"""Progress for the long set-up steps: downloads, joins, sha256 checks, builds.

A new user's first ``make run`` moves a gigabyte and a half; a step that prints nothing for a
minute looks like a hang. Every long step reports through a :class:`Reporter`: one-off lines
(what is happening, what was found in a cache) and meters for work of known size (bytes),
which show size, rate and time left.

On a terminal a meter is a tqdm bar that redraws in place. Anywhere else (CI logs, ``make run
> log``, a pipe) a bar's carriage returns would pile up into one unreadable line, so a meter
prints a plain line every ``interval`` seconds instead, and one when it ends. A caller that
passes a plain ``Callable[[str], None]`` (library code, tests) gets those plain lines through
its callable.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

log = logging.getLogger(__name__)

LineSink = Callable[[str], None]


def human_bytes(n: float) -> str:
    """1.5 GB, 98.4 MB, 512 B: sizes as the README and the catalogue write them (powers of 1000)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover - unreachable: GB is the last unit


def human_seconds(s: float) -> str:
    """4 s, 2m05s, 1h02m: a duration short enough to read at a glance."""
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Meter:
    """Progress of one step of known size; use as a context manager, feed it with :meth:`update`."""

    def __init__(self, total: int, desc: str, line: LineSink, *, interval: float, unit: str = "B",
                 initial: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(0, int(total))
        self.desc = desc
        self.done = int(initial)
        self._initial = int(initial)  # a resumed download: its rate counts only what moved now
        self._line = line
        self._interval = interval
        self._unit = unit
        self._clock = clock
        self._t0 = clock()
        self._last = self._t0

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self._line(self._status(final=True))

    def update(self, n: int) -> None:
        self.done += n
        now = self._clock()
        if now - self._last >= self._interval and self.done < 0.99 * self.total:  # the end has its own line
            self._last = now
            self._line(self._status(final=False))

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def _fmt(self, n: float) -> str:
        return human_bytes(n) if self._unit == "B" else f"{n:.0f} {self._unit}"

    def _status(self, *, final: bool) -> str:
        elapsed = max(self._clock() - self._t0, 1e-6)
        rate = (self.done - self._initial) / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = f"  {self.desc}: {self._fmt(self.done)} of {self._fmt(self.total)} ({pct:.0f}%)"
        if final:
            return text + f" in {human_seconds(elapsed)}" + (f", {self._fmt(rate)}/s" if rate > 0 else "")
        left = (self.total - self.done) / rate if rate > 0 else None
        return text + (f", {self._fmt(rate)}/s, about {human_seconds(left)} left" if left is not None else "")


class _TqdmMeter(Meter):
    """The same meter drawn as a tqdm bar on a terminal (size, rate and time left, redrawn in place)."""

    def __init__(self, total: int, desc: str, stream: IO[str], *, initial: int = 0, unit: str = "B") -> None:
        from tqdm import tqdm

        super().__init__(total, desc, lambda _m: None, interval=0, unit=unit, initial=initial)
        # A terminal that reports no size (some ptys, `script` without stty) makes tqdm hide the bar
        # (0 rows: every bar counts as off screen): give it 80x24 instead.
        try:
            sized = os.get_terminal_size(stream.fileno()).columns > 0
        except (OSError, ValueError, AttributeError):
            sized = False
        self._bar: Any = tqdm(total=total, initial=initial, desc="  " + desc, unit=unit, unit_scale=True,
                              unit_divisor=1000, file=stream, dynamic_ncols=sized, ncols=None if sized else 80,
                              nrows=None if sized else 24,
                              mininterval=0.2, leave=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.close()

    def update(self, n: int) -> None:
        self.done += n
        self._bar.update(n)

    def set_description(self, desc: str) -> None:
        self.desc = desc
        self._bar.set_description_str("  " + desc, refresh=False)


class Reporter:
    """Lines and meters for set-up commands.

    ``line`` prints a one-off line; ``tty`` (default: whether ``stream`` is a terminal) picks a
    redrawn bar over plain periodic lines for meters.
    """

    def __init__(self, line: LineSink | None = None, *, stream: IO[str] | None = None, tty: bool | None = None,
                 interval: float = 10.0) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._line = line or self._print
        isatty = getattr(self._stream, "isatty", None)
        self.tty = bool(isatty and isatty()) if tty is None else tty
        self.interval = interval

    def _print(self, msg: str) -> None:
        print(msg, file=self._stream, flush=True)

    def __call__(self, msg: str) -> None:
        self._line(msg)

    def meter(self, total: int, desc: str, *, initial: int = 0, unit: str = "B") -> Meter:
        """A meter for ``total`` units of work (bytes unless ``unit`` says otherwise)."""
        if self.tty:
            return _TqdmMeter(total, desc, self._stream, initial=initial, unit=unit)
        return Meter(total, desc, self._line, interval=self.interval, initial=initial, unit=unit)


def reporter(progress: LineSink | Reporter | None) -> Reporter:
    """A :class:`Reporter` for whatever a caller passed as ``progress`` (None: silent)."""
    if isinstance(progress, Reporter):
        return progress
    if progress is None:
        return Reporter(lambda _m: None, tty=False)
    return Reporter(progress, tty=False)


class Waiting:
    """A step of unknown length (a build, a package install): says it is still going.

    Prints ``still DESC: 40 s (about 1 min)`` every ``interval`` seconds from a background
    thread until the ``with`` block ends, so a silent subprocess never looks like a hang.
    """

    def __init__(self, report: Reporter, desc: str, expected: str = "") -> None:
        import threading

        self._report = report
        self._desc = desc
        self._expected = expected
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="progress-waiting", daemon=True)
        self._t0 = time.monotonic()

    def _tick(self) -> None:
        while not self._stop.wait(self._report.interval):
            about = f" (expected: {self._expected})" if self._expected else ""
            self._report(f"  ... still {self._desc}: {human_seconds(time.monotonic() - self._t0)}{about}")

    def __enter__(self) -> Waiting:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0
