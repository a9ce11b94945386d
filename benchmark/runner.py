"""The active-learning loop of one cell, with a checkpoint after every round.

Round r trains on the labeled set L_r, evaluates on the test split and, unless
it is the last round, selects the batch that forms L_{r+1}. L_0 is chosen by the
cell's initial strategy, applied to the randomly initialised network. Row r
records the samples that joined in round r (``selected``) and how long choosing
them took (``query_seconds``).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import dataset_info
from benchmark.errors import AlbError, ConfigError
from benchmark.seeding import derive_seed, numpy_rng
from benchmark.store import SuiteStore, atomic_write, now_iso, provenance
from benchmark.strategies import STRATEGIES
from benchmark.suite import Cell, Suite

CHECKPOINT_VERSION = 3


class CellEvents:
    """Callbacks the runner uses to report progress (see progress.py)."""

    def round_started(self, round_index: int, rounds: int) -> None: ...
    def epoch_finished(self, epoch: int, epochs: int, loss: float) -> None: ...
    def round_finished(self, row: dict[str, Any]) -> None: ...


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
    return requested


def _save_progress(path: Path, state: dict[str, Any]) -> None:
    import torch

    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_progress(path: Path, cell_id: str) -> dict[str, Any] | None:
    import torch

    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("version") != CHECKPOINT_VERSION or state.get("cell_id") != cell_id:
        return None
    return state


def _cpu_state(module: Any) -> dict[str, Any]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def run_cell(cell: Cell, ctx: CellContext, events: CellEvents | None = None) -> list[dict[str, Any]]:
    """Run (or resume) one cell and return its rows; writes a checkpoint after every round."""
    import torch

    from benchmark.data.loading import load_dataset
    from benchmark.models.base import build_backbone
    from benchmark.strategies.base import SelectionContext, Strategy
    from benchmark.strategies.pool_model import PoolModel
    from benchmark.training.augment import Normalizer
    from benchmark.training.aux import (
        AuxTraining,
        DiscriminatorModule,
        DiscriminatorTraining,
        FeatureTaps,
        build_loss_prediction,
    )
    from benchmark.training.execution import Execution
    from benchmark.training.trainer import AnyAux, AugmentationSpec, evaluate, make_optimizer, train
    from benchmark.training.wasserstein import WassersteinCritic, WassersteinTraining

    events = events or CellEvents()
    cfg = cell.config
    device = torch.device(ctx.device)
    execution = Execution.for_device(ctx.device, ctx.precision, ctx.compile)
    data = load_dataset(cfg.dataset, ctx.data_dir)
    if cfg.view is not None:
        from benchmark.data.views import apply_view

        data = apply_view(data, cfg.view, cfg.seed)
    if cfg.budget.total > len(data.train_y):  # a view's pool size is not always known at validation
        raise ConfigError(f"budget: {cfg.budget.total} labels, but the pool of '{cfg.dataset}' with view "
                          f"{cfg.view.model_dump() if cfg.view else None} has only {len(data.train_y)} images; "
                          "lower budget.rounds or budget.query")
    info = dataset_info(cfg.dataset)
    augmentation = AugmentationSpec(info["crop_padding"], info["hflip"])
    normalize = Normalizer(data.mean, data.std, device)
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)
    pool_size = train_x.shape[0]
    pool_labels = data.train_y.cpu().numpy()  # read only by initial_strategy: balanced (seed 004 l.203)
    # round 0 uses the (resolved) initial strategy; a schedule picks its own phase by round
    assert cfg.initial_strategy is not None
    params = cfg.strategy_params or {}
    initial_strategy = STRATEGIES.get(cfg.initial_strategy)(**(params if cfg.initial_strategy == cfg.strategy else {}))
    query_strategy = STRATEGIES.get(cfg.strategy)(**params)

    # the backbone's starting weights (init: imagenet, self-supervised pre-training, a checkpoint), shared by
    # every fresh learner of the cell; its classifier head always starts from random
    init_state = None
    if cfg.init != "scratch":
        from benchmark.pretrain import initial_backbone_state

        init_state = initial_backbone_state(
            cfg.init, cfg.backbone, data, info["hflip"], cfg.seed, cfg.pretraining,
            cache_dir=ctx.store.root / "_pretrained", weights_dir=ctx.data_dir / "weights", device=device,
            execution=execution, dataset_key=json.dumps([cfg.dataset, cfg.view.model_dump() if cfg.view else None]))

    def fresh_learner(round_index: int) -> tuple[torch.nn.Module, AnyAux | None]:
        """A freshly initialised backbone, and its auxiliary module when training.aux asks for one."""
        torch.manual_seed(derive_seed(cfg.seed, round_index, "init"))
        head_dropout = cfg.training.head_dropout or 0.0
        model = build_backbone(cfg.backbone, data.num_classes, data.channels, head_dropout,
                               cfg.training.conv_dropout or 0.0).to(device)
        if init_state is not None:
            from benchmark.pretrain import apply_backbone_state

            apply_backbone_state(model, init_state)
        model = execution.prepare_model(model)
        aux: AnyAux | None = None
        assert cfg.training.aux_weight is not None
        if cfg.training.aux == "discriminator":
            aux = DiscriminatorTraining(DiscriminatorModule(model.embedding_dim).to(device), cfg.training.aux_weight)
        elif cfg.training.aux == "wasserstein":
            critic = WassersteinCritic(model.embedding_dim).to(device)
            # the critic's own optimizer, with the model's settings as in the official WAAL code
            aux = WassersteinTraining(critic, cfg.training.aux_weight,
                                      make_optimizer(list(critic.parameters()), cfg.training.optimizer))
        elif cfg.training.aux == "loss_prediction":
            assert cfg.training.aux_detach_epoch is not None
            aux = AuxTraining(build_loss_prediction(model, normalize(train_x[:1])), FeatureTaps(model),
                              cfg.training.aux_weight, cfg.training.aux_margin, cfg.training.aux_detach_epoch)
        return model, aux

    # pseudo-labeled samples for the next round's training only (CEAL): (pool indices, labels)
    pseudo: list[np.ndarray] = [np.empty(0, np.int64), np.empty(0, np.int64)]

    def select(strategy: Strategy, model: torch.nn.Module, aux: AnyAux | None,
               labeled: np.ndarray, budget: int, round_index: int) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        unlabeled = np.setdiff1d(np.arange(pool_size), labeled, assume_unique=True)
        if round_index > 0 and cfg.pool_subset is not None and len(unlabeled) > cfg.pool_subset:
            subset_rng = numpy_rng(cfg.seed, round_index, "subset")
            unlabeled = np.sort(subset_rng.choice(unlabeled, cfg.pool_subset, replace=False))

        pool = PoolModel(model, train_x, train_y, normalize, torch.as_tensor(unlabeled, device=device),
                         torch.as_tensor(labeled, device=device), cfg.seed, aux, execution)

        def probs() -> np.ndarray:
            return pool.unlabeled_outputs()[0].cpu().numpy()

        rng = numpy_rng(cfg.seed, round_index, "select")
        sel_ctx = SelectionContext(unlabeled, labeled, rng, probs, round_index=round_index, pool=pool,
                                   labels=pool_labels if "labels" in strategy.needs else None)
        chosen = np.asarray(strategy.select(sel_ctx, budget), dtype=np.int64)
        if len(np.unique(chosen)) != len(chosen) or not np.isin(chosen, unlabeled).all():
            raise RuntimeError(f"strategy '{strategy.name}' returned duplicate or labeled indices")
        # strategies such as CEAL also give pseudo-labels for the next round's training only
        if round_index > 0 and "pseudo_labels" in strategy.needs:
            pseudo[:] = strategy.pseudo_labels(sel_ctx, chosen)
        else:
            pseudo[:] = (np.empty(0, np.int64), np.empty(0, np.int64))
        return chosen, time.perf_counter() - start

    progress_path = ctx.store.progress_path(cell.id)
    state = _load_progress(progress_path, cell.id)
    weights: dict[str, dict[str, torch.Tensor]] | None  # {"model": ..., "aux": ...} for warm starts
    if state is None:
        model, aux = fresh_learner(0)
        pending, pending_seconds = select(initial_strategy, model, aux, np.empty(0, np.int64),
                                          cfg.budget.initial, 0)
        labeled = pending
        rows: list[dict[str, Any]] = []
        start_round, weights = 0, None
    else:
        rows = state["rows"]
        labeled = state["labeled"].numpy()
        pending, pending_seconds = state["pending"].numpy(), state["pending_seconds"]
        pseudo[:] = [state["pseudo_index"].numpy(), state["pseudo_label"].numpy()]
        start_round, weights = state["next_round"], state["weights"]
        ctx.store.log_event("cell_resumed", cell_id=cell.id, round=start_round)

    rounds = cfg.budget.rounds
    for r in range(start_round, rounds + 1):
        events.round_started(r, rounds)
        model, aux = fresh_learner(r if cfg.training.start == "cold" else 0)
        if cfg.training.start == "warm" and weights is not None:
            model.load_state_dict(weights["model"])
            if aux is not None:
                aux.module.load_state_dict(weights["aux"])
        generator = torch.Generator(device=device)
        generator.manual_seed(derive_seed(cfg.seed, r, "train"))
        torch.manual_seed(derive_seed(cfg.seed, r, "train"))
        # the unlabeled images, for the modules and the semi-supervised training that train on them
        unlabeled_images = None
        if cfg.training.semi != "none" or isinstance(aux, DiscriminatorTraining | WassersteinTraining):
            rest = np.setdiff1d(np.arange(pool_size), labeled, assume_unique=True)
            unlabeled_images = train_x[torch.as_tensor(rest, device=device)]
        if isinstance(aux, DiscriminatorTraining | WassersteinTraining):
            aux.unlabeled_images = unlabeled_images
        if isinstance(aux, WassersteinTraining):
            aux.n_labeled = len(labeled)  # WAAL's gamma = |L| / |U|
        idx = torch.as_tensor(np.concatenate([labeled, pseudo[0]]), device=device)
        targets = torch.cat([train_y[torch.as_tensor(labeled, device=device)],
                             torch.as_tensor(pseudo[1], device=device)])
        pool_images = unlabeled_images if cfg.training.semi != "none" else None
        result = train(model, train_x[idx], targets, cfg.training, normalize, augmentation,
                       generator, events.epoch_finished, aux, execution, pool_images=pool_images)
        metrics = evaluate(model, test_x, test_y, normalize, data.num_classes, execution)
        row = {"round": r, "n_labeled": len(labeled), **metrics, "train_loss": result.final_loss,
               "n_pseudo_labeled": len(pseudo[0]), "train_seconds": result.seconds,
               "query_seconds": pending_seconds,
               "selected": pending.tolist(), "finished_at": now_iso()}
        rows.append(row)
        if r < rounds:
            pending, pending_seconds = select(query_strategy, model, aux, labeled, cfg.budget.query, r + 1)
            labeled = np.concatenate([labeled, pending])
        weights = None
        if cfg.training.start == "warm":
            weights = {"model": _cpu_state(model), "aux": _cpu_state(aux.module) if aux is not None else {}}
        _save_progress(progress_path, {
            "version": CHECKPOINT_VERSION, "cell_id": cell.id, "next_round": r + 1, "rows": rows,
            "labeled": torch.as_tensor(labeled), "pending": torch.as_tensor(pending),
            "pending_seconds": pending_seconds, "weights": weights,
            "pseudo_index": torch.as_tensor(pseudo[0]), "pseudo_label": torch.as_tensor(pseudo[1])})
        ctx.store.log_event("round_finished", cell_id=cell.id, round=r)
        events.round_finished(row)
    return rows


@dataclass
class SuiteOutcome:
    done: int = 0
    cached: int = 0
    failed: int = 0
    busy: int = 0  # held by another live process


def run_suite(suite: Suite, store: SuiteStore, device: str | None, data_dir: Path,
              force: bool = False, threads: int | None = None, precision: str = "auto", compile: bool = False,
              reporter_factory: Callable[..., Any] | None = None) -> SuiteOutcome:
    """Run every cell not yet finished; a failing cell is recorded and the others go on."""
    from benchmark.claims import try_claim
    from benchmark.progress import make_reporter

    outcome = SuiteOutcome()
    todo = [c for c in suite.cells if force or not store.is_done(c.id)]
    outcome.cached = len(suite.cells) - len(todo)
    # the suite's assumptions beside its results, refreshed on every run (see benchmark/assumptions.py)
    from benchmark.assumptions import write_suite_record

    write_suite_record(store.root, suite)
    if not todo:
        return outcome
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    ctx = CellContext(store, pick_device(device), data_dir, precision, compile)
    if ctx.device.startswith("cuda"):
        import torch

        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    from benchmark.training.execution import Execution

    execution = Execution.for_device(ctx.device, precision, compile)
    meta = {**provenance(ctx.device), "precision": execution.precision,
            "channels_last": str(execution.channels_last).lower(), "compiled": str(execution.compile).lower()}
    reporter = (reporter_factory or make_reporter)(total=len(suite.cells), cached=outcome.cached)
    with reporter:
        for cell in todo:
            claim, took_over = try_claim(store.claims_dir, cell.id)
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
                store.log_event("cell_started", cell_id=cell.id)
                started = time.perf_counter()
                try:
                    events = reporter.cell_events(cell, cfg_rounds=cell.config.budget.rounds)
                    rows = run_cell(cell, ctx, events)
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
