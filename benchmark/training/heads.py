"""A classifier on frozen features: ``training.head: linear | svm`` (seed 003).

Seed 003 (Bengar et al. 2021), Fig. 1 stage (ii) and Section 4: "freeze the weights and train a
linear classifier or SVM on top of the backbone so we only finetune the last layer". The linear
classifier is trained "on frozen features, which are from ResNet's global average pooling layer"
(base lr 30, cosine decay, 100 epochs, weight decay 0, momentum 0.9, batch 256: the suite sets these
through the cell's optimizer/schedule/epochs/batch_size); the SVM is scikit-learn's with a linear
kernel, C = 5, one-vs-rest.

The backbone runs in eval mode (batch-norm statistics fixed) and without gradients. With
``training.augmentation: none`` the features are computed once per round and each epoch is one small
matrix product over that table. Otherwise the linear head sees a fresh augmented view of every labeled
image each epoch, its features recomputed through the frozen backbone batch by batch: seed 003 l.111
trains the supervised stage with "the conventional RandomResizedCrop with scale [0.08, 1.0] and
RandomHorizontalFlip" (``augmentation: resized_crop``). The SVM is fit once on un-augmented features
and ignores ``training.augmentation`` (augmented copies would only change how many points the
one-off fit sees). ``model.head_dropout`` (MC-dropout strategies) is kept active while the linear head
trains, so the head is fit under the same dropout it is sampled with; the SVM ignores it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmark.config import TrainingConfig
from benchmark.models.base import Backbone
from benchmark.training.augment import Normalizer
from benchmark.training.execution import FP32_CPU, Execution
from benchmark.training.forward import frozen_features
from benchmark.training.loop import (
    AugmentationSpec,
    EpochCallback,
    TrainResult,
    augment_batch,
    end_epoch,
    epoch_batches,
    make_optimizer,
    make_scheduler,
    optimizer_step,
)

# logit of a class without any labeled example under the SVM head: far below any decision value of a
# fitted class, yet finite, so that softmax probabilities are tiny but non-zero and their logs finite
ABSENT_CLASS_LOGIT = -50.0
# the per-feature scale of a constant feature is 1, so it is centred and left alone
_MIN_STD = 1e-12
# LinearSVC's default (1000 iterations) often stops short on deep features with C = 5
SVM_MAX_ITER = 10_000


def train_head(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainingConfig,
               normalize: Normalizer, generator: torch.Generator, on_epoch: EpochCallback | None = None,
               execution: Execution = FP32_CPU, augmentation: AugmentationSpec | None = None) -> TrainResult:
    """Fit ``model.head`` on the frozen backbone's features of (images, labels) as ``cfg.head`` says;
    ``augmentation`` (the dataset's crop padding and flips) is needed by head linear unless
    ``cfg.augmentation`` is none."""
    if not isinstance(model, Backbone) or not isinstance(model.head, nn.Linear):
        raise TypeError(f"training.head: {cfg.head} needs a Backbone with a linear 'head', got {type(model).__name__}")
    start = time.perf_counter()
    if cfg.head == "linear":
        batch_features = _feature_source(model, images, cfg.augmentation, normalize, augmentation, generator,
                                         execution)
        loss = _fit_linear(model, batch_features, labels, cfg, generator, on_epoch)
    elif cfg.head == "svm":
        feats = frozen_features(model, images, normalize, execution)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
        loss = _fit_svm(model.head, feats, labels, cfg.svm_c, seed)
        if on_epoch is not None:
            on_epoch(1, 1, loss)
    else:
        raise ValueError(f"training.head must be linear or svm here, got '{cfg.head}'")
    model.eval()
    return TrainResult(final_loss=loss, seconds=time.perf_counter() - start)


BatchFeatures = Callable[[torch.Tensor], torch.Tensor]


def _feature_source(model: Backbone, images: torch.Tensor, policy: str, normalize: Normalizer,
                    augmentation: AugmentationSpec | None, generator: torch.Generator,
                    execution: Execution) -> BatchFeatures:
    """The frozen features of a mini-batch of labeled indices: rows of a table computed once (policy
    none), or the features of a freshly augmented view of those images (any other policy)."""
    if policy == "none":
        feats = frozen_features(model, images, normalize, execution)
        return lambda idx: feats[idx]
    if augmentation is None:
        raise ValueError(f"training.head: linear with training.augmentation: {policy} needs the dataset's "
                         "augmentation: pass train_head(..., augmentation=AugmentationSpec(...))")
    spec = augmentation

    @torch.no_grad()
    def augmented(idx: torch.Tensor) -> torch.Tensor:
        x = augment_batch(images[idx], policy, spec, generator)
        with execution.autocast():
            return model.features(execution.prepare_input(normalize(x))).float()

    return augmented


def _fit_linear(model: Backbone, batch_features: BatchFeatures, labels: torch.Tensor, cfg: TrainingConfig,
                generator: torch.Generator, on_epoch: EpochCallback | None) -> float:
    """Mini-batch training of ``model.head`` alone on frozen features (``batch_features`` of each batch of
    indices); the backbone stays in eval mode. Returns the last epoch's mean loss."""
    optimizer = make_optimizer(list(model.head.parameters()), cfg.optimizer)
    scheduler = make_scheduler(optimizer, cfg.schedule, cfg.epochs)
    model.eval()
    model.head_dropout.train()
    n = labels.shape[0]
    mean_loss = float("nan")
    for epoch in range(cfg.epochs):
        loss_sum = torch.zeros((), device=labels.device)
        for idx in epoch_batches(n, cfg.batch_size, generator, labels.device):
            loss = F.cross_entropy(model.head(model.head_dropout(batch_features(idx))), labels[idx])
            optimizer_step(loss, optimizer)
            loss_sum += loss.detach() * idx.numel()
        mean_loss = end_epoch(scheduler, loss_sum, n, epoch + 1, cfg.epochs, on_epoch, "linear-head loss")
    return mean_loss


def _fit_svm(head: nn.Linear, feats: torch.Tensor, labels: torch.Tensor, c: float, seed: int) -> float:
    """Fit a one-vs-rest LinearSVC on standardised features and write it into ``head``.

    Returns the mean squared hinge loss (LinearSVC's data term) over samples and binary problems.
    """
    from sklearn.svm import LinearSVC

    x = feats.detach().cpu().double().numpy()
    y = labels.detach().cpu().numpy()
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > _MIN_STD, std, 1.0)
    classes = np.unique(y)
    num_classes = head.out_features
    if classes.min() < 0 or classes.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got {classes.tolist()}")
    if len(classes) == 1:
        # LinearSVC cannot fit a single class: predict it everywhere, the others absent
        coef, intercept = np.zeros((1, x.shape[1])), np.zeros(1)
    else:
        svm = LinearSVC(C=c, max_iter=SVM_MAX_ITER, random_state=seed)
        svm.fit((x - mean) / std, y)
        coef, intercept = svm.coef_, svm.intercept_
    weight, bias = svm_head_parameters(coef, intercept, classes, num_classes, mean, std)
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))
    decision = x @ weight.T + bias
    targets = np.where(y[:, None] == np.arange(num_classes)[None, :], 1.0, -1.0)
    if len(classes) == 2:  # one binary problem, f = logit[c1] - logit[c0], target +1 for c1
        decision = decision[:, classes[1]:classes[1] + 1] - decision[:, classes[0]:classes[0] + 1]
        targets = targets[:, classes[1]:classes[1] + 1]
    elif len(classes) > 2:
        decision, targets = decision[:, classes], targets[:, classes]
    else:
        return 0.0
    return float(np.mean(np.maximum(0.0, 1.0 - targets * decision) ** 2))


def svm_head_parameters(coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray, num_classes: int,
                        mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of a linear layer whose outputs on raw features are the SVM's decision values.

    The SVM was fit on standardised features ``(x - mean) / std``, so its decision value
    ``coef . (x - mean) / std + intercept`` equals ``(coef / std) . x + (intercept - coef . (mean / std))``:
    the scaling is folded into the layer. One-vs-rest (``coef`` with a row per class of ``classes``):
    row ``classes[j]`` gets row j. Two classes (``coef`` with the single row of sklearn's binary SVM,
    positive for ``classes[1]``): the logits are ``-f/2`` for ``classes[0]`` and ``+f/2`` for
    ``classes[1]``, so their difference is f and the argmax is the SVM's prediction. One class (a
    zero ``coef`` row): its logit is 0. Classes without a labeled example get weight 0 and bias
    :data:`ABSENT_CLASS_LOGIT`.
    """
    w = coef / std[None, :]
    b = intercept - w @ mean
    weight = np.zeros((num_classes, coef.shape[1]))
    bias = np.full(num_classes, ABSENT_CLASS_LOGIT)
    if len(classes) == 2:
        if coef.shape[0] != 1:
            raise ValueError(f"a binary SVM has one row of coefficients, got {coef.shape[0]}")
        weight[classes[0]], bias[classes[0]] = -w[0] / 2, -b[0] / 2
        weight[classes[1]], bias[classes[1]] = w[0] / 2, b[0] / 2
    else:
        if coef.shape[0] != len(classes):
            raise ValueError(f"expected one row of coefficients per class ({len(classes)}), got {coef.shape[0]}")
        weight[classes], bias[classes] = w, b
    return weight, bias
