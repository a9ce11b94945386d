"""training.head: linear | svm on frozen features (seed 003) and training.semi: label_propagation (seed 004)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from benchmark.config import TrainingConfig
from benchmark.data.base import ImageDataset
from benchmark.data.loading import load_dataset
from benchmark.models.base import Backbone, build_backbone
from benchmark.ops.graph import normalize_graph
from benchmark.training.augment import Normalizer
from benchmark.training.forward import predict_logits
from benchmark.training.heads import ABSENT_CLASS_LOGIT, SVM_MAX_ITER, frozen_features, svm_head_parameters
from benchmark.training.loop import AugmentationSpec, LabeledStream
from benchmark.training.semi import (
    knn_affinity,
    propagate_labels,
    pseudo_label_weights,
)
from benchmark.training.trainer import evaluate, train

SPEC = AugmentationSpec(1, False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # deterministic and fair on a shared CPU


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> ImageDataset:
    return load_dataset("digits", tmp_path_factory.mktemp("data"))


def _setup(data: ImageDataset, **training: Any) -> tuple[Backbone, Normalizer, TrainingConfig]:
    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1)
    norm = Normalizer(data.mean, data.std, torch.device("cpu"))
    return model, norm, TrainingConfig.model_validate(training)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- heads


def test_linear_head_trains_only_the_head_and_learns_digits(digits: ImageDataset) -> None:
    model, norm, cfg = _setup(digits, epochs=40, batch_size=64, head="linear", augmentation="none",
                              optimizer={"name": "sgd", "lr": 10.0, "weight_decay": 0.0}, schedule={"name": "cosine"})
    before = _state(model)
    losses: list[float] = []
    result = train(model, digits.train_x[:500], digits.train_y[:500], cfg, norm, SPEC,
                   torch.Generator().manual_seed(0), lambda e, n, loss: losses.append(loss))
    after = _state(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # weights, biases and batch-norm running statistics of the backbone are all untouched
    assert changed == {"head.weight", "head.bias"}
    assert len(losses) == 40 and result.final_loss == losses[-1] < losses[0]
    assert evaluate(model, digits.test_x, digits.test_y, norm, 10)["accuracy"] > 0.8


def _standardised_svm(feats: np.ndarray, y: np.ndarray, c: float, seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    from sklearn.svm import LinearSVC

    mean, std = feats.mean(axis=0), feats.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return LinearSVC(C=c, max_iter=SVM_MAX_ITER, random_state=seed).fit((feats - mean) / std, y), mean, std


def _svm_seed(generator_seed: int) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=torch.Generator().manual_seed(generator_seed)))


def test_svm_head_logits_are_the_svm_decision_values(digits: ImageDataset) -> None:
    model, norm, cfg = _setup(digits, head="svm", svm_c=5.0)
    x, y = digits.train_x[:300], digits.train_y[:300]
    train(model, x, y, cfg, norm, SPEC, torch.Generator().manual_seed(3))
    logits = predict_logits(model, digits.test_x, norm).double().numpy()
    feats = frozen_features(model, x, norm).double().numpy()
    svm, mean, std = _standardised_svm(feats, y.numpy(), 5.0, _svm_seed(3))
    test_feats = frozen_features(model, digits.test_x, norm).double().numpy()
    reference = svm.decision_function((test_feats - mean) / std)
    assert reference.shape == (450, 10)
    np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
    assert (logits.argmax(1) == svm.predict((test_feats - mean) / std)).mean() > 0.99
    assert evaluate(model, digits.test_x, digits.test_y, norm, 10)["accuracy"] > 0.8


def test_svm_head_with_two_classes_present_gives_them_the_binary_decision_and_the_rest_very_low(
        digits: ImageDataset) -> None:
    model, norm, cfg = _setup(digits, head="svm")
    keep = torch.isin(digits.train_y, torch.tensor([3, 7]))
    x, y = digits.train_x[keep][:80], digits.train_y[keep][:80]
    train(model, x, y, cfg, norm, SPEC, torch.Generator().manual_seed(1))
    logits = predict_logits(model, digits.test_x, norm).double().numpy()
    feats = frozen_features(model, x, norm).double().numpy()
    svm, mean, std = _standardised_svm(feats, y.numpy(), cfg.svm_c, _svm_seed(1))
    f = svm.decision_function((frozen_features(model, digits.test_x, norm).double().numpy() - mean) / std)
    assert f.ndim == 1
    np.testing.assert_allclose(logits[:, 7] - logits[:, 3], f, rtol=1e-4, atol=1e-4 * np.abs(f).max())
    np.testing.assert_allclose(logits[:, 7] + logits[:, 3], 0.0, atol=1e-4 * np.abs(f).max())
    absent = [c for c in range(10) if c not in (3, 7)]
    np.testing.assert_allclose(logits[:, absent], ABSENT_CLASS_LOGIT, atol=1e-3)
    assert set(logits.argmax(1).tolist()) <= {3, 7}


def test_svm_head_with_a_single_labeled_class_predicts_it_without_crashing(digits: ImageDataset) -> None:
    model, norm, cfg = _setup(digits, head="svm")
    x = digits.train_x[digits.train_y == 5][:6]
    train(model, x, torch.full((6,), 5), cfg, norm, SPEC, torch.Generator().manual_seed(0))
    logits = predict_logits(model, digits.test_x[:20], norm)
    assert torch.isfinite(logits).all() and (logits.argmax(1) == 5).all()


def test_svm_head_parameters_fold_the_standardisation_by_hand() -> None:
    coef = np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]])
    intercept = np.array([0.1, -0.2, 0.3])
    mean, std = np.array([1.0, 2.0]), np.array([2.0, 4.0])
    weight, bias = svm_head_parameters(coef, intercept, np.array([0, 2, 3]), 4, mean, std)
    x = np.array([3.0, -1.0])
    # standardised: (x - mean) / std = [1, -0.75]
    expected = {0: 1 * 1 + -2 * -0.75 + 0.1, 2: 0.5 * 1 - 0.2, 3: 3 * -0.75 + 0.3}  # 2.6, 0.3, -1.95
    for c, value in expected.items():
        assert weight[c] @ x + bias[c] == pytest.approx(value)
    assert (weight[1] == 0).all() and bias[1] == ABSENT_CLASS_LOGIT
    assert np.allclose(weight @ x + bias, [2.6, ABSENT_CLASS_LOGIT, 0.3, -1.95])


# --------------------------------------------------------------------------- graph and propagation


def _brute_force_affinity(x: torch.Tensor, k: int, gamma: float) -> torch.Tensor:
    n = x.shape[0]
    xn = x.double() / x.double().norm(dim=1, keepdim=True)
    cos = xn @ xn.T
    a = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        nearest = sorted(others, key=lambda j: -float(cos[i, j]))[:k]
        for j in nearest:
            a[i, j] = max(float(cos[i, j]), 0.0) ** gamma
    return a + a.T


@pytest.mark.parametrize("block_elements", [1 << 20, 70])  # one block; blocks of 2 rows
def test_knn_affinity_matches_a_brute_force_dense_graph(block_elements: int) -> None:
    x = torch.randn(35, 6, generator=torch.Generator().manual_seed(0))
    w = knn_affinity(x, k=4, gamma=3.0, block_elements=block_elements)
    assert w.layout == torch.sparse_coo and w.shape == (35, 35)
    dense = w.to_dense().double()
    expected = _brute_force_affinity(x, 4, 3.0)
    torch.testing.assert_close(dense, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(dense, dense.T) and (dense.diagonal() == 0).all()
    # every node keeps its positive-cosine neighbours among its k
    positive_neighbours = (expected > 0).sum(1)
    assert (positive_neighbours >= 1).all() and ((dense > 0).sum(1) == positive_neighbours).all()


def test_knn_affinity_never_links_a_duplicate_to_itself_and_caps_k() -> None:
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    dense = knn_affinity(x, k=50, gamma=2.0).to_dense()
    assert (dense.diagonal() == 0).all()
    # k is capped at n - 1 = 2; the duplicates are each other's neighbours (twice: A + A^T), cos 0 -> no edge
    assert dense[0, 1] == pytest.approx(2.0) and dense[0, 2] == 0 and dense[2].sum() == 0


def _graph(n: int = 40) -> tuple[torch.Tensor, np.ndarray]:
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(1)).abs()
    w = knn_affinity(x, k=6, gamma=3.0)
    return w, w.to_dense().double().numpy()


def test_normalized_affinity_is_d_to_the_minus_half_w_d_to_the_minus_half() -> None:
    w, dense = _graph()
    d = dense.sum(1)
    expected = dense / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    np.testing.assert_allclose(normalize_graph(w).to_dense().numpy(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("alpha", [0.5, 0.99])
def test_propagate_labels_solves_the_linear_system_for_all_classes(alpha: float) -> None:
    w, dense = _graph()
    labeled, labels = torch.tensor([0, 5, 9, 17, 30]), torch.tensor([0, 1, 2, 1, 0])
    z = propagate_labels(w, labeled, labels, num_classes=4, alpha=alpha, iterations=400, tol=1e-9)
    d = dense.sum(1)
    w_n = dense / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    y = np.zeros((40, 4))
    y[labeled.numpy(), labels.numpy()] = 1
    expected = np.linalg.solve(np.eye(40) - alpha * w_n, y)
    np.testing.assert_allclose(z.double().numpy(), expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
    assert (z[:, 3] == 0).all()  # a class without labels stays 0 (no division by zero)
    # the default 20 steps of Iscen et al. already give the pseudo-labels of the exact solution here
    z20 = propagate_labels(w, labeled, labels, num_classes=4, alpha=alpha)
    assert (z20[:, :3].argmax(1).numpy() == expected[:, :3].argmax(1)).mean() > 0.9


def test_pseudo_label_weights_by_hand() -> None:
    z = torch.tensor([[2.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, -0.1, 0.0], [0.2, 0.6, 0.2]])
    labels, weights = pseudo_label_weights(z)
    # row 0: p = (1/2, 1/4, 1/4), H = 1/2 ln 2 + 1/2 ln 4 = 3/2 ln 2
    # row 1: no mass -> uniform -> weight 0; row 2: negative part clipped -> p = (1, 0, 0) -> weight 1
    # row 3: p = (0.2, 0.6, 0.2), H = -(0.4 ln 0.2 + 0.6 ln 0.6)
    h3 = -(0.4 * math.log(0.2) + 0.6 * math.log(0.6))
    expected = [1 - 1.5 * math.log(2) / math.log(3), 0.0, 1.0, 1 - h3 / math.log(3)]
    assert weights.tolist() == pytest.approx(expected, abs=1e-6)
    assert labels.tolist() == [0, 0, 0, 1]


def test_labeled_stream_is_uniform_over_permutations() -> None:
    stream = LabeledStream(7, torch.Generator().manual_seed(0), torch.device("cpu"))
    draws = torch.cat([stream.take(5) for _ in range(14)])  # 70 = 10 permutations of 7
    assert torch.equal(torch.bincount(draws, minlength=7), torch.full((7,), 10))
    assert all(sorted(draws[i:i + 7].tolist()) == list(range(7)) for i in range(0, 70, 7))


# --------------------------------------------------------------------------- training and dispatch


def test_label_propagation_training_on_digits(digits: ImageDataset, capsys: pytest.CaptureFixture[str]) -> None:
    model, norm, cfg = _setup(digits, epochs=5, batch_size=64, semi="label_propagation",
                              optimizer={"name": "sgd", "lr": 0.05})
    labeled = torch.cat([torch.nonzero(digits.train_y == c).flatten()[:3] for c in range(10)])  # 30 labels
    rest = torch.ones(len(digits.train_y), dtype=torch.bool)
    rest[labeled] = False
    epochs: list[tuple[int, int]] = []
    result = train(model, digits.train_x[labeled], digits.train_y[labeled], cfg, norm, SPEC,
                   torch.Generator().manual_seed(0), lambda e, n, loss: epochs.append((e, n)),
                   pool_images=digits.train_x[rest])
    assert epochs == [(e, 10) for e in range(1, 11)] and math.isfinite(result.final_loss)
    feats = frozen_features(model, torch.cat([digits.train_x[labeled], digits.train_x[rest]]), norm)
    z = propagate_labels(knn_affinity(feats, cfg.semi_k, cfg.semi_gamma), torch.arange(30),
                         digits.train_y[labeled], 10, cfg.semi_alpha)
    pseudo, weights = pseudo_label_weights(z[30:])
    pseudo_accuracy = float((pseudo == digits.train_y[rest]).float().mean())
    test_accuracy = evaluate(model, digits.test_x, digits.test_y, norm, 10)["accuracy"]
    with capsys.disabled():
        print(f"\nlabel propagation, 30 labels, 5 + 5 epochs: pseudo-label accuracy on the {int(rest.sum())} "
              f"unlabeled digits {pseudo_accuracy:.3f}, test accuracy {test_accuracy:.3f}")
    assert pseudo_accuracy > 0.5 and test_accuracy > 0.5  # chance: 0.1
    assert weights.min() >= 0 and weights.max() <= 1


def test_label_propagation_without_the_pool_says_how_to_pass_it(digits: ImageDataset) -> None:
    model, norm, cfg = _setup(digits, epochs=1, semi="label_propagation")
    with pytest.raises(ValueError, match="pool_images"):
        train(model, digits.train_x[:20], digits.train_y[:20], cfg, norm, SPEC, torch.Generator())


@pytest.mark.parametrize(("training", "message"), [
    ({"head": "linear", "aux": "discriminator"}, "freezes the backbone"),
    ({"semi": "label_propagation", "aux": "discriminator"}, "cannot be combined with the auxiliary module"),
    ({"head": "svm", "semi": "label_propagation"}, "it needs training.head: full"),
])
def test_unsupported_combinations_are_rejected(training: dict[str, Any], message: str) -> None:
    """The cell's configuration rejects them (the one place that checks), before any training."""
    from pydantic import ValidationError

    from benchmark.config import CellConfig

    with pytest.raises(ValidationError, match=message):
        CellConfig.model_validate({"dataset": "digits", "backbone": "small_cnn", "strategy": "entropy",
                                   "budget": {"initial": 10, "query": 10, "rounds": 1}, "training": training})

