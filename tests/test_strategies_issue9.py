"""Issue 9, strategy fidelity: VAAL widths, TypiClust's selection rules, MC-dropout placement, balanced L_0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.config import CellConfig
from benchmark.data.loading import load_dataset
from benchmark.errors import ConfigError
from benchmark.models import mc_dropout_sites
from benchmark.models.base import build_backbone
from benchmark.runner import CellContext, run_cell
from benchmark.store import SuiteStore
from benchmark.strategies.balanced import balanced_counts, balanced_selection
from benchmark.strategies.base import SelectionContext
from benchmark.strategies.diversity import typiclust_cluster_order, typiclust_select
from benchmark.strategies.pool_model import PoolModel
from benchmark.strategies.vaal import VAE
from benchmark.suite import parse_suite

# --------------------------------------------------------------------------- VAAL


def test_vaal_28x28_encoder_has_the_official_first_widths() -> None:
    # 28x28 halves twice (28 -> 14 -> 7): the official 128-256 channels, then the latent of 32
    vae = VAE(1, 28)
    assert [m.out_channels for m in vae.encoder.modules() if isinstance(m, nn.Conv2d)] == [128, 256]
    assert vae.fc_mu.out_features == 32
    assert [m.out_channels for m in VAE(1, 28, width=8).encoder.modules() if isinstance(m, nn.Conv2d)] == [8, 16]


# --------------------------------------------------------------------------- TypiClust


def test_cluster_order_follows_the_authors_rules() -> None:
    sizes = np.array([40, 20, 5, 6, 3, 20])
    labeled = np.array([3, 0, 0, 0, 0, 1])
    kept, dropped = typiclust_cluster_order(sizes, labeled, 5)
    # size <= 5 dropped; fewest labeled first, then largest, then lowest id
    assert kept.tolist() == [1, 3, 5, 0]
    assert dropped.tolist() == [2, 4]


def brute_typicality(points: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(((points[:, None].astype(np.float64) - points[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return 1.0 / np.sort(d, axis=1)[:, :k].mean(axis=1)


def blobs(sizes: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [1000, 0], [0, 1000], [1000, 1000], [-1000, 0]], dtype=np.float64)
    points = np.concatenate([centres[b] + rng.normal(size=(n, 2)) for b, n in enumerate(sizes)])
    return points.astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


def authors_picks(points: np.ndarray, blob: np.ndarray, cluster_sequence: list[int]) -> list[int]:
    """The authors' pick in each listed cluster: most typical remaining point, min(20, m // 2) neighbours."""
    remaining = np.ones(len(points), dtype=bool)
    picks = []
    for b in cluster_sequence:
        members = np.flatnonzero((blob == b) & remaining)
        pos = int(members[np.argmax(brute_typicality(points[members], min(20, len(members) // 2)))])
        picks.append(pos)
        remaining[pos] = False
    return picks


def test_typiclust_first_picks_follow_the_authors_code() -> None:
    # blobs A=40 (3 of them labeled), B=20, C=5 (dropped: <= 5), D=6; 4 clusters for 6 picks
    points, blob = blobs([40, 20, 5, 6], seed=3)
    labeled_rows = np.array([0, 1, 2])
    rest = np.setdiff1d(np.arange(len(points)), labeled_rows)
    picks = typiclust_select(torch.from_numpy(points[rest]), torch.from_numpy(points[labeled_rows]), 6,
                             torch.Generator().manual_seed(0), max_clusters=4).numpy()
    # authors: one fixed order (B, D: no label, larger first; A: 3 labels), round-robin, C never;
    # the old rule (re-sorted by labeled count after each pick, C kept) would give B, D, C, B, D, C
    assert blob[rest][picks].tolist() == [1, 3, 0, 1, 3, 0]
    assert picks.tolist() == authors_picks(points[rest], blob[rest], [1, 3, 0, 1, 3, 0])


def test_typiclust_uses_small_clusters_only_when_nothing_else_is_left() -> None:
    # every cluster has <= 5 points: the authors' code fails; alb visits them in the same order
    points, blob = blobs([3, 5, 4], seed=1)
    picks = typiclust_select(torch.from_numpy(points), None, 3, torch.Generator().manual_seed(0)).numpy()
    assert blob[picks].tolist() == [1, 2, 0]
    # D (6 points) is the only kept cluster: used up first, then the dropped ones in order
    points, blob = blobs([6, 2], seed=2)
    picks = typiclust_select(torch.from_numpy(points), None, 8, torch.Generator().manual_seed(0),
                             max_clusters=2).numpy()
    assert blob[picks].tolist() == [0] * 6 + [1] * 2


# --------------------------------------------------------------------------- MC dropout placement


def cell(strategy: str, backbone: str = "small_cnn", dataset: str = "digits", **training: object) -> CellConfig:
    return CellConfig.model_validate({"dataset": dataset, "backbone": backbone, "strategy": strategy,
                                      "budget": {"initial": 10, "query": 10, "rounds": 1}, "training": training})


def test_mc_dropout_sites_are_resolved_into_the_cell() -> None:
    assert mc_dropout_sites("small_cnn") == mc_dropout_sites("lenet") == {"conv": 0.25, "head": 0.5}
    bald = cell("bald").training
    assert (bald.conv_dropout, bald.head_dropout) == (0.25, 0.5)
    lenet = cell("bald", "lenet", "mnist").training
    assert (lenet.conv_dropout, lenet.head_dropout) == (0.25, 0.5)
    entropy = cell("entropy").training
    assert (entropy.conv_dropout, entropy.head_dropout) == (0.0, 0.0)
    resnet = cell("bald", "resnet18_cifar", "cifar10").training
    assert (resnet.conv_dropout, resnet.head_dropout) == (0.0, 0.5)
    assert cell("bald", "cnn13", "cifar10").training.conv_dropout == 0.0  # has its own dropout
    assert cell("bald", head="linear").training.conv_dropout == 0.0  # frozen backbone
    assert "conv_dropout" in cell("bald").canonical()["training"]  # recorded with the results
    with pytest.raises(ValueError, match="no dropout site after its convolutional block"):
        cell("bald", "resnet18_cifar", "cifar10", conv_dropout=0.1)


def pool_for(cfg: CellConfig) -> PoolModel:
    torch.manual_seed(0)
    model = build_backbone(cfg.backbone, 10, 1, cfg.training.head_dropout or 0.0, cfg.training.conv_dropout or 0.0)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=g)
    model.train()
    with torch.no_grad():  # non-trivial batch-norm statistics
        model(images.float() / 255.0)
    model.eval()
    return PoolModel(model, images, torch.zeros(40, dtype=torch.long), lambda x: x.float() / 255.0,
                     torch.arange(10, 40), torch.arange(10), seed=0)


def test_bald_on_small_cnn_has_both_dropout_sites_and_the_passes_differ() -> None:
    pool = pool_for(cell("bald"))
    net = pool.network
    assert isinstance(net.conv_dropout, nn.Dropout) and net.conv_dropout.p == 0.25
    assert isinstance(net.head_dropout, nn.Dropout) and net.head_dropout.p == 0.5
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 2
    probs = pool.mc_dropout_probs(2)
    assert not torch.allclose(probs[0], probs[1])
    # the conv site alone also makes the passes differ: it sits in the forward path
    conv_only = pool_for(cell("bald", head_dropout=0.0))
    assert isinstance(conv_only.network.head_dropout, nn.Identity)
    probs = conv_only.mc_dropout_probs(2)
    assert not torch.allclose(probs[0], probs[1])


def test_entropy_cell_network_is_unchanged() -> None:
    net = pool_for(cell("entropy")).network
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())
    # same parameter names as before the dropout sites existed (pretrained caches stay valid)
    keys = set(net.state_dict())
    assert {"body.0.0.weight", "body.1.0.weight", "body.3.0.weight", "head.weight"} <= keys
    assert not any(k.startswith("pool") for k in keys)
    x = torch.rand(4, 1, 8, 8)
    net.train()
    assert torch.equal(net.features(x), net.features(x))  # batch norm in train mode: no randomness


# --------------------------------------------------------------------------- balanced initial set


def test_balanced_counts_differ_by_at_most_one() -> None:
    counts = balanced_counts(10, 25, np.random.default_rng(0))
    assert counts.sum() == 25 and set(counts.tolist()) == {2, 3}
    assert balanced_counts(10, 25, np.random.default_rng(0)).tolist() == counts.tolist()
    assert any(balanced_counts(10, 25, np.random.default_rng(s)).tolist() != counts.tolist() for s in range(1, 5))


def test_balanced_initial_set_on_digits(tmp_path: Path) -> None:
    labels = load_dataset("digits", tmp_path).train_y.numpy()
    pool = np.arange(len(labels))

    def pick(seed: int) -> np.ndarray:
        ctx = SelectionContext(pool, np.empty(0, np.int64), np.random.default_rng(seed), labels=labels)
        from benchmark.strategies.balanced import BalancedInitial

        return BalancedInitial().select(ctx, 100)

    chosen = pick(0)
    assert len(chosen) == 100 and len(np.unique(chosen)) == 100
    assert np.bincount(labels[chosen], minlength=10).tolist() == [10] * 10
    assert pick(0).tolist() == chosen.tolist()
    assert pick(1).tolist() != chosen.tolist()


def test_balanced_fails_clearly_when_a_class_is_short() -> None:
    labels = np.array([0] * 10 + [1] * 2)
    with pytest.raises(ConfigError, match="needs 3 samples of class 1"):
        balanced_selection(np.arange(12), labels, 6, np.random.default_rng(0))


def test_balanced_is_only_an_initial_strategy() -> None:
    with pytest.raises(ValueError, match="use initial_strategy: balanced"):
        cell("balanced")
    assert cell("entropy").initial_strategy == "random"
    balanced = CellConfig.model_validate({"dataset": "digits", "backbone": "small_cnn", "strategy": "entropy",
                                      "initial_strategy": "balanced",
                                      "budget": {"initial": 10, "query": 10, "rounds": 1}})
    assert balanced.initial_strategy == "balanced"


def test_digits_cell_runs_with_a_balanced_initial_set(tmp_path: Path) -> None:
    suite = parse_suite({"defaults": {
        "dataset": "digits", "backbone": "small_cnn", "strategy": "entropy", "initial_strategy": "balanced",
        "budget": {"initial": 100, "query": 10, "rounds": 1}, "training": {"epochs": 1, "batch_size": 32}}},
        tmp_path / "balanced.yaml")
    [c] = suite.cells
    rows = run_cell(c, CellContext(SuiteStore(tmp_path, "balanced"), "cpu", tmp_path))
    assert [r["n_labeled"] for r in rows] == [100, 110]
    labels = load_dataset("digits", tmp_path).train_y.numpy()
    assert np.bincount(labels[np.asarray(rows[0]["selected"])], minlength=10).tolist() == [10] * 10
