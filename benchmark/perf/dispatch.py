"""What handing one cell to a task costs on a large suite, with the cell hand-over of before and of now.

    python -m benchmark.perf.dispatch --cells 2000            # 20 tasks of each kind, timed, then extrapolated
    python -m benchmark.perf.dispatch --cells 2000 --tasks 50

A suite of ``--cells`` digits cells (strategies x seeds) is written to a temporary folder, and ``--tasks`` of
its cells are run through :func:`benchmark.executors.common.run_cell_task` as a worker would, with a stub cell
runner (no data, no training: it returns two rows) and the result write stubbed, so what is timed is the task's
own setup: before, the task got a cell id and re-read and validated the whole suite file and rewrote its record;
now it gets its resolved cell (:class:`benchmark.executors.common.CellTask`), validates that one configuration
and re-derives its id, and the driver writes the record once. Both run in this one process, one after the
other (caches warm after the first task; a fresh worker per task, as on Slurm, pays more for the old one).
Timings on a shared machine vary: compare the two figures of one run, not figures of different runs.
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

STRATEGIES = ("random", "entropy", "margin", "least_confidence")


def write_suite(folder: Path, cells: int) -> Path:
    """A suite of ``cells`` digits cells (rounded up to a multiple of len(STRATEGIES))."""
    seeds = -(-cells // len(STRATEGIES))
    path = folder / "dispatch.yaml"
    path.write_text("name: dispatch\ndefaults:\n  dataset: digits\n  backbone: small_cnn\n"
                    "  budget: {initial: 10, query: 10, rounds: 1}\n"
                    f"matrix:\n  strategy: [{', '.join(STRATEGIES)}]\n  seed: {list(range(seeds))}\n")
    return path


@contextlib.contextmanager
def stubbed_cell_runner() -> Iterator[None]:
    """run_cell returns two rows at once and write_result writes nothing: only the task's own work is left."""
    from benchmark import runner
    from benchmark.store import SuiteStore

    def run_cell(cell: Any, ctx: Any, events: Any = None) -> list[dict[str, Any]]:
        return [{"round": r, "n_labeled": 10 * (r + 1), "accuracy": 0.5, "selected": []} for r in range(2)]

    def write_result(self: SuiteStore, cell_id: str, *_: Any) -> Path:
        return self.result_path(cell_id)

    saved = runner.run_cell, SuiteStore.write_result
    runner.run_cell, SuiteStore.write_result = run_cell, write_result  # type: ignore[method-assign]
    try:
        yield
    finally:
        runner.run_cell, SuiteStore.write_result = saved  # type: ignore[method-assign]


def _time_tasks(settings: Any, tasks: Sequence[Any]) -> list[float]:
    from benchmark.executors.common import run_cell_task

    seconds = []
    for task in tasks:
        start = time.perf_counter()
        report = run_cell_task(settings, task, "dispatch benchmark", wait_if_busy=False)
        seconds.append(time.perf_counter() - start)
        if report.status != "done":
            raise RuntimeError(f"the stubbed task reported {report.status}: {report.error}")
    return seconds


def measure(cells: int, tasks: int) -> dict[str, float]:
    """Seconds per task before (cell id) and now (resolved cell), the driver's preparation of all the tasks
    now, and the pickled size of one task's arguments each way."""
    from benchmark.executors.common import RunSettings, announce_driver, cell_tasks
    from benchmark.store import SuiteStore
    from benchmark.suite import load_suite

    with tempfile.TemporaryDirectory() as tmp, stubbed_cell_runner():
        root = Path(tmp)
        suite_path = write_suite(root, cells)
        suite = load_suite(suite_path)
        store = SuiteStore(root / "results", suite.name)
        settings = RunSettings(suite_path, store.root, root / "data", device="cpu", threads=1,
                               driver_token=announce_driver(store))
        start = time.perf_counter()
        handed = cell_tasks(suite, store, suite.cells)
        prepare = time.perf_counter() - start
        step = max(1, len(suite.cells) // tasks)
        picked = list(range(0, len(suite.cells), step))[:tasks]
        _time_tasks(settings, [handed[0]])  # warm-up: imports torch, git commit, ...
        now = _time_tasks(settings, [handed[i] for i in picked])
        store.clear(suite.cells[0].id)
        before = _time_tasks(settings, [suite.cells[i].id for i in picked])
        sizes = (len(pickle.dumps((settings, suite.cells[0].id))), len(pickle.dumps((settings, handed[0]))))
    return {"cells": float(len(suite.cells)), "tasks": float(len(picked)),
            "before_s": statistics.median(before), "now_s": statistics.median(now), "prepare_s": prepare,
            "before_bytes": float(sizes[0]), "now_bytes": float(sizes[1])}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf.dispatch", description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=2000, help="cells of the suite (default 2000)")
    parser.add_argument("--tasks", type=int, default=20, help="tasks timed of each kind (default 20)")
    args = parser.parse_args(argv)
    if args.cells < 1 or args.tasks < 1:
        parser.error("--cells and --tasks must be at least 1")
    r = measure(args.cells, args.tasks)
    n = int(r["cells"])
    print(f"suite of {n} cells, {int(r['tasks'])} tasks of each kind timed (median), stubbed cell runner")
    print(f"before (task gets a cell id, re-reads the suite): {r['before_s'] * 1000:9.1f} ms per task, "
          f"{r['before_s'] * n:8.1f} s for all {n} tasks, {int(r['before_bytes'])} bytes pickled")
    print(f"now (task gets its resolved cell):                 {r['now_s'] * 1000:9.1f} ms per task, "
          f"{r['now_s'] * n + r['prepare_s']:8.1f} s for all {n} tasks incl. {r['prepare_s']:.2f} s in the driver, "
          f"{int(r['now_bytes'])} bytes pickled")
    print(f"ratio before/now per task: {r['before_s'] / r['now_s']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
