"""What every executor shares: the settings a task needs, the function a task runs, the driver's progress.

A task (a Ray task, a Slurm array task, a local worker process) runs exactly one cell through
:func:`benchmark.runner.run_suite` with ``only=[cell_id]``, so claims, checkpoints, failure logs and
results are written exactly as by ``alb run`` in one process; a retried task resumes the cell from its
last finished round. Before it runs, a task checks that it sees the driver's results folder (a token file
the driver wrote), because results written to a node-local disk would be lost.

The driver hands each task its resolved cell (:class:`CellTask`: the canonical configuration, the id, the
suite's name and axes) and writes the suite's record once: a task validates its one configuration and
re-derives the id from it (a mismatch, e.g. an input file changed since the driver looked, is refused), instead
of re-reading the whole suite file and rewriting its record, which cost cells x tasks on a large array
(``python -m benchmark.perf.dispatch`` measures it).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmark.assumptions import write_suite_record
from benchmark.config import CellConfig
from benchmark.errors import AlbError, ConfigError
from benchmark.runner import SuiteOutcome, run_suite
from benchmark.store import SuiteStore, headline_metric
from benchmark.suite import Cell, Suite, load_suite

DRIVERS_DIR = ".drivers"  # RESULTS/<suite>/.drivers/<token>: one file per driver that hands cells to tasks
BUSY_POLL_SECONDS = 5.0


@dataclass(frozen=True)
class RunSettings:
    """Everything a task needs to run a cell, as plain picklable values with absolute paths."""

    suite_path: Path
    results: Path
    data_dir: Path
    device: str = "auto"
    threads: int | None = None
    precision: str = "auto"
    compile: bool = False
    force: bool = False
    driver_token: str = ""
    env: dict[str, str] = field(default_factory=dict)  # the driver's ALB_* variables, set in every task


@dataclass(frozen=True)
class CellTask:
    """One cell as the driver resolved it: all a task needs to run it, as plain picklable values."""

    suite_name: str
    suite_path: Path
    suite_axes: tuple[str, ...]
    cell_id: str
    config: dict[str, Any]  # CellConfig.canonical()
    cell_axes: dict[str, Any]  # the cell's values of the suite's axes (its label)

    @classmethod
    def of(cls, suite: Suite, cell: Cell) -> CellTask:
        return cls(suite.name, suite.path, tuple(suite.axes), cell.id, cell.config.canonical(), dict(cell.axes))

    def resolve(self) -> Suite:
        """A suite of this one cell; an AlbError when the configuration no longer validates or no longer has
        the id the driver gave it (a component's version or a by-path input changed since)."""
        try:
            config = CellConfig.model_validate(self.config)
        except ValueError as exc:  # pydantic's ValidationError
            raise ConfigError(f"cell {self.cell_id} of suite '{self.suite_name}': its configuration no longer "
                              f"validates in this task: {exc}") from None
        found = config.cell_id()
        if found != self.cell_id:
            raise AlbError(f"cell {self.cell_id} of suite '{self.suite_name}' has the id {found} in this task: a "
                           "component or an input given by path differs from the driver's (other alb code or "
                           "files on this node?); rerun the suite from a node that sees the same code and files")
        cell = Cell(self.cell_id, config, dict(self.cell_axes))
        return Suite(self.suite_name, self.suite_path, "", [cell], list(self.suite_axes), [])


def cell_tasks(suite: Suite, store: SuiteStore, cells: list[Cell]) -> list[CellTask]:
    """The tasks of ``cells``; writes the suite's record once, for all of them (tasks do not)."""
    write_suite_record(store.root, suite)
    return [CellTask.of(suite, cell) for cell in cells]


def forwarded_env() -> dict[str, str]:
    """The driver's ALB_* environment variables (data folder, fault injection in tests, ...)."""
    return {k: v for k, v in os.environ.items() if k.startswith("ALB_")}


@dataclass
class CellReport:
    """What a task sends back to the driver about its cell."""

    cell_id: str
    status: str  # done | cached | failed | busy
    accuracy: float | None = None  # the cell's final test metric: accuracy, or map_50 for detection (metric)
    metric: str = "accuracy"
    n_labeled: int | None = None
    seconds: float = 0.0
    error: str = ""


def cores() -> int:
    """The CPU cores this process may use."""
    with contextlib.suppress(AttributeError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def select_cell(suite: Suite, ref: str) -> Cell:
    """The cell whose id is ``ref`` or starts with it; an error naming close ids otherwise."""
    exact = [c for c in suite.cells if c.id == ref]
    matches = exact or [c for c in suite.cells if c.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(c.id for c in matches[:10])
        raise AlbError(f"--cell {ref} matches {len(matches)} cells of suite '{suite.name}' ({shown}); "
                       "give more of the id")
    close = difflib.get_close_matches(ref, [c.id for c in suite.cells], n=5, cutoff=0.3)
    shown = close or [c.id for c in suite.cells[:5]]
    hint = f"; {'close' if close else 'some'} ids: {', '.join(shown)}"
    raise AlbError(f"suite '{suite.name}' has no cell '{ref}'{hint} (ids: alb run {suite.path} --dry-run)")


def pending_cells(suite: Suite, store: SuiteStore, force: bool) -> list[Cell]:
    """The cells still to run, the costliest first (:func:`longest_first`)."""
    return longest_first([c for c in suite.cells if force or not store.is_done(c.id)])


def longest_first(cells: list[Cell]) -> list[Cell]:
    """``cells`` by estimated cost (benchmark/cost.py: images through the backbone), the costliest first,
    ties in suite order. Handing out the longest tasks first keeps a pool of workers from ending with
    one long cell running alone (the longest-processing-time rule); pre-training is left out, since
    cells share it through a cache."""
    from benchmark.cost import cell_cost, dataset_sizes

    def estimate(cell: Cell) -> float:
        pool, n_test = dataset_sizes(cell.config)
        return cell_cost(cell.config, pool, n_test).seconds(1.0)

    try:
        costs = {cell.id: estimate(cell) for cell in cells}
    except (AlbError, OSError):  # a dataset spec that cannot be read (dataset_info's ConfigError): each cell
        return cells              # then fails with that error when it loads its data, as without the ordering
    return sorted(cells, key=lambda cell: -costs[cell.id])


def announce_driver(store: SuiteStore) -> str:
    """Write the token file tasks look for (:func:`check_shared_results`); returns the token."""
    token = uuid.uuid4().hex
    path = store.dir / DRIVERS_DIR / token
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{socket.gethostname()} pid {os.getpid()}\n")
    return token


def retire_driver(store: SuiteStore, token: str) -> None:
    with contextlib.suppress(OSError):
        (store.dir / DRIVERS_DIR / token).unlink()


def check_shared_results(settings: RunSettings, store: SuiteStore) -> None:
    """Fail when this task cannot see the results folder the driver wrote to."""
    if not settings.driver_token or (store.dir / DRIVERS_DIR / settings.driver_token).is_file():
        return
    raise AlbError(f"this task on host {socket.gethostname()} does not see the results folder {store.dir} "
                   f"of the driver (its token file {DRIVERS_DIR}/{settings.driver_token} is missing): put "
                   "--results (and the suite file and --data-dir) on storage shared by all nodes")


@contextlib.contextmanager
def _env_set(env: dict[str, str]) -> Iterator[None]:
    """The driver's variables for the duration of one task; workers (Ray) are reused by later tasks."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _TaskReporter:
    """Collects what :func:`run_suite` reports about the task's one cell, silently."""

    def __init__(self, cell_id: str) -> None:
        self.report = CellReport(cell_id, "cached")

    def __enter__(self) -> _TaskReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def cell_events(self, cell: Cell, cfg_rounds: int) -> Any:
        from benchmark.progress import CellEvents

        return CellEvents()

    def skipped(self, cell: Cell, why: str) -> None:
        self.report.status = "busy" if "running" in why else "cached"

    def cell_failed(self, cell: Cell, exc: BaseException, log: Path) -> None:
        # the driver's reporter adds "(traceback in LOG)" once
        self.report.status, self.report.error = "failed", f"{type(exc).__name__}: {exc}"

    def cell_finished(self, cell: Cell, rows: list[dict[str, Any]], seconds: float) -> None:
        last = rows[-1]
        self.report.status, self.report.seconds = "done", seconds
        self.report.metric, self.report.accuracy = headline_metric(last)
        self.report.n_labeled = int(last["n_labeled"])


def run_cell_task(settings: RunSettings, task: CellTask | str, executor: str,
                  wait_if_busy: bool = True) -> CellReport:
    """The body of every task: run (or resume) one cell. With ``wait_if_busy`` a cell claimed by another
    process is waited for (a dead attempt on another host leaves a claim that goes stale within minutes).

    ``task``: the resolved cell (:class:`CellTask`), or a bare cell id as alb handed out before, for which the
    suite file is read and validated again and its record rewritten (a job submitted by an earlier alb)."""
    with _env_set(settings.env):
        if isinstance(task, CellTask):
            cell_id, write_record = task.cell_id, False
            store = SuiteStore(settings.results, task.suite_name)
            check_shared_results(settings, store)
            suite = task.resolve()
        else:
            cell_id, write_record = task, True
            suite = load_suite(settings.suite_path)
            store = SuiteStore(settings.results, suite.name)
            check_shared_results(settings, store)
            if not any(c.id == cell_id for c in suite.cells):
                raise AlbError(f"suite file {settings.suite_path} no longer has cell {cell_id}")
        while True:
            reporter = _TaskReporter(cell_id)
            run_suite(suite, store, settings.device, settings.data_dir, force=settings.force,
                      threads=settings.threads, precision=settings.precision, compile=settings.compile,
                      reporter_factory=lambda total, cached, r=reporter: r, only=[cell_id], executor=executor,
                      write_record=write_record)
            if reporter.report.status != "busy" or not wait_if_busy:
                return reporter.report
            time.sleep(BUSY_POLL_SECONDS)
            settings = replace(settings, force=False)  # someone else ran it meanwhile: do not redo it


class DriverProgress:
    """The driver's side: progress lines and counts from the reports of finished tasks."""

    def __init__(self, suite: Suite, store: SuiteStore, cached: int,
                 reporter_factory: Callable[..., Any]) -> None:
        self.cells = {c.id: c for c in suite.cells}
        self.store = store
        self.outcome = SuiteOutcome(cached=cached)
        self.reporter = reporter_factory(total=len(suite.cells), cached=cached)

    def __enter__(self) -> DriverProgress:
        self.reporter.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.reporter.__exit__(*exc)

    def record(self, report: CellReport) -> None:
        cell = self.cells[report.cell_id]
        if report.status == "done":
            self.outcome.done += 1
            self.reporter.cell_finished(cell, [{report.metric: report.accuracy, "n_labeled": report.n_labeled}],
                                        report.seconds)
        elif report.status == "failed":
            self.failed(report.cell_id, report.error)
        elif report.status == "busy":
            self.outcome.busy += 1
            self.reporter.skipped(cell, "running in another process")
        else:
            self.outcome.cached += 1
            self.reporter.skipped(cell, "finished in another process")

    def failed(self, cell_id: str, error: str, write_log: bool = False) -> None:
        """A failed cell; ``write_log`` for failures the task could not record itself (a crashed worker)."""
        self.outcome.failed += 1
        log = self.store.failed_path(cell_id)
        if write_log:
            self.store.write_failure(cell_id, f"cell {cell_id}: the task running it failed\n{error}\n")
            self.store.log_event("cell_failed", cell_id=cell_id, error=error.splitlines()[0] if error else "")
        from benchmark.progress import TaskError

        self.reporter.cell_failed(self.cells[cell_id], TaskError(error.strip() or "task failed"), log)
