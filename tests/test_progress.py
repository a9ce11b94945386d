"""Progress output: a live rich display on terminals, readable lines in CI logs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from benchmark.progress import PlainReporter, RichReporter, make_reporter
from benchmark.runner import run_suite
from benchmark.store import SuiteStore
from benchmark.suite import load_suite


def test_plain_lines_when_not_a_terminal(tiny_suite: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(make_reporter(total=1, cached=0), PlainReporter)
    suite = load_suite(tiny_suite)
    outcome = run_suite(suite, SuiteStore(tmp_path, suite.name), "cpu", tmp_path)
    assert outcome.done == 4
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[0] for line in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert all(" done " in line and "accuracy" in line for line in lines)


def test_rich_display_tracks_cells_rounds_and_epochs(tiny_suite: Path, tmp_path: Path) -> None:
    from rich.console import Console

    suite = load_suite(tiny_suite)
    screen = io.StringIO()
    reporters: list[RichReporter] = []

    def factory(total: int, cached: int) -> RichReporter:
        reporter = RichReporter(total, cached, Console(file=screen, force_terminal=True, width=160))
        reporters.append(reporter)
        return reporter

    outcome = run_suite(suite, SuiteStore(tmp_path, suite.name), "cpu", tmp_path, reporter_factory=factory)
    assert outcome.done == 4
    tasks = {task.id: task for task in reporters[0].progress.tasks}
    cells = tasks[reporters[0].suite_task]
    assert (cells.completed, cells.total) == (4, 4)
    current = tasks[reporters[0].cell_task]
    assert current.completed == current.total == 3  # rounds 0..2 of the last cell
    assert "epoch 2/2" in current.description
    assert "done" in screen.getvalue()
