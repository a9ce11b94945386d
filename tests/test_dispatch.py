"""A task gets its resolved cell from the driver: no suite file read, no suite record rewritten, ids checked."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
from conftest import TINY_SUITE, write_suite

from benchmark import executors
from benchmark.errors import AlbError
from benchmark.executors.common import CellTask, RunSettings, cell_tasks, run_cell_task
from benchmark.perf.dispatch import main as dispatch_main
from benchmark.perf.dispatch import stubbed_cell_runner
from benchmark.store import SUITE_RECORD, SuiteStore
from benchmark.suite import Suite, load_suite


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    return load_suite(write_suite(tmp_path, "tiny", TINY_SUITE))


def test_a_task_resolves_its_cell_without_the_suite_file(suite: Suite, tmp_path: Path) -> None:
    store = SuiteStore(tmp_path / "results", suite.name)
    tasks = cell_tasks(suite, store, suite.cells)
    assert (store.dir / SUITE_RECORD).is_file()  # written once, by the driver
    task = pickle.loads(pickle.dumps(tasks[1]))  # what a worker receives
    suite.path.unlink()  # the task never reads it
    resolved = task.resolve()
    assert [c.id for c in resolved.cells] == [suite.cells[1].id]
    assert resolved.cells[0].config == suite.cells[1].config and resolved.cells[0].axes == suite.cells[1].axes
    assert resolved.name == suite.name and resolved.axes == suite.axes


def test_a_task_refuses_a_cell_whose_id_differs(suite: Suite, tmp_path: Path) -> None:
    task = CellTask.of(suite, suite.cells[0])
    wrong = dataclasses.replace(task, config={**task.config, "seed": task.config["seed"] + 1})
    with pytest.raises(AlbError, match=f"cell {task.cell_id} .* has the id"):
        wrong.resolve()
    broken = dataclasses.replace(task, config={**task.config, "budget": "lots"})
    with pytest.raises(AlbError, match="no longer validates"):
        broken.resolve()


def test_a_task_runs_its_cell_and_leaves_the_suite_record_alone(suite: Suite, tmp_path: Path) -> None:
    store = SuiteStore(tmp_path / "results", suite.name)
    [task, *_] = cell_tasks(suite, store, suite.cells)
    record = store.dir / SUITE_RECORD
    record.unlink()
    settings = RunSettings(suite.path, store.root, tmp_path / "data", device="cpu")
    with stubbed_cell_runner():
        report = run_cell_task(settings, task, "test", wait_if_busy=False)
        assert report.status == "done" and report.cell_id == task.cell_id
        assert not record.exists()
        # a bare id (a job an earlier alb submitted) still works the old way
        assert run_cell_task(settings, suite.cells[1].id, "test", wait_if_busy=False).status == "done"
    assert record.is_file()
    assert executors.common.CellTask is CellTask


def test_the_dispatch_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert dispatch_main(["--cells", "8", "--tasks", "2"]) == 0
    out = capsys.readouterr().out
    assert "before" in out and "now" in out and "ratio before/now per task" in out
