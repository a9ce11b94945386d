"""Query strategies on hand-made class probabilities: scores, selections, registry, schedules."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from conftest import assert_valid_selection

from benchmark.errors import ConfigError
from benchmark.strategies import STRATEGIES, phase_strategies, plain_strategy_names
from benchmark.strategies.base import SelectionContext, Strategy, top_k
from benchmark.strategies.random import random_selection
from benchmark.strategies.uncertainty import (
    entropy_scores,
    high_confidence_scores,
    least_confidence_scores,
    margin_scores,
    select_by_scores,
)

# Six rows, three classes; chosen so that each strategy has a different favourite.
#   row  entropy  1-max  top-2 gap  max
#   0    0        0      1          1.0    one-hot
#   1    1.0889   0.60   0.10       0.40   flat tail: entropy's favourite
#   2    0.6931   0.50   0          0.50   two-way tie: margin's favourite
#   3    1.0779   0.62   0          0.38   lowest max: least confidence's favourite
#   4    0.3944   0.10   0.85       0.90
#   5    0.8018   0.30   0.50       0.70
PROBS = np.array([
    [1.00, 0.00, 0.00],
    [0.40, 0.30, 0.30],
    [0.50, 0.50, 0.00],
    [0.38, 0.38, 0.24],
    [0.90, 0.05, 0.05],
    [0.70, 0.20, 0.10],
])

# positions in PROBS, most preferred first (ties: earlier position first)
RANKING = {
    "entropy": [1, 3, 5, 2, 4, 0],
    "least_confidence": [3, 1, 2, 5, 4, 0],
    "margin": [2, 3, 1, 5, 4, 0],  # rows 2 and 3 tie at gap 0: row 2 wins
    "high_confidence": [0, 4, 5, 2, 1, 3],
}
SCORE_STRATEGIES = sorted(RANKING)

# non-contiguous, unsorted pool indices for the rows of PROBS
POOL = np.array([40, 7, 93, 12, 65, 3])
LABELED = np.array([0, 1, 2, 5, 8])


# --------------------------------------------------------------------------- helpers


def make_ctx(probs: np.ndarray | None, unlabeled: np.ndarray = POOL,
             labeled: np.ndarray = LABELED, seed: int = 0) -> SelectionContext:
    probs_fn: Callable[[], np.ndarray] | None = None if probs is None else (lambda: probs)
    return SelectionContext(unlabeled, labeled, np.random.default_rng(seed), probs_fn)


def select(name: str, budget: int, probs: np.ndarray | None = PROBS,
           unlabeled: np.ndarray = POOL, seed: int = 0) -> np.ndarray:
    strategy = STRATEGIES.get(name)()
    assert isinstance(strategy, Strategy)
    return strategy.select(make_ctx(probs, unlabeled, seed=seed), budget)




def dirichlet_probs(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    return rng.dirichlet(np.full(c, 0.3), size=n)


# --------------------------------------------------------------------------- score functions


def test_entropy_scores_known_values() -> None:
    expected = [0.0, 1.0888999, 0.6931472, 1.0778718, 0.3943977, 0.8018186]
    np.testing.assert_allclose(entropy_scores(PROBS), expected, atol=1e-6)


@pytest.mark.parametrize("c", [2, 3, 10, 100])
def test_entropy_of_one_hot_is_zero_and_of_uniform_is_log_c(c: int) -> None:
    one_hot = np.eye(c)
    uniform = np.full((2, c), 1.0 / c)
    with np.errstate(all="raise"):  # no divide-by-zero / invalid warnings either
        h_one_hot = entropy_scores(one_hot)
        h_uniform = entropy_scores(uniform)
    assert not np.isnan(h_one_hot).any()
    np.testing.assert_array_equal(h_one_hot, np.zeros(c))
    np.testing.assert_allclose(h_uniform, [math.log(c)] * 2, rtol=1e-12)


def test_entropy_handles_float32_and_zeros() -> None:
    probs = np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=np.float32)
    h = entropy_scores(probs)
    assert np.isfinite(h).all()
    np.testing.assert_allclose(h, [math.log(2), 0.0], atol=1e-6)


def test_least_confidence_and_high_confidence_scores() -> None:
    np.testing.assert_allclose(least_confidence_scores(PROBS), [0, 0.6, 0.5, 0.62, 0.1, 0.3])
    np.testing.assert_allclose(high_confidence_scores(PROBS), [1, 0.4, 0.5, 0.38, 0.9, 0.7])


def test_margin_scores_are_minus_the_top2_gap() -> None:
    np.testing.assert_allclose(margin_scores(PROBS), [-1, -0.1, 0, 0, -0.85, -0.5], atol=1e-12)
    # order of the classes does not matter
    shuffled = PROBS[:, [2, 0, 1]]
    np.testing.assert_allclose(margin_scores(shuffled), margin_scores(PROBS), atol=1e-12)


@pytest.mark.parametrize("score_fn", [entropy_scores, least_confidence_scores,
                                      high_confidence_scores, margin_scores])
def test_score_functions_are_pure(score_fn: Callable[[np.ndarray], np.ndarray]) -> None:
    probs = PROBS.copy()
    scores = score_fn(probs)
    assert scores.shape == (len(PROBS),)
    np.testing.assert_array_equal(probs, PROBS)


# --------------------------------------------------------------------------- top_k


def test_top_k_orders_by_score_and_breaks_ties_by_position() -> None:
    scores = np.array([0.1, 0.5, 0.3, 0.5, 0.5, 0.0])
    assert top_k(scores, 1).tolist() == [1]
    assert top_k(scores, 3).tolist() == [1, 3, 4]
    assert top_k(scores, 4).tolist() == [1, 3, 4, 2]
    assert top_k(scores, 10).tolist() == [1, 3, 4, 2, 0, 5]
    assert top_k(scores, 0).tolist() == []
    assert top_k(scores, -3).tolist() == []
    assert top_k(scores, 2).dtype == np.int64


def test_top_k_all_equal_keeps_pool_order() -> None:
    assert top_k(np.zeros(50), 7).tolist() == list(range(7))


def test_select_by_scores_returns_pool_indices() -> None:
    scores = np.array([0.0, 0.9, 0.1, 0.8, 0.2, 0.3])
    assert select_by_scores(POOL, scores, 2).tolist() == [7, 12]


# --------------------------------------------------------------------------- strategies


@pytest.mark.parametrize("name", SCORE_STRATEGIES)
@pytest.mark.parametrize("budget", [1, 2, 3, 5])
def test_known_picks_as_positions(name: str, budget: int) -> None:
    contiguous = np.arange(len(PROBS))
    picked = select(name, budget, unlabeled=contiguous)
    assert set(picked.tolist()) == set(RANKING[name][:budget])


@pytest.mark.parametrize("name", SCORE_STRATEGIES)
@pytest.mark.parametrize("budget", [1, 2, 3, 5])
def test_known_picks_are_mapped_to_pool_indices(name: str, budget: int) -> None:
    picked = select(name, budget)
    expected = {int(POOL[i]) for i in RANKING[name][:budget]}
    assert set(picked.tolist()) == expected
    assert_valid_selection(picked, POOL, LABELED, budget)


@pytest.mark.parametrize(
    ("name", "budget", "expected"),
    [
        ("entropy", 2, {7, 12}),  # rows 1, 3
        ("least_confidence", 2, {12, 7}),  # rows 3, 1
        ("least_confidence", 3, {12, 7, 93}),  # rows 3, 1, 2
        ("margin", 1, {93}),  # row 2 (ties with row 3, earlier wins)
        ("margin", 3, {93, 12, 7}),  # rows 2, 3, 1
        ("high_confidence", 1, {40}),  # row 0, the one-hot
        ("high_confidence", 3, {40, 65, 3}),  # rows 0, 4, 5
        ("entropy", 3, {7, 12, 3}),  # rows 1, 3, 5
    ],
)
def test_explicit_expected_sets(name: str, budget: int, expected: set[int]) -> None:
    assert set(select(name, budget).tolist()) == expected


def test_favourites_differ() -> None:
    firsts = {name: select(name, 1).tolist() for name in SCORE_STRATEGIES}
    assert firsts == {"entropy": [7], "least_confidence": [12], "margin": [93],
                      "high_confidence": [40]}


@pytest.mark.parametrize("name", [*SCORE_STRATEGIES, "random"])
def test_budget_larger_than_pool_returns_whole_pool(name: str) -> None:
    picked = select(name, 100)
    assert sorted(picked.tolist()) == sorted(POOL.tolist())


@pytest.mark.parametrize("name", [*SCORE_STRATEGIES, "random"])
def test_budget_equal_to_pool_returns_whole_pool(name: str) -> None:
    picked = select(name, len(POOL))
    assert sorted(picked.tolist()) == sorted(POOL.tolist())


@pytest.mark.parametrize("name", [*SCORE_STRATEGIES, "random"])
def test_zero_budget_selects_nothing(name: str) -> None:
    assert len(select(name, 0)) == 0


@pytest.mark.parametrize("name", SCORE_STRATEGIES)
def test_ties_go_to_the_earlier_position(name: str) -> None:
    unlabeled = np.array([31, 4, 77, 18, 50, 9, 62, 25])
    same = np.tile([0.5, 0.3, 0.2], (len(unlabeled), 1))
    assert select(name, 3, probs=same, unlabeled=unlabeled).tolist() == [31, 4, 77]
    # and it is deterministic
    assert select(name, 3, probs=same, unlabeled=unlabeled, seed=1).tolist() == [31, 4, 77]


@pytest.mark.parametrize("name", SCORE_STRATEGIES)
def test_partial_ties_at_the_cut(name: str) -> None:
    unlabeled = np.array([11, 22, 33, 44, 55])
    confident = [0.98, 0.01, 0.01]
    unsure = [0.34, 0.33, 0.33]
    rows = [confident, unsure, confident, unsure, confident]
    probs = np.array(rows)
    picked = select(name, 2, probs=probs, unlabeled=unlabeled).tolist()
    if name == "high_confidence":
        assert picked == [11, 33]
    else:
        assert picked == [22, 44]
    picked3 = select(name, 3, probs=probs, unlabeled=unlabeled).tolist()
    if name == "high_confidence":
        assert picked3 == [11, 33, 55]
    else:
        assert picked3 == [22, 44, 11]


@pytest.mark.parametrize("name", SCORE_STRATEGIES)
def test_probabilities_are_computed_once(name: str) -> None:
    calls: list[int] = []

    def probs_fn() -> np.ndarray:
        calls.append(1)
        return PROBS

    ctx = SelectionContext(POOL, LABELED, np.random.default_rng(0), probs_fn)
    strategy = STRATEGIES.get(name)()
    first = strategy.select(ctx, 2)
    second = strategy.select(ctx, 2)
    assert first.tolist() == second.tolist()
    assert len(calls) == 1


@pytest.mark.parametrize("name", SCORE_STRATEGIES)
def test_model_strategies_need_probabilities(name: str) -> None:
    assert "probs" in STRATEGIES.entry(name).info.needs
    with pytest.raises(RuntimeError, match="no model"):
        select(name, 2, probs=None)


@pytest.mark.parametrize("name", SCORE_STRATEGIES)
def test_misaligned_probabilities_are_rejected(name: str) -> None:
    with pytest.raises(RuntimeError, match="not aligned"):
        select(name, 2, probs=PROBS[:4])


# --------------------------------------------------------------------------- random


def test_random_is_deterministic_for_a_seed() -> None:
    unlabeled = np.arange(1000, 3000, 2)
    a = select("random", 25, probs=None, unlabeled=unlabeled, seed=123)
    b = select("random", 25, probs=None, unlabeled=unlabeled, seed=123)
    assert a.tolist() == b.tolist()
    assert_valid_selection(a, unlabeled, np.arange(1000), 25)


def test_random_differs_between_seeds() -> None:
    unlabeled = np.arange(1000, 3000, 2)
    picks = {tuple(select("random", 25, probs=None, unlabeled=unlabeled, seed=s).tolist())
             for s in range(5)}
    assert len(picks) == 5


def test_random_is_a_subset_of_the_pool() -> None:
    rng = np.random.default_rng(7)
    unlabeled = np.sort(rng.choice(10_000, size=300, replace=False))
    labeled = np.setdiff1d(np.arange(10_000), unlabeled)[:500]
    picked = select("random", 50, probs=None, unlabeled=unlabeled)
    assert_valid_selection(picked, unlabeled, labeled, 50)
    assert picked.dtype == np.int64
    assert picked.tolist() == sorted(picked.tolist())


def test_random_covers_the_pool() -> None:
    # not always the first few: over many seeds, every pool index gets picked
    unlabeled = np.array([5, 17, 29, 41, 53, 65, 77, 89])
    seen: set[int] = set()
    for seed in range(50):
        seen |= set(random_selection(unlabeled, 2, np.random.default_rng(seed)).tolist())
    assert seen == set(unlabeled.tolist())


def test_random_needs_no_model() -> None:
    assert STRATEGIES.entry("random").info.needs == ()
    assert len(select("random", 3, probs=None)) == 3


def test_random_consumes_only_the_given_generator() -> None:
    rng_a = np.random.default_rng(99)
    rng_b = np.random.default_rng(99)
    a = random_selection(POOL, 3, rng_a)
    b = random_selection(POOL, 3, rng_b)
    assert a.tolist() == b.tolist()
    assert rng_a.integers(1 << 30) == rng_b.integers(1 << 30)


# --------------------------------------------------------------------------- registry


def test_registered_names() -> None:
    assert {"entropy", "high_confidence", "least_confidence", "margin", "random"} <= set(plain_strategy_names())
    schedules = [e.name for e in STRATEGIES if e.info.kind == "schedule"]
    assert schedules == ["hclc", "lchc", "rhc", "rlc"]


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_registered_strategy_loads_with_its_name_and_needs(name: str) -> None:
    cls = STRATEGIES.get(name)
    assert issubclass(cls, Strategy) and cls.name == name
    info = STRATEGIES.entry(name).info
    if info.kind == "plain":
        assert cls.needs == info.needs  # read from the registry entry, declared nowhere else


@pytest.mark.parametrize("name", ["random", *SCORE_STRATEGIES])
def test_registry_loads_a_strategy_with_its_name(name: str) -> None:
    cls = STRATEGIES.get(name)
    assert issubclass(cls, Strategy)
    assert cls.name == name


def test_unknown_strategy_suggests_a_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown strategy 'entropi'.*Did you mean 'entropy'\?"):
        STRATEGIES.get("entropi")


@pytest.mark.parametrize(
    ("strategy", "initial", "expected"),
    [
        ("hclc", None, ("high_confidence", "least_confidence")),
        ("lchc", None, ("least_confidence", "high_confidence")),
        ("rhc", None, ("random", "high_confidence")),
        ("rlc", None, ("random", "least_confidence")),
        ("hclc", "high_confidence", ("high_confidence", "least_confidence")),
        ("entropy", None, ("random", "entropy")),
        ("margin", None, ("random", "margin")),
        ("random", None, ("random", "random")),
        ("least_confidence", "high_confidence", ("high_confidence", "least_confidence")),
        ("entropy", "margin", ("margin", "entropy")),
    ],
)
def test_phase_strategies(strategy: str, initial: str | None, expected: tuple[str, str]) -> None:
    assert phase_strategies(strategy, initial) == expected


@pytest.mark.parametrize("name", ["random", *SCORE_STRATEGIES])
def test_phase_strategies_plain_default(name: str) -> None:
    assert phase_strategies(name, None) == ("random", name)


def test_phase_strategies_unknown() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'hclc'"):
        phase_strategies("hclx", None)


def test_schedules_name_plain_strategies() -> None:
    plain = set(plain_strategy_names())
    schedules = [e for e in STRATEGIES if e.info.kind == "schedule"]
    assert {e.name for e in schedules} == {"hclc", "lchc", "rhc", "rlc"}
    for entry in schedules:
        assert entry.info.initial in plain and entry.info.rounds in plain


# --------------------------------------------------------------------------- every strategy


PROBABILITY_ONLY = [n for n in plain_strategy_names() if set(STRATEGIES.entry(n).info.needs) <= {"probs"}]


@pytest.mark.parametrize("name", PROBABILITY_ONLY)
@pytest.mark.parametrize("budget", [1, 17, 200, 500])
def test_every_probability_strategy_on_dirichlet_probs(name: str, budget: int) -> None:
    rng = np.random.default_rng(2024)
    probs = dirichlet_probs(rng, 200, 10)
    everything = rng.permutation(1000)
    unlabeled, labeled = everything[:200], everything[200:]
    ctx = SelectionContext(unlabeled, labeled, np.random.default_rng(1), lambda: probs)
    picked = STRATEGIES.get(name)().select(ctx, budget)
    assert_valid_selection(picked, unlabeled, labeled, budget)
    # the same inputs give the same selection
    ctx2 = SelectionContext(unlabeled, labeled, np.random.default_rng(1), lambda: probs)
    assert STRATEGIES.get(name)().select(ctx2, budget).tolist() == picked.tolist()


@pytest.mark.parametrize("name", SCORE_STRATEGIES)
def test_score_strategies_pick_the_best_scores_on_dirichlet_probs(name: str) -> None:
    rng = np.random.default_rng(5)
    probs = dirichlet_probs(rng, 200, 10)
    unlabeled = rng.permutation(1000)[:200]
    picked = select(name, 20, probs=probs, unlabeled=unlabeled)
    score_fn = {"entropy": entropy_scores, "least_confidence": least_confidence_scores,
                "margin": margin_scores, "high_confidence": high_confidence_scores}[name]
    scores = score_fn(probs)
    position = {int(p): i for i, p in enumerate(unlabeled)}
    chosen = np.array([position[int(p)] for p in picked])
    rest = np.setdiff1d(np.arange(200), chosen)
    assert scores[chosen].min() >= scores[rest].max()


@pytest.mark.parametrize("name", ["hclc", "lchc", "rhc", "rlc"])
def test_schedule_strategies_switch_phase_after_round_zero(name: str) -> None:
    from benchmark.strategies import SCHEDULES

    initial, rounds, _ = SCHEDULES[name]
    probs = np.random.default_rng(3).dirichlet(np.ones(10), size=300)
    pool = np.arange(300, dtype=np.int64)

    def pick(strategy: str, round_index: int) -> list[int]:
        ctx = SelectionContext(pool, np.empty(0, np.int64), np.random.default_rng(5), lambda: probs,
                               round_index=round_index)
        return sorted(STRATEGIES.get(strategy)().select(ctx, 20).tolist())

    assert pick(name, 0) == pick(initial, 0)
    assert pick(name, 3) == pick(rounds, 3)
    assert pick(name, 0) != pick(name, 3)
