"""What running a suite costs, in images through the backbone: ``alb run --dry-run`` prints it.

Pure arithmetic on resolved cell configurations (no torch), following what the runner and the trainer
do per round r = 0..R, with L_r = initial + r x query labeled images, U_r = pool - L_r:

- training (forward + backward), ``training.epochs`` = E epochs of batch size B:
  - head full: E x L_r (one pass over L per epoch);
  - with a discriminator / Wasserstein module (JLS, WAAL): every labeled batch is paired with as many
    unlabeled images, so twice the labeled images; ``training.epoch_length: pool`` makes an epoch
    ceil(max(L_r, U_r) / B) full batches (benchmark/training/trainer.py ``_epoch_index_batches``);
  - ``training.semi: label_propagation`` (benchmark/training/semi.py): E x L_r supervised, then E SEMI
    epochs of ceil(ceil(U_r / 2) / u) batches of B images (u = B - min(50, B // 2) pseudo-labeled per
    batch), each SEMI epoch preceded by a forward pass over L_r + U_r for the graph's features;
  - head linear / svm: the backbone is frozen, one forward pass over L_r for the features;
  - CEAL's pseudo-labeled images are not counted (their number depends on the predictions).
- evaluation: one forward pass over the test split per round.
- candidate baseline (``candidate``): candidate.epochs x candidate.subset training images before round 0;
- selection (pool passes): before round 0, the initial strategy over the whole pool (none for random; with a
  candidate, over the pool less its subset);
  after round r < R, the query strategy over the candidates min(U_r, pool_subset), times the MC-dropout
  passes (strategy_params.passes, default 20) for bald / batchbald / mean_std / var_ratio; per-sample
  gradients (ent_gradnorm, lplgrad) count as forward + backward; strategies that embed the labeled set
  too (coreset, kmeans, typiclust, probcover, glister, svm_min_margin, jlp) add a pass over L_r. VAAL
  trains its own small VAE and discriminator, not the backbone: its selection is not counted.
- pre-training (init: simsiam | deepcluster | rotation): once per distinct pre-training in the suite
  (dataset, view, backbone, method, seed, settings; the runner caches it), pretraining.epochs x pool x
  views (simsiam: 2 views, rotation: 4 rotations, deepcluster: 1, plus a forward pass over the pool per
  epoch for its k-means). Counted even when the cache already holds it.

Time at a throughput T (training images per second, e.g. measured with ``python -m
benchmark.perf.training``): (training + gradient + pre-training images) / T + forward-only images /
(FORWARD_SPEEDUP x T). FORWARD_SPEEDUP = 3 is an assumption: a backward pass costs about twice a
forward pass, and inference needs no optimizer step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from benchmark.config import CellConfig
from benchmark.strategies import phase_strategies

if TYPE_CHECKING:
    from benchmark.store import SuiteStore
    from benchmark.suite import Suite

FORWARD_SPEEDUP = 3.0
DEFAULT_MC_PASSES = 20  # benchmark/strategies/bayesian.py DEFAULT_PASSES (a test keeps them equal)
SEMI_LABELED_PER_BATCH = 50  # benchmark/training/semi.py LABELED_PER_BATCH (seed 004 Sec. VI-A)
SEMI_EPOCH_FRACTION = 0.5  # benchmark/training/semi.py EPOCH_FRACTION
MC_DROPOUT = {"bald", "batchbald", "mean_std", "var_ratio"}
GRADIENT_SCORING = {"ent_gradnorm", "lplgrad"}
EMBEDS_LABELED = {"coreset", "kmeans", "typiclust", "probcover", "glister", "svm_min_margin", "jlp"}
NO_BACKBONE_PASS = {"random", "vaal"}
PRETRAIN_VIEWS = {"simsiam": 2, "rotation": 4, "deepcluster": 1}
PAIRED_AUX = ("discriminator", "wasserstein")


@dataclass
class Cost:
    """Image counts; add costs with ``+``."""

    cells: int = 0
    rounds: int = 0  # training rounds (budget.rounds + 1 per cell)
    train_images: int = 0  # forward + backward through the backbone while training
    pool_images: int = 0  # forward passes over unlabeled candidates while scoring (x MC-dropout passes)
    grad_images: int = 0  # per-sample gradients while scoring (forward + backward)
    other_forward: int = 0  # test evaluation, labeled-set embeddings, label propagation / frozen features
    pretrain_images: int = 0  # self-supervised pre-training, forward + backward (x views)

    def __add__(self, other: Cost) -> Cost:
        return Cost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def pool_passes(self) -> int:
        """Every image scored for a selection (forward-only and gradient passes)."""
        return self.pool_images + self.grad_images

    @property
    def backward_images(self) -> int:
        return self.train_images + self.grad_images + self.pretrain_images

    @property
    def forward_images(self) -> int:
        return self.pool_images + self.other_forward

    def seconds(self, throughput: float) -> float:
        """Estimated time at ``throughput`` training images per second."""
        if throughput <= 0:
            raise ValueError(f"throughput must be positive, got {throughput}")
        return self.backward_images / throughput + self.forward_images / (FORWARD_SPEEDUP * throughput)


def _training_images(cfg: CellConfig, labeled: int, unlabeled: int) -> tuple[int, int]:
    """(forward + backward images, forward-only images) of one round's training."""
    t, epochs, batch = cfg.training, cfg.training.epochs, cfg.training.batch_size
    if t.head != "full":
        return 0, labeled
    if t.semi == "label_propagation":
        if unlabeled == 0:
            return epochs * labeled, 0
        pseudo_per_batch = batch - min(SEMI_LABELED_PER_BATCH, batch // 2)
        batches = math.ceil(math.ceil(SEMI_EPOCH_FRACTION * unlabeled) / pseudo_per_batch)
        return epochs * (labeled + batches * batch), epochs * (labeled + unlabeled)
    if t.aux in PAIRED_AUX and unlabeled > 0:
        per_epoch = math.ceil(max(labeled, unlabeled) / batch) * batch if t.epoch_length == "pool" else labeled
        return 2 * epochs * per_epoch, 0
    return epochs * labeled, 0


def _selection(strategy: str, params: dict[str, Any], candidates: int, labeled: int) -> Cost:
    if strategy in NO_BACKBONE_PASS or candidates == 0:
        return Cost()
    extra = labeled if strategy in EMBEDS_LABELED else 0
    if strategy in GRADIENT_SCORING:
        return Cost(grad_images=candidates, other_forward=extra)
    passes = int(params.get("passes", DEFAULT_MC_PASSES)) if strategy in MC_DROPOUT else 1
    return Cost(pool_images=passes * candidates, other_forward=extra)


def cell_cost(cfg: CellConfig, pool: int, n_test: int) -> Cost:
    """The cost of one resolved cell, pre-training excluded (see :func:`pretraining_cost`)."""
    b = cfg.budget
    assert isinstance(b.initial, int) and isinstance(b.query, int), "a resolved CellConfig has counts"
    assert cfg.initial_strategy is not None
    params = cfg.strategy_params or {}
    initial_params = params if cfg.initial_strategy == cfg.strategy else {}
    query_strategy = phase_strategies(cfg.strategy, cfg.initial_strategy)[1]  # a schedule's later phase
    cost = Cost(cells=1, rounds=b.rounds + 1)
    if cfg.candidate is None:
        cost += _selection(cfg.initial_strategy, initial_params, pool, 0)
    else:  # the candidate baseline: train on its random labels, then score the rest of the pool with it
        assert cfg.candidate.epochs is not None
        subset = cfg.candidate.subset
        cost += Cost(train_images=cfg.candidate.epochs * subset)
        cost += _selection(cfg.initial_strategy, initial_params, pool - subset, subset)
    for r in range(b.rounds + 1):
        labeled = b.initial + r * b.query
        train, forward = _training_images(cfg, labeled, pool - labeled)
        cost += Cost(train_images=train, other_forward=forward + n_test)
        if r < b.rounds:
            unlabeled = pool - labeled
            candidates = unlabeled if cfg.pool_subset is None else min(unlabeled, cfg.pool_subset)
            cost += _selection(query_strategy, params, candidates, labeled)
    return cost


def pretraining_key(cfg: CellConfig) -> str | None:
    """What identifies a cached pre-training (benchmark/runner.py's call of initial_backbone_state)."""
    if cfg.init not in PRETRAIN_VIEWS:
        return None
    return json.dumps([cfg.init, cfg.dataset, cfg.view.model_dump() if cfg.view else None, cfg.backbone, cfg.seed,
                       cfg.pretraining.model_dump() if cfg.pretraining else None], sort_keys=True)


def pretraining_cost(cfg: CellConfig, pool: int) -> Cost:
    if cfg.init not in PRETRAIN_VIEWS or cfg.pretraining is None:
        return Cost()
    epochs = cfg.pretraining.epochs
    forward = epochs * pool if cfg.init == "deepcluster" else 0
    return Cost(pretrain_images=epochs * pool * PRETRAIN_VIEWS[cfg.init], other_forward=forward)


def dataset_sizes(cfg: CellConfig) -> tuple[int, int]:
    """(pool, test) sizes of a cell's dataset and view, from the datasets' static facts."""
    from benchmark.data import dataset_info
    from benchmark.data.views import view_pool_size

    info = dataset_info(cfg.dataset)
    return view_pool_size(info, cfg.view) or int(info["n_train"]), int(info["n_test"])


def suite_cost(configs: Iterable[CellConfig]) -> tuple[Cost, dict[str, Cost]]:
    """Total cost of the cells and per strategy; each distinct pre-training counted once, under the
    strategy of the first cell that needs it."""
    total, by_strategy = Cost(), {}
    pretrained: set[str] = set()
    for cfg in configs:
        pool, n_test = dataset_sizes(cfg)
        cost = cell_cost(cfg, pool, n_test)
        key = pretraining_key(cfg)
        if key is not None and key not in pretrained:
            pretrained.add(key)
            cost += pretraining_cost(cfg, pool)
        total += cost
        by_strategy[cfg.strategy] = by_strategy.get(cfg.strategy, Cost()) + cost
    return total, by_strategy


def human(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def format_hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 36 else f"{seconds:.0f} s"


def cost_lines(pending: Cost, total: Cost, by_strategy: dict[str, Cost], throughput: float | None) -> list[str]:
    """The dry run's cost summary: the cells to run, all cells in brackets, and a per-strategy table."""
    rows = [("cells", pending.cells, total.cells), ("training rounds", pending.rounds, total.rounds),
            ("training images (fwd+bwd)", pending.train_images, total.train_images),
            ("pre-training images (fwd+bwd)", pending.pretrain_images, total.pretrain_images),
            ("pool passes (scored images)", pending.pool_passes, total.pool_passes),
            ("other forward images", pending.other_forward, total.other_forward)]
    lines = ["cost of the cells to run (all cells of the suite in brackets), in images through the backbone:"]
    lines += [f"  {name:<31} {human(a):>9}  ({human(b)})" for name, a, b in rows]
    if throughput is not None:
        lines.append(f"  {'estimated time at ' + human(throughput) + ' img/s':<31} "
                     f"{format_hours(pending.seconds(throughput)):>9}  ({format_hours(total.seconds(throughput))})"
                     f"  [forward-only images at {FORWARD_SPEEDUP:g}x that rate]")
    else:
        lines.append("  give --throughput IMG_PER_S (measure it with 'python -m benchmark.perf.training') "
                     "for a time estimate")
    if len(by_strategy) > 1:
        time_header = "time" if throughput is not None else ""
        lines.append(f"  {'by strategy (to run)':<22} {'cells':>5} {'fwd+bwd img':>11} {'pool passes':>12} "
                     f"{time_header:>9}".rstrip())
        for name, c in sorted(by_strategy.items(), key=lambda kv: -kv[1].backward_images):
            when = format_hours(c.seconds(throughput)) if throughput is not None else ""
            lines.append(f"  {name:<22} {c.cells:>5} {human(c.backward_images):>11} "
                         f"{human(c.pool_passes):>12} {when:>9}".rstrip())
    return lines


def dry_run_lines(suite: Suite, store: SuiteStore, force: bool, throughput: float | None) -> list[str]:
    """What ``alb run --dry-run`` prints: the cells that would run, then their cost."""
    todo = [c for c in suite.cells if force or not store.is_done(c.id)]
    done = len(suite.cells) - len(todo)
    lines = [f"suite '{suite.name}': {len(suite.cells)} cells ({done} done, {len(todo)} pending), "
             f"{len(todo)} to run -> {store.dir}"]
    for cell in todo:
        b = cell.config.budget
        lines.append(f"  {cell.id}  {cell.label()}  ({cell.config.dataset}/{cell.config.backbone}, "
                     f"{b.initial}+{b.rounds}x{b.query} labels, {cell.config.training.epochs} epochs)")
    pending, by_strategy = suite_cost(c.config for c in todo)
    total, _ = suite_cost(c.config for c in suite.cells)
    return lines + cost_lines(pending, total, by_strategy, throughput)
