"""Progress that shows with and without a terminal.

On a terminal: a rich progress bar. Otherwise (a log file, CI, nohup) a bar draws nothing
useful, so a plain line is printed every `every_seconds` and at the end:

    [train] 40/300 steps (13%) loss 0.5123 | elapsed 1m02s | eta 6m40s

so a log file shows that the job is alive and how far it has to go.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

PLAIN_EVERY_SECONDS = 30.0


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class ProgressReporter:
    """Reports `completed / total` units of work with optional fields (e.g. loss).

    enabled=False reports nothing; interactive=None decides by whether `stream` is a terminal.
    """

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "steps",
        completed: int = 0,
        enabled: bool = True,
        stream: IO[str] | None = None,
        interactive: bool | None = None,
        every_seconds: float = PLAIN_EVERY_SECONDS,
    ):
        self.label, self.total, self.unit = label, total, unit
        self.completed = self._start_completed = completed
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.every_seconds = every_seconds
        self.fields: dict[str, Any] = {}
        self._start = self._last_line = time.monotonic()
        self._bar: Progress | None = None
        self._bar_task: Any = None
        self._parent: ProgressReporter | None = None

    def child(self, label: str, total: int, unit: str) -> "ProgressReporter":
        """A reporter for work done inside this one (an evaluation during training): on a
        terminal, a second line of the same live display (rich allows one at a time)."""
        child = ProgressReporter(label, total, unit, enabled=self.enabled, stream=self.stream,
                                 interactive=self.interactive, every_seconds=self.every_seconds)
        child._parent = self
        return child

    def __enter__(self) -> "ProgressReporter":
        self._start = self._last_line = time.monotonic()
        parent_bar = self._parent._bar if self._parent is not None else None
        if self.enabled and parent_bar is not None:
            self._bar = parent_bar
            self._bar_task = parent_bar.add_task(self.label, total=self.total, completed=self.completed, info="")
        elif self.enabled and self.interactive:
            self._bar = Progress(
                TextColumn(f"[bold]{self.label}[/]"), BarColumn(),
                TextColumn(f"{{task.completed}}/{{task.total}} {self.unit}"), TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(), TimeRemainingColumn(),
                console=Console(file=self.stream), transient=False,
            )
            self._bar.__enter__()
            self._bar_task = self._bar.add_task(self.label, total=self.total, completed=self.completed, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None and self._parent is not None:
            self._bar.remove_task(self._bar_task)
            self._bar = None
        elif self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        elif self.enabled and self.completed > self._start_completed:
            self._print_line()

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.completed += n
        self.fields.update(fields)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._bar_task, completed=self.completed, info=self._fields_text())
        elif time.monotonic() - self._last_line >= self.every_seconds:
            self._print_line()

    def note(self, message: str) -> None:
        """A one-off message (a warning) that must not be lost under the bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=self.stream, flush=True)

    def eta_seconds(self) -> float | None:
        done = self.completed - self._start_completed
        if done <= 0:
            return None
        rate = (time.monotonic() - self._start) / done
        return rate * max(0, self.total - self.completed)

    def line(self) -> str:
        """The plain progress line for the current state."""
        percent = 100.0 * self.completed / self.total if self.total else 100.0
        eta = self.eta_seconds()
        parts = [f"[{self.label}] {self.completed}/{self.total} {self.unit} ({percent:.0f}%)"]
        if self.fields:
            parts[0] += " " + self._fields_text()
        parts.append(f"elapsed {format_duration(time.monotonic() - self._start)}")
        parts.append(f"eta {'-' if eta is None else format_duration(eta)}")
        return " | ".join(parts)

    def _fields_text(self) -> str:
        return " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in self.fields.items())

    def _print_line(self) -> None:
        self._last_line = time.monotonic()
        print(self.line(), file=self.stream, flush=True)
