"""Rerun cells of a bundle with alb's runner, into a temporary results folder, and compare round by round.

A rerun matches the recorded setup where this machine can: the same kind of device, precision and torch
threads. Then the runs must be identical (alb is bit-reproducible for one setup); otherwise accuracies must
agree within a stated tolerance, and the result says which comparison was made.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmark.bundles.manifest import CellEntry, CellRun
from benchmark.bundles.rows import DEFAULT_TOLERANCE, Rows, runs_difference, same_setup


@dataclass(frozen=True)
class RerunResult:
    cell_id: str
    exact: bool  # identical setup: compared exactly
    setup: str  # 'cpu fp32 1 thread(s)' of the rerun
    difference: str | None  # None: the runs agree
    tolerance: float

    @property
    def matches(self) -> bool:
        return self.difference is None

    def line(self) -> str:
        how = "identical setup, compared exactly" if self.exact else f"other setup, tolerance {self.tolerance}"
        verdict = "matches" if self.matches else f"DOES NOT REPRODUCE at {self.difference}"
        return f"rerun of cell {self.cell_id} on {self.setup} ({how}): {verdict}"


def chosen_cells(ids: list[str], k: int, seed: int) -> list[str]:
    """``k`` of ``ids`` (all when k >= len), drawn reproducibly with ``seed``."""
    return sorted(random.Random(seed).sample(sorted(ids), min(k, len(ids))))


def rerun_setup(recorded: CellRun) -> tuple[str, str, int | None]:
    """(device, precision, threads) for a rerun: the recorded ones where this machine has them."""
    import torch

    kind = (recorded.device or "cpu").split(":")[0]
    if kind == "cuda" and torch.cuda.is_available():
        return "cuda", recorded.precision or "auto", recorded.torch_threads
    if kind == "cpu":
        return "cpu", recorded.precision or "auto", recorded.torch_threads
    return "cpu", "auto", recorded.torch_threads


def run_one(entry: CellEntry, data_dir: Path, results: Path) -> tuple[Rows, CellRun] | str:
    """Run the entry's cell into ``results``; its rows and setup, or the error of a failed run."""
    import pyarrow.parquet as pq
    import torch

    from benchmark.bundles.create import cell_run
    from benchmark.config import CellConfig
    from benchmark.progress import PlainReporter
    from benchmark.runner import run_suite
    from benchmark.store import SuiteStore
    from benchmark.suite import Cell, Suite

    config = CellConfig.model_validate(entry.config)
    cell = Cell(config.cell_id(), config, {})
    suite = Suite("rerun", results / "rerun.yaml", "", [cell], [], [])
    store = SuiteStore(results, suite.name)
    device, precision, threads = rerun_setup(entry.run)
    before = torch.get_num_threads()
    try:
        outcome = run_suite(suite, store, device, data_dir, threads=threads, precision=precision,
                            reporter_factory=PlainReporter)
    finally:
        torch.set_num_threads(before)
    path = store.result_path(cell.id)
    if outcome.failed or not path.is_file():
        log = store.failed_path(cell.id)
        text = log.read_text().strip().splitlines()[-1] if log.is_file() else "no result written"
        return f"the rerun failed: {text}"
    records = pq.read_table(path).to_pylist()
    return Rows.of(records), cell_run(records[0])


def rerun_cell(entry: CellEntry, bundled: Rows, data_dir: Path,
               tolerance: float = DEFAULT_TOLERANCE) -> RerunResult:
    with tempfile.TemporaryDirectory(prefix="alb-verify-") as tmp:
        outcome = run_one(entry, data_dir, Path(tmp))
    if isinstance(outcome, str):
        return RerunResult(entry.id, False, "this machine", outcome, tolerance)
    rows, run = outcome
    exact = same_setup(entry.run, run)
    setup = f"{run.device} {run.precision} {run.torch_threads} thread(s)"
    return RerunResult(entry.id, exact, setup, runs_difference(bundled, rows, exact, tolerance), tolerance)
