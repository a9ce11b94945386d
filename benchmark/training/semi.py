"""Semi-supervised training by label propagation: ``training.semi: label_propagation`` (seed 004).

Seed 004 (Siméoni, Budnik, Avrithis & Gravier, "Rethinking deep active learning: using unlabeled data
at model training", ICPR 2020), Algorithm 1, lines 4-7, after Iscen, Tolias, Avrithis & Chum, "Label
propagation for deep semi-supervised learning" (CVPR 2019): supervised training on the labeled set L,
then every epoch

1. LP (Section IV): features ``phi(X)`` of the whole pool ``X = L u U``, a kNN graph with affinities
   ``[cos]_+^gamma`` (Section VI-A: k = 50, gamma = 3), ``W_n = D^-1/2 W D^-1/2``, label propagation
   ``P = eta[(I - alpha W_n)^-1 Y]`` (Eq. 9, alpha = 0.99) solved by conjugate gradient, and for every
   ``i in U`` a pseudo-label ``argmax p_i`` (Eq. 1) and a weight ``w_i = 1 - H(p_i) / log c`` (Eq. 10);
2. SEMI (Section IV): one epoch of the standard, unweighted cross-entropy (Eq. 2) on mini-batches whose
   labeled part is drawn uniformly from L and whose pseudo-labeled part is drawn *with replacement*
   from U with probabilities ``eta[w]``: "Different than [15], we minimize the standard cost function
   [...] but we do take weights w into account in mini-batch sampling". So the weights act through
   sampling, not in the loss, and Iscen et al.'s class-balancing loss weights are not used.

The pure functions (graph, propagation, weights) work on any device; the graph is never dense.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.config import TrainingConfig
from benchmark.models.base import Backbone
from benchmark.ops.graph import knn_graph, normalize_graph, propagate
from benchmark.training.augment import Normalizer
from benchmark.training.execution import FP32_CPU, Execution
from benchmark.training.forward import frozen_features
from benchmark.training.loop import (
    AugmentationSpec,
    EpochCallback,
    LabeledStream,
    TrainResult,
    augment_batch,
    end_epoch,
    make_optimizer,
    make_scheduler,
    optimizer_step,
)
from benchmark.training.supervised import train_supervised

# similarities computed at once by the kNN search: 2^25 float32 = 128 MiB per block of rows
KNN_BLOCK_ELEMENTS = 1 << 25
# seed 004, Section VI-A: "50 examples (10 for MNIST) are labeled and the remaining pseudo-labeled"
# out of mini-batches of 128 (64 for MNIST)
LABELED_PER_BATCH = 50
# seed 004, Section VI-A: "The epoch ends when 1/2 |U| pseudo-labels have been drawn"
EPOCH_FRACTION = 0.5
CG_TOLERANCE = 1e-6  # relative residual, as Iscen et al.'s scipy CG call (tol 1e-6, maxiter 20)


# --------------------------------------------------------------------------- the graph


def knn_affinity(features: torch.Tensor, k: int, gamma: float,
                 block_elements: int = KNN_BLOCK_ELEMENTS, reciprocal: bool = False) -> torch.Tensor:
    """Symmetric sparse affinity W of the kNN graph of the rows of ``features``, as a coalesced COO tensor.

    Iscen et al. 2019 (Section 3.2, also seed 004 Section VI-A): rows are L2-normalised, ``a_ij =
    [x_i . x_j]_+^gamma`` when j is one of the ``k`` nearest neighbours of i (by cosine, i itself
    excluded: no self-loops, even for duplicate rows), 0 otherwise; ``k`` is capped at ``n - 1``.

    - ``reciprocal`` (``training.semi_graph: reciprocal``): an edge i-j only when each is among the
      other's k nearest neighbours, weight ``a_ij`` (seed 004 l.120 and l.192: "a reciprocal
      k-nearest neighbor graph"); a node that is nobody's mutual neighbour has no edge, gets no label
      mass and so weight 0 in the SEMI sampling.
    - otherwise (``symmetric``): ``W = A + A^T``, the union (a pair that are each other's neighbours
      weighs twice), as Iscen et al.'s and seed 004's released code build it.

    One home for the graph: the neighbour search, block by block (about ``block_elements``
    similarities at a time, never n x n), is :func:`benchmark.ops.graph.knn_graph`, shared with jLP; zero
    affinities (cosine <= 0) are left out. Returns an (n, n) float32 tensor.
    """
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-d (n, d) tensor, got shape {tuple(features.shape)}")
    graph = knn_graph(features, k, gamma, reciprocal=reciprocal, block_elements=block_elements)
    return graph.to_sparse_coo().coalesce()


# --------------------------------------------------------------------------- propagation


def propagate_labels(affinity: torch.Tensor, labeled_idx: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     alpha: float, iterations: int = 20, tol: float = CG_TOLERANCE) -> torch.Tensor:
    """Z (n, c) approximately solving ``(I - alpha W_n) Z = Y`` for all classes at once.

    ``affinity`` is the symmetric W of :func:`knn_affinity` (normalised here by
    :func:`benchmark.ops.graph.normalize_graph`), ``Y = chi(L, y)`` the one-hot labels of the labeled
    rows, zero elsewhere (seed 004, Eq. 8). Eq. (9)'s factor
    ``1 - alpha`` is left out: it disappears in the row normalisation of :func:`pseudo_label_weights`.
    ``I - alpha W_n`` is symmetric positive definite for ``0 <= alpha < 1``, so each column is solved
    by conjugate gradient (:func:`benchmark.ops.graph.propagate`; Iscen et al. 2019, Section 3.2), all
    columns in step: at most ``iterations`` sparse matrix products, a column stopping once its residual
    is at most ``tol`` times its right-hand side (Iscen et al.'s 20 iterations and 1e-6 are the defaults:
    with alpha = 0.99 that is a truncated Krylov approximation, not the exact solve).
    """
    w_n = normalize_graph(affinity)
    n = w_n.shape[0]
    y = torch.zeros((n, num_classes), dtype=w_n.dtype, device=w_n.device)
    y[labeled_idx, labels] = 1.0
    return propagate(w_n, y, alpha, iterations, tol)


def pseudo_label_weights(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-labels ``argmax p_i`` (Eq. 1) and certainties ``w_i = 1 - H(p_i) / log c`` (Eq. 10) of the
    rows ``p_i`` of ``P = eta[Z]`` (row-wise l1 normalisation, seed 004 footnote 1).

    The exact solution is non-negative; the few small negative values of a truncated CG are clipped to
    0 first (as Iscen et al.'s code does). A row with no mass (a node no label reached) is uniform:
    weight 0, label 0.
    """
    c = z.shape[1]
    if c < 2:
        raise ValueError(f"need at least 2 classes for entropy weights, got {c}")
    p = z.clamp(min=0)
    mass = p.sum(dim=1, keepdim=True)
    p = torch.where(mass > 0, p / torch.where(mass > 0, mass, 1.0), 1.0 / c)
    entropy = -torch.special.xlogy(p, p).sum(dim=1)
    weights = (1.0 - entropy / math.log(c)).clamp(0.0, 1.0)
    return p.argmax(dim=1), weights


# --------------------------------------------------------------------------- training


def semi_schedule(cfg: TrainingConfig) -> tuple[int, int]:
    """(supervised warm-up epochs, SEMI mini-batch size) of ``cfg``, their auto values (null) resolved.

    Seed 004 l.116 and algorithm 1 l.131: SUP on L, then (l.132-134) LP + SEMI every epoch. l.188:
    "for 200 epochs" (``cfg.epochs``: the LP + SEMI epochs) and "mini-batch size is 32 for standard
    training and 128 when SEMI is used" (Table I, l.152): SUP, standard training on L, runs at
    ``cfg.batch_size``, the SEMI epochs at ``cfg.semi_batch_size``. The paper does not state how long
    SUP lasts: ``cfg.semi_warmup_epochs``, auto = ``cfg.epochs``, an assumption after Iscen et al. [15],
    whom l.116 follows for lines 4-7 and whose released code trains its supervised stage as long as its
    label-propagation stage (180 + 180 epochs); seed 004's own released code starts LP from the initial
    weights (``semi_warmup_epochs: 0``).
    """
    warmup = cfg.epochs if cfg.semi_warmup_epochs is None else cfg.semi_warmup_epochs
    return warmup, cfg.semi_batch_size or cfg.batch_size


def train_label_propagation(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, pool_images: torch.Tensor,
                            cfg: TrainingConfig, normalize: Normalizer, augmentation: AugmentationSpec,
                            generator: torch.Generator, on_epoch: EpochCallback | None = None,
                            execution: Execution = FP32_CPU) -> TrainResult:
    """Seed 004's algorithm 1, lines 4-7, for one active-learning cycle (phases: :func:`semi_schedule`).

    ``images``/``labels``: the labeled set L; ``pool_images``: the unlabeled images U (uint8, same
    device). Line 4 (SUP): :func:`train_supervised` on L with the cell's recipe for
    ``semi_warmup_epochs`` epochs at ``batch_size`` (skipped when 0). Lines 5-7: ``cfg.epochs`` epochs
    with a fresh optimizer and schedule (Iscen et al. restart training for the semi-supervised phase),
    each one

    - LP: features of L u U in eval mode without augmentation, :func:`knn_affinity` (``cfg.semi_k``,
      ``cfg.semi_gamma``, ``cfg.semi_graph``), :func:`propagate_labels` (``cfg.semi_alpha``) from the
      true labels of L, :func:`pseudo_label_weights` on the rows of U;
    - SEMI: ``ceil(|U| / 2 / u)`` mini-batches (Section VI-A: the epoch ends once |U|/2 pseudo-labels
      are drawn) of ``semi_batch_size`` images, ``l = min(50, semi_batch_size // 2)`` of them labeled
      (Section VI-A: 50 of 128; l is capped so that at least half of a small batch stays
      pseudo-labeled; seed 004 uses 10 of 64 on MNIST) and ``u = semi_batch_size - l`` pseudo-labeled.
      The labeled part walks through a stream of random permutations of L (uniform, every labeled image
      equally often, repeated when |L| is small); the pseudo-labeled part is drawn with replacement
      from U with probabilities ``eta[w]`` (Section IV). Both parts are augmented like the supervised
      batches; the loss is the plain mean cross-entropy (Eq. 2).

    If all weights are 0 (no label reached U) the epoch trains on labeled batches only. ``on_epoch``
    counts the ``semi_warmup_epochs + epochs`` epochs of both phases.
    """
    warmup, semi_batch = semi_schedule(cfg)
    backbone = _check_inputs(model, images, pool_images)
    start = time.perf_counter()
    total_epochs = warmup + cfg.epochs

    def report(epoch: int, _: int, loss: float) -> None:
        if on_epoch is not None:
            on_epoch(epoch, total_epochs, loss)

    mean_loss = float("nan")
    if warmup > 0:
        sup_cfg = cfg.model_copy(update={"epochs": warmup})
        mean_loss = train_supervised(model, images, labels, sup_cfg, normalize, augmentation, generator, report,
                                     None, execution).final_loss
    if pool_images.shape[0] == 0:
        return TrainResult(final_loss=mean_loss, seconds=time.perf_counter() - start)
    optimizer = make_optimizer(list(model.parameters()), cfg.optimizer)
    scheduler = make_scheduler(optimizer, cfg.schedule, cfg.epochs)
    labeled_stream = LabeledStream(images.shape[0], generator, images.device)
    for epoch in range(cfg.epochs):
        pseudo, weights = _propagate(backbone, images, labels, pool_images, cfg, normalize, execution)
        loss_sum, seen = _semi_epoch(model, images, labels, pool_images, pseudo, weights, semi_batch, cfg,
                                     normalize, augmentation, generator, execution, optimizer, labeled_stream)
        mean_loss = end_epoch(scheduler, loss_sum, seen, warmup + epoch + 1, total_epochs, on_epoch,
                              "semi-supervised training loss")
    return TrainResult(final_loss=mean_loss, seconds=time.perf_counter() - start)


def _check_inputs(model: nn.Module, images: torch.Tensor, pool_images: torch.Tensor) -> Backbone:
    """``model`` as a Backbone, once the inputs are checked (a clear error otherwise)."""
    if not isinstance(model, Backbone):
        raise TypeError(f"training.semi: label_propagation needs a Backbone (features + linear head), "
                        f"got {type(model).__name__}")
    if images.shape[0] == 0:
        raise ValueError("training.semi: label_propagation needs at least one labeled image")
    if pool_images.device != images.device or pool_images.shape[1:] != images.shape[1:]:
        raise ValueError(f"pool_images must be images like the labeled ones on {images.device}, got "
                         f"shape {tuple(pool_images.shape)} on {pool_images.device} vs {tuple(images.shape)}")
    return model


def _propagate(model: Backbone, images: torch.Tensor, labels: torch.Tensor, pool_images: torch.Tensor,
               cfg: TrainingConfig, normalize: Normalizer, execution: Execution) -> tuple[torch.Tensor, torch.Tensor]:
    """LP (algorithm 1 line 6): pseudo-labels and weights of the rows of U from the current features."""
    feats = frozen_features(model, torch.cat([images, pool_images]), normalize, execution)
    graph = knn_affinity(feats, cfg.semi_k, cfg.semi_gamma, reciprocal=cfg.semi_graph == "reciprocal")
    del feats
    labeled_idx = torch.arange(images.shape[0], device=images.device)
    z = propagate_labels(graph, labeled_idx, labels, model.head.out_features, cfg.semi_alpha)
    return pseudo_label_weights(z[images.shape[0]:])


def _semi_epoch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, pool_images: torch.Tensor,
                pseudo: torch.Tensor, weights: torch.Tensor, batch_size: int, cfg: TrainingConfig,
                normalize: Normalizer, augmentation: AugmentationSpec, generator: torch.Generator,
                execution: Execution, optimizer: torch.optim.Optimizer,
                labeled_stream: LabeledStream) -> tuple[torch.Tensor, int]:
    """SEMI (algorithm 1 line 7): one epoch of mixed mini-batches; returns (loss sum, samples)."""
    n_lab = min(LABELED_PER_BATCH, batch_size // 2)
    n_pseudo = batch_size - n_lab
    n_batches = math.ceil(math.ceil(EPOCH_FRACTION * pool_images.shape[0]) / n_pseudo)
    draws = (torch.multinomial(weights, n_batches * n_pseudo, replacement=True, generator=generator)
             if bool(weights.sum() > 0) else None)
    model.train()
    loss_sum = torch.zeros((), device=images.device)
    seen = 0
    for b in range(n_batches):
        lab = labeled_stream.take(n_lab)
        x, y = images[lab], labels[lab]
        if draws is not None:
            unl = draws[b * n_pseudo:(b + 1) * n_pseudo]
            x, y = torch.cat([x, pool_images[unl]]), torch.cat([y, pseudo[unl]])
        x = augment_batch(x, cfg.augmentation, augmentation, generator)
        with execution.autocast():
            loss = F.cross_entropy(model(execution.prepare_input(normalize(x))), y)
        optimizer_step(loss, optimizer)
        loss_sum += loss.detach().float() * y.numel()
        seen += y.numel()
    return loss_sum, seen
