"""Progress display: a live rich display on a terminal, one plain line per cell otherwise."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.store import METRIC_NAMES, headline_metric
from benchmark.suite import Cell

if TYPE_CHECKING:
    from rich.console import Console


class CellEvents:
    """Callbacks the runner uses to report the progress of one cell; these do nothing."""

    def round_started(self, round_index: int, rounds: int) -> None: ...
    def epoch_finished(self, epoch: int, epochs: int, loss: float) -> None: ...
    def round_finished(self, row: dict[str, Any]) -> None: ...


class TaskError(RuntimeError):
    """A cell's failure as a task (a worker, Ray or Slurm task) reported it: its text is already
    'ErrorType: message', shown as it is."""


def describe_error(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, TaskError) else f"{type(exc).__name__}: {exc}"


class PlainReporter:
    """Readable in CI logs: one line per finished, failed or skipped cell."""

    def __init__(self, total: int, cached: int) -> None:
        self.total, self.finished = total, cached
        if cached:
            self._print(f"{cached}/{total} cells already finished (cached)")

    def _print(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def __enter__(self) -> PlainReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def cell_events(self, cell: Cell, cfg_rounds: int) -> CellEvents:
        return CellEvents()

    def skipped(self, cell: Cell, why: str) -> None:
        self._print(f"skip {cell.id} ({cell.label()}): {why}")

    def cell_failed(self, cell: Cell, exc: BaseException, log: Path) -> None:
        self.finished += 1
        self._print(f"[{self.finished}/{self.total}] FAILED {cell.id} ({cell.label()}): "
                    f"{describe_error(exc)} (traceback in {log})")

    def cell_finished(self, cell: Cell, rows: list[dict[str, Any]], seconds: float) -> None:
        self.finished += 1
        last = rows[-1]
        metric, value = headline_metric(last)
        self._print(f"[{self.finished}/{self.total}] done {cell.id} ({cell.label()}): "
                    f"{METRIC_NAMES[metric]} {value:.4f} at {last['n_labeled']} labels, {seconds:.1f}s")


class _RichCellEvents(CellEvents):
    def __init__(self, reporter: RichReporter, cell: Cell, rounds: int) -> None:
        self.reporter, self.cell, self.rounds = reporter, cell, rounds
        self.round = 0

    def round_started(self, round_index: int, rounds: int) -> None:
        self.round = round_index
        self.reporter.progress.update(self.reporter.cell_task, completed=round_index, total=rounds + 1,
                                      description=self._text())

    def epoch_finished(self, epoch: int, epochs: int, loss: float) -> None:
        self.reporter.progress.update(self.reporter.cell_task,
                                      description=f"{self._text()} epoch {epoch}/{epochs} loss {loss:.3f}")

    def round_finished(self, row: dict[str, Any]) -> None:
        self.reporter.progress.update(self.reporter.cell_task, completed=row["round"] + 1)

    def _text(self) -> str:
        return f"  {self.cell.label()} round {self.round}/{self.rounds}"


class RichReporter(PlainReporter):
    """cells done / total with ETA, the current cell's rounds and epochs."""

    def __init__(self, total: int, cached: int, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.total, self.finished = total, cached
        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console)
        self.suite_task = self.progress.add_task("cells", total=total, completed=cached)
        self.cell_task = self.progress.add_task("", total=1)

    def _print(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def cell_events(self, cell: Cell, cfg_rounds: int) -> CellEvents:
        return _RichCellEvents(self, cell, cfg_rounds)

    def cell_failed(self, cell: Cell, exc: BaseException, log: Path) -> None:
        super().cell_failed(cell, exc, log)
        self.progress.update(self.suite_task, completed=self.finished)

    def cell_finished(self, cell: Cell, rows: list[dict[str, Any]], seconds: float) -> None:
        super().cell_finished(cell, rows, seconds)
        self.progress.update(self.suite_task, completed=self.finished)


def make_reporter(total: int, cached: int, quiet: bool = False) -> PlainReporter:
    if not quiet and sys.stderr.isatty():
        return RichReporter(total, cached)
    return PlainReporter(total, cached)
