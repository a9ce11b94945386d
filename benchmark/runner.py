"""The active-learning loop of one cell, with a checkpoint after every round.

Round r trains on the labeled set L_r, evaluates on the test split and, unless
it is the last round, selects the batch that forms L_{r+1}. L_0 is chosen by the
cell's initial strategy, applied to the randomly initialised network. Row r
records the samples that joined in round r (``selected``) and how long choosing
them took (``query_seconds``).

:func:`run_cell` is that loop; the learner (data, network, auxiliary module) is
built in :mod:`benchmark.learner`, the state between rounds saved by
:mod:`benchmark.cell_state`. Importing this module does not import torch, so the
CLI can list, validate and skip finished cells quickly.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.assumptions import write_suite_record
from benchmark.claims import try_claim
from benchmark.errors import AlbError
from benchmark.progress import CellEvents, make_reporter
from benchmark.seeding import numpy_rng
from benchmark.store import SuiteStore, now_iso, provenance
from benchmark.strategies import STRATEGIES
from benchmark.strategies.base import SelectionContext, Strategy
from benchmark.suite import Cell, Suite

if TYPE_CHECKING:
    from benchmark.cell_state import CellState
    from benchmark.config import CellConfig
    from benchmark.learner import Learner, LearnerFactory

__all__ = ["CellContext", "CellEvents", "SuiteOutcome", "pick_device", "run_cell", "run_suite"]


@dataclass
class CellContext:
    """What the runner needs besides the cell: where to store, which device, the data."""

    store: SuiteStore
    device: str
    data_dir: Path
    precision: str = "auto"  # see training/execution.py: never changes the recipe, recorded with results
    compile: bool = False


def pick_device(requested: str | None) -> str:
    import torch

    if requested in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise AlbError(f"--device {requested} was requested but CUDA is not available; use --device cpu")
    index = int(requested.partition(":")[2] or 0) if requested.startswith("cuda") else 0
    if index and index >= torch.cuda.device_count():
        raise AlbError(f"--device {requested}: this machine has {torch.cuda.device_count()} GPU(s), numbered from "
                       "0; use --device cuda or cuda:N with N below that")
    return requested


def run_cell(cell: Cell, ctx: CellContext, events: CellEvents | None = None) -> list[dict[str, Any]]:
    """Run (or resume) one cell and return its rows; writes a checkpoint after every round."""
    # torch-heavy modules, imported only when a cell actually runs
    from benchmark.cell_state import CellState
    from benchmark.learner import CellData, LearnerFactory
    from benchmark.training.execution import Execution

    events = events or CellEvents()
    cfg = cell.config
    execution = Execution.for_device(ctx.device, ctx.precision, ctx.compile)
    if cfg.task == "detection":  # the same loop with a detector (benchmark/detection/learner.py)
        from benchmark.detection.learner import DetectionCellData as CellData  # type: ignore[assignment]
        from benchmark.detection.learner import DetectionLearnerFactory as LearnerFactory  # type: ignore[assignment]
    data = CellData.load(cfg, ctx.data_dir, execution)
    learners = LearnerFactory.for_cell(cfg, data, cache_dir=ctx.store.root / "_pretrained",  # type: ignore[arg-type]
                                       weights_dir=ctx.data_dir / "weights")
    ctx.store.adopt_legacy_progress(cell.id)
    progress_path = ctx.store.progress_path(cell.id)
    state = CellState.load(progress_path, cell.id, pool_size=int(data.train_y.shape[0]))
    # a candidate cell's rows say what its candidate cost: round 0 its training seconds, later rounds 0
    # (the state is first saved after round 0, so a resumed cell already has that row)
    candidate_row: dict[str, float] = {}
    if state is None:
        chosen, seconds, candidate_seconds = _first_selection(cfg, learners)
        state = CellState(cell.id, labeled=chosen, pending=chosen, pending_seconds=seconds)
        if candidate_seconds is not None:
            candidate_row = {"candidate_seconds": candidate_seconds}
    else:
        ctx.store.log_event("cell_resumed", cell_id=cell.id, round=state.next_round)

    query_strategy = STRATEGIES.get(cfg.strategy)(**(cfg.strategy_params or {}))
    rounds = cfg.budget.rounds
    for r in range(state.next_round, rounds + 1):
        events.round_started(r, rounds)
        learner = learners.build(r if cfg.training.start == "cold" else 0)
        if cfg.training.start == "warm" and state.weights is not None:
            learner.load_weights(state.weights)
        row = _train_and_test(learner, state, r, events)
        if cfg.candidate is not None:
            row["candidate_seconds"] = candidate_row.get("candidate_seconds", 0.0) if r == 0 else 0.0
        state.rows.append(row)
        if r < rounds:
            _select_next(state, query_strategy, learner, cfg, r + 1)
        state.weights = learner.weights() if cfg.training.start == "warm" else None
        state.next_round = r + 1
        state.save(progress_path)
        ctx.store.log_event("round_finished", cell_id=cell.id, round=r)
        _maybe_inject_fault(ctx.store, cell.id, r)
        events.round_finished(row)
    return state.rows


def _check_inputs_unchanged(cell: Cell) -> None:
    """The rows are stored under the id of the data the cell started from: a by-path input (npz, checkpoint)
    rewritten while the cell ran would make them results of neither content, so the cell fails instead."""
    if cell.config.cell_id() != cell.id:
        raise AlbError(f"an input of cell {cell.id} given by path (dataset '{cell.config.dataset}', init "
                       f"'{cell.config.init}') changed while the cell ran; its results are not stored. Leave the "
                       "files alone during a run, then rerun the suite")


FAULT_KILL_AFTER_ROUND = "ALB_FAULT_KILL_AFTER_ROUND"  # tests of retries: die after this round, once per cell
FAULT_CELL = "ALB_FAULT_CELL"  # optional: only the cells whose id starts with this
FAULT_EXIT_CODE = 75


def _maybe_inject_fault(store: SuiteStore, cell_id: str, round_index: int) -> None:
    """Off unless ALB_FAULT_KILL_AFTER_ROUND is set: exit hard (no cleanup, like a killed node) after that
    round, once per cell; a marker file beside the checkpoint keeps the retry alive."""
    after = os.environ.get(FAULT_KILL_AFTER_ROUND)
    if after is None or int(after) != round_index or not cell_id.startswith(os.environ.get(FAULT_CELL, "")):
        return
    marker = store.progress_path(cell_id).with_suffix(".fault-injected")
    if marker.exists():
        return
    marker.write_text(f"killed after round {round_index}\n")
    os._exit(FAULT_EXIT_CODE)


def _first_selection(cfg: CellConfig, learners: LearnerFactory) -> tuple[np.ndarray, float, float | None]:
    """L_0, the seconds its selection took, and the candidate's training seconds (None without one): the
    initial strategy (resolved by the config) applied to the randomly initialised network, or, with
    ``candidate``, to a candidate trained on a random part of L_0 that then chooses the rest."""
    assert cfg.initial_strategy is not None
    params = (cfg.strategy_params or {}) if cfg.initial_strategy == cfg.strategy else {}
    strategy = STRATEGIES.get(cfg.initial_strategy)(**params)
    needs = STRATEGIES.info(cfg.initial_strategy).needs
    assert isinstance(cfg.budget.initial, int)
    if cfg.candidate is None:
        chosen, seconds, _ = _select(strategy, learners.build(0), cfg, np.empty(0, np.int64), cfg.budget.initial,
                                     0, needs)
        return chosen, seconds, None
    subset, candidate, candidate_seconds = learners.train_candidate()
    chosen, seconds, _ = _select(strategy, candidate, cfg, subset, cfg.budget.initial - len(subset), 0, needs)
    return np.concatenate([subset, chosen]), seconds, candidate_seconds


def _train_and_test(learner: Learner, state: CellState, round_index: int, events: CellEvents) -> dict[str, Any]:
    """Round r: train on L_r (plus the pseudo-labels of the last query), test, and record the row."""
    result = learner.train(state.labeled, state.pseudo_index, state.pseudo_label, round_index,
                           events.epoch_finished)
    metrics = learner.evaluate()
    return {"round": round_index, "n_labeled": len(state.labeled), **metrics, "train_loss": result.final_loss,
            "n_pseudo_labeled": len(state.pseudo_index), "train_seconds": result.seconds,
            "query_seconds": state.pending_seconds, "selected": state.pending.tolist(), "finished_at": now_iso()}


def _select_next(state: CellState, strategy: Strategy, learner: Learner, cfg: CellConfig, round_index: int) -> None:
    """The query that forms L_{r+1} (``round_index`` = r + 1), with the pseudo-labels for its training."""
    chosen, seconds, pseudo = _select(strategy, learner, cfg, state.labeled, cfg.budget.query, round_index,
                                      STRATEGIES.info(cfg.strategy).needs)
    state.pending, state.pending_seconds = chosen, seconds
    state.labeled = np.concatenate([state.labeled, chosen])
    state.pseudo_index, state.pseudo_label = pseudo


def _select(strategy: Strategy, learner: Learner, cfg: CellConfig, labeled: np.ndarray, budget: int,
            round_index: int, needs: tuple[str, ...]) -> tuple[np.ndarray, float, tuple[np.ndarray, np.ndarray]]:
    """``budget`` new pool indices by ``strategy``, the seconds it took, and the pseudo-labels (pool indices,
    labels) that strategies such as CEAL give for the next round's training only (empty otherwise)."""
    start = time.perf_counter()
    data = learner.data
    unlabeled = data.unlabeled(labeled)
    if round_index > 0 and cfg.pool_subset is not None and len(unlabeled) > cfg.pool_subset:
        subset_rng = numpy_rng(cfg.seed, round_index, "subset")
        unlabeled = np.sort(subset_rng.choice(unlabeled, cfg.pool_subset, replace=False))
    pool = learner.pool(unlabeled, labeled)

    def probs() -> np.ndarray:
        return pool.unlabeled_outputs()[0].cpu().numpy()

    rng = numpy_rng(cfg.seed, round_index, "select")
    if learner.task == "detection":  # strategies score images from their boxes (benchmark/detection/scoring.py)
        sel_ctx = SelectionContext(unlabeled, labeled, rng, round_index=round_index, detections=pool)  # type: ignore[arg-type]
    else:
        sel_ctx = SelectionContext(unlabeled, labeled, rng, probs, round_index=round_index, pool=pool,
                                   labels=data.pool_labels() if "labels" in needs else None)
    chosen = np.asarray(strategy.select(sel_ctx, budget), dtype=np.int64)
    if len(np.unique(chosen)) != len(chosen) or not np.isin(chosen, unlabeled).all():
        name = cfg.strategy if round_index > 0 else cfg.initial_strategy
        raise RuntimeError(f"strategy '{name}' returned duplicate or labeled indices")
    pseudo = (np.empty(0, np.int64), np.empty(0, np.int64))
    if round_index > 0 and "pseudo_labels" in needs:
        pseudo = strategy.pseudo_labels(sel_ctx, chosen)
    return chosen, time.perf_counter() - start, pseudo


@dataclass
class SuiteOutcome:
    done: int = 0
    cached: int = 0
    failed: int = 0
    busy: int = 0  # held by another live process


def run_suite(suite: Suite, store: SuiteStore, device: str | None, data_dir: Path,
              force: bool = False, threads: int | None = None, precision: str = "auto", compile: bool = False,
              reporter_factory: Callable[..., Any] | None = None, only: Collection[str] | None = None,
              executor: str = "local", write_record: bool = True) -> SuiteOutcome:
    """Run every cell not yet finished (of ``only``, the ids of a subset, when given); a failing cell is
    recorded and the others go on. ``executor`` names who runs the cells, in claims and events.
    ``write_record``: refresh the suite's record (False in a task: the driver wrote it for all its cells)."""
    outcome = SuiteOutcome()
    cells = suite.cells if only is None else [c for c in suite.cells if c.id in only]
    todo = [c for c in cells if force or not store.is_done(c.id)]
    outcome.cached = len(cells) - len(todo)
    # the suite's assumptions beside its results, refreshed on every run (see benchmark/assumptions.py)
    if write_record:
        write_suite_record(store.root, suite)
    if not todo:
        return outcome
    # cells to run: now torch is needed
    import torch

    from benchmark.training.execution import Execution

    if threads is not None:
        torch.set_num_threads(threads)
    ctx = CellContext(store, pick_device(device), data_dir, precision, compile)
    if ctx.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels

    execution = Execution.for_device(ctx.device, precision, compile)
    meta = {**provenance(ctx.device), "precision": execution.precision,
            "channels_last": str(execution.channels_last).lower(), "compiled": str(execution.compile).lower()}
    reporter = (reporter_factory or make_reporter)(total=len(cells), cached=outcome.cached)
    with reporter:
        for cell in todo:
            claim, took_over = try_claim(store.claims_dir, cell.id, executor=executor)
            if claim is None:
                outcome.busy += 1
                reporter.skipped(cell, "running in another process")
                continue
            with claim:
                if took_over:
                    store.log_event("claim_taken_over", cell_id=cell.id)
                if force:
                    store.clear(cell.id)
                elif store.is_done(cell.id):  # finished elsewhere after our first look
                    outcome.cached += 1
                    reporter.skipped(cell, "finished in another process")
                    continue
                store.log_event("cell_started", cell_id=cell.id, executor=executor)
                started = time.perf_counter()
                try:
                    events = reporter.cell_events(cell, cfg_rounds=cell.config.budget.rounds)
                    rows = run_cell(cell, ctx, events)
                    _check_inputs_unchanged(cell)
                    store.write_result(cell.id, cell.config.canonical(), suite.axes, rows, meta)
                except Exception as exc:
                    outcome.failed += 1
                    store.write_failure(cell.id, f"cell {cell.id} ({cell.label()}) failed at {now_iso()}\n"
                                        f"{traceback.format_exc()}")
                    store.log_event("cell_failed", cell_id=cell.id, error=f"{type(exc).__name__}: {exc}")
                    reporter.cell_failed(cell, exc, store.failed_path(cell.id))
                    continue
                store.failed_path(cell.id).unlink(missing_ok=True)
                store.progress_path(cell.id).unlink(missing_ok=True)
                store.log_event("cell_finished", cell_id=cell.id)
                outcome.done += 1
                reporter.cell_finished(cell, rows, time.perf_counter() - started)
    return outcome
