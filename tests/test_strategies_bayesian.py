"""MC-dropout strategies (BALD, BatchBALD, mean STD, variation ratio) and SVM min margin."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from conftest import assert_valid_selection as assert_valid

from benchmark.config import CellConfig
from benchmark.strategies import STRATEGIES, bayesian
from benchmark.strategies.base import SelectionContext
from benchmark.strategies.bayesian import (
    BALD,
    BatchBALD,
    MeanSTD,
    VariationRatio,
    bald_scores,
    batchbald_select,
    conditional_entropies,
    exact_joint_entropy,
    mean_std_scores,
    sampled_joint_entropy,
    var_ratio_scores,
)
from benchmark.strategies.pool_model import PoolModel
from benchmark.strategies.svm import SVMMinMargin, svm_margins, svm_min_margin_select

LOG2 = math.log(2)
BAYESIAN = ["bald", "batchbald", "mean_std", "var_ratio"]
ALL_FIVE = [*BAYESIAN, "svm_min_margin"]


def mc(*rows_per_pass: list[list[float]]) -> torch.Tensor:
    """[T, N, C] from T lists of N probability rows."""
    return torch.tensor(rows_per_pass, dtype=torch.float64)


def dirichlet_mc(rng: np.random.Generator, passes: int, n: int, c: int, alpha: float = 0.3) -> torch.Tensor:
    return torch.as_tensor(rng.dirichlet(np.full(c, alpha), size=(passes, n)))




# --------------------------------------------------------------------------- BALD / mean STD / var ratio

# four samples, two passes:
#   0  passes agree on [0.5, 0.5]: maximal entropy, no disagreement -> MI 0
#   1  passes disagree, each certain ([1, 0] vs [0, 1]) -> MI log 2
#   2  passes agree and are certain -> MI 0, entropy 0
#   3  partial disagreement ([0.9, 0.1] vs [0.1, 0.9]) -> MI log 2 - H(0.9)
HAND = mc([[0.5, 0.5], [1.0, 0.0], [1.0, 0.0], [0.9, 0.1]],
          [[0.5, 0.5], [0.0, 1.0], [1.0, 0.0], [0.1, 0.9]])
H09 = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))


def test_bald_is_zero_when_passes_agree_and_log2_when_they_disagree() -> None:
    scores = bald_scores(HAND)
    np.testing.assert_allclose(scores, [0.0, LOG2, 0.0, LOG2 - H09], atol=1e-12)
    # sample 0 has the maximal predictive entropy (log 2, as has sample 1), yet BALD ignores it
    predictive_entropy = conditional_entropies(HAND.mean(0, keepdim=True))
    np.testing.assert_allclose(predictive_entropy, [LOG2, LOG2, 0.0, LOG2], atol=1e-12)
    np.testing.assert_allclose(conditional_entropies(HAND), [LOG2, 0.0, 0.0, H09], atol=1e-12)
    assert np.argsort(-scores, kind="stable")[:2].tolist() == [1, 3]
    assert np.isfinite(scores).all()


def test_bald_accepts_numpy_and_float32() -> None:
    np.testing.assert_allclose(bald_scores(HAND.numpy().astype(np.float32)), bald_scores(HAND), atol=1e-6)


@pytest.mark.parametrize("chunk_elements", [1 << 24, 7 * 20 * 10])  # one block; blocks of 7 samples
def test_float32_scores_are_chunked_float64_without_converting_the_whole_stack(
        chunk_elements: int, monkeypatch: pytest.MonkeyPatch) -> None:
    probs = torch.softmax(torch.randn(20, 300, 10, generator=torch.Generator().manual_seed(0)) * 3, dim=2)
    converted: list[int] = []
    real = bayesian._float64_chunks

    def spy(t: torch.Tensor) -> Iterator[torch.Tensor]:
        for chunk in real(t):
            converted.append(chunk.numel())
            yield chunk

    monkeypatch.setattr(bayesian, "_CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(bayesian, "_float64_chunks", spy)
    for score in (bald_scores, conditional_entropies, mean_std_scores, var_ratio_scores):
        converted.clear()
        # the same values as a float64 stack: float64 work, only block by block
        assert np.array_equal(score(probs), score(probs.double())), score.__name__
        assert max(converted) <= max(chunk_elements, 20 * 10)
    picks = batchbald_select(probs, 5, 0, num_samples=200, candidates=50)
    assert np.array_equal(picks, batchbald_select(probs.double(), 5, 0, num_samples=200, candidates=50))


def test_mean_std_known_values() -> None:
    # population std over the two passes: sample 1 -> 0.5 for both classes; sample 3 -> 0.4
    np.testing.assert_allclose(mean_std_scores(HAND), [0.0, 0.5, 0.0, 0.4], atol=1e-12)
    three = mc([[0.2, 0.3, 0.5]], [[0.4, 0.3, 0.3]], [[0.6, 0.3, 0.2]])  # 3 passes, 1 sample
    # class stds: sqrt(0.08 / 3) = 0.163299, 0, sqrt(0.14 / 9) = 0.124722 -> mean 0.096007
    np.testing.assert_allclose(mean_std_scores(three), [(math.sqrt(0.08 / 3) + math.sqrt(0.14 / 9)) / 3],
                               atol=1e-12)


def test_var_ratio_known_values() -> None:
    # 4 passes, 3 samples, 3 classes; votes per pass (argmax):
    #   sample 0: 0 0 0 0 -> 0;  sample 1: 0 0 1 2 -> 1 - 2/4;  sample 2: 0 1 2 1 -> 1 - 2/4
    #   sample 3: [0.5, 0.5, 0] in every pass: ties go to class 0 -> 0
    a, b, c, tie = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]
    probs = mc([a, a, a, tie], [a, a, b, tie], [a, b, c, tie], [a, c, b, tie])
    np.testing.assert_allclose(var_ratio_scores(probs), [0.0, 0.5, 0.5, 0.0], atol=1e-12)
    five = mc(*[[x] for x in (a, b, c, b, a)])  # votes 0 1 2 1 0: mode count 2 of 5
    np.testing.assert_allclose(var_ratio_scores(five), [1 - 2 / 5], atol=1e-12)


# --------------------------------------------------------------------------- BatchBALD


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batchbald_with_budget_one_is_the_bald_argmax(seed: int) -> None:
    probs = dirichlet_mc(np.random.default_rng(seed), 10, 60, 4)
    assert batchbald_select(probs, 1, 0).tolist() == [int(np.argmax(bald_scores(probs)))]


def duplicated_pool() -> torch.Tensor:
    """4 passes, 5 samples: 0 and 1 are identical and top by BALD (log 2); 2 splits the passes
    along another line (MI log 2 - H(0.9)); 3 and 4 are nearly uninformative."""
    hi, lo = [1.0, 0.0], [0.0, 1.0]
    soft_a, soft_b = [0.9, 0.1], [0.1, 0.9]
    flat, flat2 = [0.5, 0.5], [0.55, 0.45]
    return mc([hi, hi, soft_a, flat, flat2],
              [hi, hi, soft_b, flat, flat2],
              [lo, lo, soft_a, flat, flat2],
              [lo, lo, soft_b, flat, [0.45, 0.55]])


@pytest.mark.parametrize("num_samples", [10_000, 1])  # 1: the sampled estimate from the second pick on
def test_batchbald_does_not_pick_both_copies_of_a_duplicate(num_samples: int) -> None:
    probs = duplicated_pool()
    bald_top2 = np.argsort(-bald_scores(probs), kind="stable")[:2]
    assert sorted(bald_top2.tolist()) == [0, 1]  # BALD takes both copies
    picked = batchbald_select(probs, 2, 0, num_samples=num_samples)
    assert picked[0] in (0, 1)
    assert picked.tolist() in ([0, 2], [1, 2])  # the copy adds nothing once its twin is labeled


def test_batchbald_second_pick_maximises_the_exact_joint_mutual_information() -> None:
    probs = dirichlet_mc(np.random.default_rng(3), 6, 12, 3, alpha=0.5)
    first, second = batchbald_select(probs, 2, 0).tolist()
    per_sample = probs.permute(1, 0, 2)  # [N, K, C]
    cond = conditional_entropies(probs)
    joint_mi = []
    for x in range(12):
        h = 0.0
        for y1, y2 in itertools.product(range(3), repeat=2):
            p = float((per_sample[first, :, y1] * per_sample[x, :, y2]).mean())
            h -= p * math.log(p) if p > 0 else 0.0
        joint_mi.append(-np.inf if x == first else h - cond[first] - cond[x])
    assert second == int(np.argmax(joint_mi))


def test_exact_joint_entropy_matches_enumeration() -> None:
    rng = np.random.default_rng(4)
    batch, cand = rng.dirichlet(np.ones(3), size=(2, 5)), rng.dirichlet(np.ones(3), size=(4, 5))
    expected = []
    for x in range(4):
        h = 0.0
        for cfg in itertools.product(range(3), repeat=3):
            p = np.mean(batch[0, :, cfg[0]] * batch[1, :, cfg[1]] * cand[x, :, cfg[2]])
            h -= p * math.log(p)
        expected.append(h)
    np.testing.assert_allclose(exact_joint_entropy(batch, cand), expected, rtol=1e-12)
    # an empty batch gives the entropy of the candidate's mean prediction
    mean = cand.mean(axis=1)
    np.testing.assert_allclose(exact_joint_entropy(np.zeros((0, 5, 3)), cand), -(mean * np.log(mean)).sum(1))


def test_sampled_joint_entropy_agrees_with_exact() -> None:
    rng = np.random.default_rng(5)
    batch, cand = rng.dirichlet(np.full(3, 0.5), size=(3, 8)), rng.dirichlet(np.full(3, 0.5), size=(6, 8))
    exact = exact_joint_entropy(batch, cand)
    sampled = sampled_joint_entropy(batch, cand, num_samples=40_000, generator=0)
    np.testing.assert_allclose(sampled, exact, atol=0.02)
    assert not np.allclose(sampled, exact, atol=1e-9)  # really an estimate, not the enumeration


def test_sampled_joint_entropy_survives_long_batches() -> None:
    # products of 300 probabilities underflow float64 without the per-row rescaling
    rng = np.random.default_rng(6)
    batch, cand = rng.dirichlet(np.full(4, 0.5), size=(300, 5)), rng.dirichlet(np.full(4, 0.5), size=(3, 5))
    h = sampled_joint_entropy(batch, cand, num_samples=500, generator=0)
    assert np.isfinite(h).all() and (h > 0).all()


def test_batchbald_candidates_are_the_top_bald_samples() -> None:
    probs = dirichlet_mc(np.random.default_rng(7), 8, 200, 5)
    top = set(np.argsort(-bald_scores(probs), kind="stable")[:15].tolist())
    picked = batchbald_select(probs, 5, 0, candidates=15)
    assert set(picked.tolist()) <= top and len(set(picked.tolist())) == 5
    wide = batchbald_select(probs, 10, 0, candidates=0)  # never fewer candidates than the budget
    assert len(set(wide.tolist())) == 10


def test_batchbald_is_deterministic_for_a_seed_and_uses_it() -> None:
    probs = dirichlet_mc(np.random.default_rng(8), 10, 80, 3)
    a = batchbald_select(probs, 12, 1, num_samples=100)
    b = batchbald_select(probs, 12, 1, num_samples=100)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 12


# --------------------------------------------------------------------------- real MC dropout


def real_pool(head_dropout: float) -> PoolModel:
    from benchmark.models.base import build_backbone

    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1, head_dropout=head_dropout)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=g)
    targets = torch.randint(0, 10, (40,), generator=g)
    # give batch norm non-trivial running statistics, as after training
    model.train()
    with torch.no_grad():
        model(images.float() / 255.0)
    model.eval()
    return PoolModel(model, images, targets, lambda x: x.float() / 255.0, torch.arange(10, 40), torch.arange(10),
                     seed=0)


def test_mc_dropout_passes_differ_and_batch_norm_stays_in_eval_mode() -> None:
    pool = real_pool(0.5)
    before = {k: v.clone() for k, v in pool.network.state_dict().items()}
    probs = pool.mc_dropout_probs(3)
    assert probs.shape == (3, 30, 10)
    assert not torch.allclose(probs[0], probs[1])  # dropout is active between passes
    torch.testing.assert_close(probs.sum(2), torch.ones(3, 30))
    after = pool.network.state_dict()
    for name, value in before.items():  # running mean/var, num_batches_tracked: untouched
        assert torch.equal(value, after[name]), name
    assert not pool.network.training and not any(m.training for m in pool.network.modules())
    # the deterministic outputs are not one of the MC passes
    assert not torch.allclose(pool.unlabeled_outputs()[0], probs[0])


def test_mc_dropout_without_dropout_layers_raises() -> None:
    pool = real_pool(0.0)
    with pytest.raises(RuntimeError, match="dropout"):
        pool.mc_dropout_probs(2)
    ctx = SelectionContext(np.arange(10, 40), np.arange(10), np.random.default_rng(0), pool=pool)
    with pytest.raises(RuntimeError, match="dropout"):
        BALD(passes=2).select(ctx, 5)


def test_bald_through_a_real_pool_model() -> None:
    pool = real_pool(0.5)
    ctx = SelectionContext(np.arange(10, 40), np.arange(10), np.random.default_rng(0), pool=pool)
    picked = BALD(passes=4).select(ctx, 6)
    assert_valid(picked, ctx.unlabeled, ctx.labeled, 6)
    scores = bald_scores(pool.mc_dropout_probs(4))
    assert (scores > 1e-6).all()  # the passes disagree on every sample: the scores carry information
    expected = np.arange(10, 40)[np.argsort(-scores, kind="stable")[:6]]
    assert picked.tolist() == expected.tolist()


def cell(strategy: str, **training: float) -> CellConfig:
    # model_validate, as the suite loader does: the resolving validator returns a copy
    return CellConfig.model_validate({"dataset": "digits", "backbone": "small_cnn", "strategy": strategy,
                                      "budget": {"initial": 10, "query": 10, "rounds": 1}, "training": training})


def test_head_dropout_is_resolved_for_mc_dropout_strategies() -> None:
    assert cell("bald").training.head_dropout == 0.5
    assert cell("batchbald").training.head_dropout == 0.5
    assert cell("entropy").training.head_dropout == 0.0
    assert cell("svm_min_margin").training.head_dropout == 0.0
    assert cell("bald", head_dropout=0.3).training.head_dropout == 0.3
    with pytest.raises(ValueError, match="needs MC dropout"):
        cell("bald", head_dropout=0.0, conv_dropout=0.0)  # small_cnn's conv site alone would do


# --------------------------------------------------------------------------- SVM min margin


def test_svm_picks_the_samples_nearest_the_boundary_binary() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal([-3, 0], 0.5, (20, 2)), rng.normal([3, 0], 0.5, (20, 2))])
    y = np.repeat([0, 1], 20)
    xs = np.array([-4.0, -2.5, -0.3, 3.5, 0.2, 1.5, 5.0, -1.6])
    unlabeled = np.stack([xs, rng.normal(0, 0.5, len(xs))], axis=1)
    assert sorted(svm_min_margin_select(x, y, unlabeled, 2).tolist()) == [2, 4]
    order = svm_min_margin_select(x, y, unlabeled, 8).tolist()  # the whole pool, in margin order
    assert order[:4] == np.argsort(np.abs(xs))[:4].tolist()
    assert svm_margins(x, y, unlabeled).shape == (8,)


def test_svm_picks_the_samples_between_three_classes() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 4.0], [-4.0, -3.0], [4.0, -3.0]])
    x = np.concatenate([c + rng.normal(0, 0.7, (20, 2)) for c in centres])
    y = np.repeat([0, 1, 2], 20)
    between = (centres + centres[[1, 2, 0]]) / 2
    unlabeled = torch.as_tensor(np.concatenate([centres, 1.2 * centres, between]))  # torch input works too
    assert sorted(svm_min_margin_select(x, torch.as_tensor(y), unlabeled, 3).tolist()) == [6, 7, 8]


def test_svm_falls_back_to_random_without_two_classes() -> None:
    u = np.random.default_rng(2).normal(size=(30, 4))
    empty = svm_min_margin_select(np.zeros((0, 4)), np.zeros(0, dtype=int), u, 7, random_state=3)
    again = svm_min_margin_select(np.zeros((0, 4)), np.zeros(0, dtype=int), u, 7, random_state=3)
    assert empty.tolist() == again.tolist()
    assert empty.tolist() == np.sort(np.random.default_rng(3).choice(30, 7, replace=False)).tolist()
    assert svm_min_margin_select(np.zeros((0, 4)), np.zeros(0), u, 7, random_state=4).tolist() != empty.tolist()
    single = svm_min_margin_select(u[:5], np.zeros(5, dtype=int), u, 7, random_state=3)
    assert single.tolist() == empty.tolist()
    assert len(set(empty.tolist())) == 7


# --------------------------------------------------------------------------- all five through a context


class FakePool:
    """What the strategies ask of a PoolModel, from fixed random numbers."""

    def __init__(self, n_unlabeled: int, labels: np.ndarray, classes: int = 3, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.n, self.labels, self.classes = n_unlabeled, labels, classes
        self.mc = {}
        self.rng = rng
        self.unlabeled_emb = torch.as_tensor(rng.normal(size=(n_unlabeled, 6)), dtype=torch.float32)
        self.labeled_emb = torch.as_tensor(rng.normal(size=(len(labels), 6)) + labels[:, None], dtype=torch.float32)
        self.calls: list[int] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def mc_dropout_probs(self, passes: int) -> torch.Tensor:
        self.calls.append(passes)
        if passes not in self.mc:
            self.mc[passes] = dirichlet_mc(self.rng, passes, self.n, self.classes).float()
        return self.mc[passes]

    def unlabeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mc_dropout_probs(1)[0], self.unlabeled_emb

    def labeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full((len(self.labels), self.classes), 1 / self.classes), self.labeled_emb

    def labeled_targets(self) -> torch.Tensor:
        return torch.as_tensor(self.labels)


UNLABELED = np.array([41, 7, 93, 12, 65, 3, 77, 20, 58, 30, 88, 15, 9, 70, 44, 61, 25, 99, 36, 50])
LABELED = np.array([0, 1, 2, 4, 5, 6, 8, 10])


def fake_ctx(labeled: np.ndarray = LABELED, seed: int = 0) -> SelectionContext:
    labels = np.arange(len(labeled)) % 3
    pool = FakePool(len(UNLABELED), labels, seed=seed)
    return SelectionContext(UNLABELED, labeled, np.random.default_rng(seed), round_index=1, pool=pool)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ALL_FIVE)
@pytest.mark.parametrize("budget", [0, 1, 7, 19, 20, 25])
def test_all_five_return_valid_selections(name: str, budget: int) -> None:
    ctx = fake_ctx()
    picked = STRATEGIES.get(name)().select(ctx, budget)
    assert_valid(picked, ctx.unlabeled, ctx.labeled, budget)
    if budget >= len(UNLABELED):
        assert sorted(picked.tolist()) == sorted(UNLABELED.tolist())


@pytest.mark.parametrize("name", ALL_FIVE)
def test_all_five_are_deterministic_and_cope_with_round_zero(name: str) -> None:
    first = STRATEGIES.get(name)().select(fake_ctx(seed=1), 6)
    assert first.tolist() == STRATEGIES.get(name)().select(fake_ctx(seed=1), 6).tolist()
    empty = fake_ctx(labeled=np.empty(0, np.int64))
    assert_valid(STRATEGIES.get(name)().select(empty, 6), empty.unlabeled, empty.labeled, 6)


@pytest.mark.parametrize(("name", "score_fn"), [("bald", bald_scores), ("mean_std", mean_std_scores),
                                                ("var_ratio", var_ratio_scores)])
def test_score_strategies_take_the_top_scores_of_the_configured_passes(name: str, score_fn) -> None:
    ctx = fake_ctx()
    strategy = STRATEGIES.get(name)(passes=7)
    picked = strategy.select(ctx, 5)
    scores = score_fn(ctx.pool.mc_dropout_probs(7))
    assert ctx.pool.calls[0] == 7
    assert picked.tolist() == UNLABELED[np.argsort(-scores, kind="stable")[:5]].tolist()


def test_registry_resolves_classes_with_matching_needs() -> None:
    expected = {"bald": BALD, "batchbald": BatchBALD, "mean_std": MeanSTD, "var_ratio": VariationRatio,
                "svm_min_margin": SVMMinMargin}
    for name, cls in expected.items():
        assert STRATEGIES.get(name) is cls
        assert cls.name == name
        assert tuple(STRATEGIES.entry(name).info.needs) == cls.needs
    assert all(STRATEGIES.get(n)().passes == 20 for n in BAYESIAN)
    with pytest.raises(ValueError):
        BALD(passes=0)


def test_svm_strategy_uses_the_labeled_embeddings() -> None:
    ctx = fake_ctx()
    pool = ctx.pool
    picked = SVMMinMargin().select(ctx, 4)
    expected = svm_min_margin_select(pool.labeled_emb, pool.labeled_targets(), pool.unlabeled_emb, 4)
    assert picked.tolist() == UNLABELED[expected].tolist()


# --------------------------------------------------------------------------- CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_scores_and_batchbald_run_on_cuda() -> None:
    probs = dirichlet_mc(np.random.default_rng(9), 10, 300, 4)
    gpu = probs.cuda().float()
    for fn in (bald_scores, mean_std_scores, var_ratio_scores, conditional_entropies):
        np.testing.assert_allclose(fn(gpu), fn(probs.float()), atol=1e-6)
    picked = batchbald_select(gpu, 8, np.random.default_rng(0), num_samples=200)
    assert len(set(picked.tolist())) == 8
    assert picked[0] == int(np.argmax(bald_scores(probs.float())))
    exact = exact_joint_entropy(probs[:, :2].permute(1, 0, 2).cuda(), probs[:, 2:6].permute(1, 0, 2).cuda())
    sampled = sampled_joint_entropy(probs[:, :2].permute(1, 0, 2).cuda(), probs[:, 2:6].permute(1, 0, 2).cuda(),
                                    num_samples=40_000, generator=0)
    np.testing.assert_allclose(sampled, exact, atol=0.03)
    sampled_cpu_gen = sampled_joint_entropy(probs[:, :2].permute(1, 0, 2).cuda(), probs[:, 2:6].permute(1, 0, 2).cuda(),
                                            num_samples=40_000, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(sampled_cpu_gen, exact, atol=0.03)
