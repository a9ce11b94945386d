"""DeepCluster (Caron et al. 2018; seed 004 Sec. III "unsupervised pre-training"): every epoch, cluster
the features of the whole pool with k-means, take the assignments as pseudo-labels, re-initialise the
classifier on top of the backbone, and train backbone + classifier with cross-entropy on the pseudo-labels.

Settings follow Caron et al.'s code (see benchmark/pretrain/settings.py for the numbers and their lines);
epochs are seed 004's 250 (l.190), set by the suite. What alb does not follow, and why:
- Sobel filtering (main.sh l.21 ``--sobel``; models/alexnet.py l.35-47: grayscale then two fixed Sobel
  filters in front of the network): alb's backbones take the image itself, and pre-trained weights must fit
  the same backbone that active learning fine-tunes on RGB input; not implemented.
- AlexNet / VGG-16 at 224 px (main.py l.33-35): seed 004 uses its 13-layer network (cnn13) on 32 px images.
- Clustering features: theirs are the penultimate fully connected layer before its ReLU (main.py l.147);
  alb's are the backbone's embedding (``model.features``), in eval mode on un-augmented images as theirs
  (their Resize 256 + CentreCrop 224, main.py l.122-123, has no 32 px counterpart).
- Their k-means is faiss's (random seeds, 20 iterations, clustering.py l.161-168); alb's is Lloyd's on the
  device from k-means++ seeds, 20 iterations (benchmark/ops/kmeans.py)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.config import PretrainingConfig
from benchmark.errors import ConfigError
from benchmark.models.base import Backbone
from benchmark.ops.kmeans import kmeans
from benchmark.pretrain.common import (
    EpochCallback,
    backbone_parameters,
    check_pool,
    embed,
    embed_pool,
    finish_epoch,
    init_linear,
    make_sgd,
    set_lr,
)
from benchmark.pretrain.kmeans import balanced_indices, preprocess
from benchmark.pretrain.settings import DEEPCLUSTER_CROP_SCALE, Hyper, resolve
from benchmark.training.augment import Normalizer, random_hflip, random_resized_crop
from benchmark.training.execution import Execution
from benchmark.training.loop import optimizer_step, split_batches

TOP_LAYER_STD = 0.01  # DeepCluster's re-initialised classifier: weights ~ N(0, 0.01), zero bias
# DeepCluster PCA-whitens the features (to 256 dimensions) before L2-normalising them. An embedding of at most
# 256 dimensions (small_cnn: 128, ResNet-18: 512) keeps most or all of its directions, and whitening then lifts
# the near-noise ones to unit variance: on digits it still gave better features than plain L2 normalisation
# (kNN 87 % vs 76 % after 30 epochs), but on a few easily separated clusters it hides them. Kept as in the paper.
WHITEN = True


def augment(x: torch.Tensor, hflip: bool, generator: torch.Generator,
            scale: tuple[float, float] = DEEPCLUSTER_CROP_SCALE) -> torch.Tensor:
    """DeepCluster's training view (Caron et al.'s clustering.py l.142-143): random resized crop of area
    ``scale`` (theirs: torchvision's default 0.08-1; ``pretraining.crop_scale``; on 8x8 digits 0.08 keeps about
    2x2 pixels, so a digits suite may want 0.2) and horizontal flip; returns floats on the 0..255 scale."""
    out = random_resized_crop(x.float() / 255.0, generator, scale=scale) * 255.0
    return random_hflip(out, generator) if hflip else out


def make_top_sgd(top: nn.Linear, hyper: Hyper) -> torch.optim.SGD:
    """The top layer's optimiser: same lr and weight decay, no momentum (Caron et al.'s main.py l.235-239)."""
    return torch.optim.SGD(top.parameters(), lr=hyper.lr, momentum=0.0, weight_decay=hyper.weight_decay)


def pseudo_labels(model: Backbone, images: torch.Tensor, normalize: Normalizer, k: int, generator: torch.Generator,
                  execution: Execution) -> torch.Tensor:
    """k-means assignments of the pool's (un-augmented, eval-mode) features, every cluster non-empty."""
    features = preprocess(embed_pool(model, images, normalize, execution), whiten=WHITEN)
    return kmeans(features, k, generator).labels


def pretrain_deepcluster(model: Backbone, images: torch.Tensor, normalize: Normalizer, hflip: bool,
                         cfg: PretrainingConfig, num_classes: int, generator: torch.Generator, execution: Execution,
                         on_epoch: EpochCallback | None = None) -> list[float]:
    """Train ``model``'s feature extractor in place on the uint8 pool ``images`` (on the model's device);
    returns the mean cross-entropy on the pseudo-labels of every epoch."""
    check_pool("deepcluster", images)
    hyper = resolve("deepcluster", cfg, num_classes)
    assert hyper.clusters is not None and hyper.crop_scale is not None
    n, k = images.shape[0], hyper.clusters
    if k > n:
        raise ConfigError(f"deepcluster: pretraining.clusters = {k} but the pool has only {n} images; "
                          f"set pretraining.clusters to at most {n}")
    optimizer = make_sgd(backbone_parameters(model), hyper)
    top = nn.Linear(model.embedding_dim, k).to(images.device)
    losses: list[float] = []
    for epoch in range(hyper.epochs):
        labels = pseudo_labels(model, images, normalize, k, generator, execution)
        # a fresh classifier for the fresh pseudo-classes, with a fresh optimiser (main.py l.179-181, l.235)
        init_linear(top, generator, std=TOP_LAYER_STD)
        top_optimizer = make_top_sgd(top, hyper)
        set_lr(optimizer, hyper, epoch)
        set_lr(top_optimizer, hyper, epoch)
        model.train()
        loss_sum = torch.zeros((), device=images.device)
        order = balanced_indices(labels, k, n, generator)
        for idx in split_batches(order, min(hyper.batch_size, n)):
            x = augment(images[idx], hflip, generator, hyper.crop_scale)
            with execution.autocast():
                logits = top(embed(model, x, normalize, execution))
            loss = F.cross_entropy(logits.float(), labels[idx])
            optimizer_step(loss, optimizer, top_optimizer)
            loss_sum += loss.detach() * idx.numel()
        losses.append(finish_epoch("deepcluster", loss_sum, n, epoch, hyper.epochs, on_epoch))
    return losses
