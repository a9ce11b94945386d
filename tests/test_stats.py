"""Statistics over seeds (benchmark/report/stats.py) against scipy.stats, the leaderboard marks, and the
regression rule of alb check."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from benchmark.report.references import _verdict
from benchmark.report.stats import alpha_of_k, board_marks, holm, paired_test, t_interval, welch_vs_reference
from benchmark.report.tables import _vs_best, _vs_random, ranks_by_mean

A = [0.874, 0.861, 0.889, 0.880]
B = [0.865, 0.851, 0.884, 0.860]


def test_t_interval_matches_scipy() -> None:
    low, high = sps.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=sps.sem(A))
    got = t_interval(A)
    assert got.mean == pytest.approx(np.mean(A)) and got.n == 4
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))


def test_paired_test_matches_scipy_and_pairs_by_seed() -> None:
    reference = sps.ttest_rel(A, B)
    # seeds in a different order, plus a seed only one side ran: it is dropped, not paired
    a = {3: A[3], 0: A[0], 1: A[1], 2: A[2], 9: 0.5}
    b = dict(enumerate(B))
    got = paired_test(a, b)
    assert got.p == pytest.approx(reference.pvalue) and got.n == 4 and got.dropped == 1
    assert got.difference == pytest.approx(np.mean(np.subtract(A, B)))


def test_one_seed_and_zero_variance_rules() -> None:
    one = t_interval([0.8])
    assert one.low is None and one.high is None and one.n == 1
    assert paired_test({0: 0.8}, {0: 0.7}).p is None  # one common seed: not testable
    assert paired_test({0: 0.8, 1: 0.9}, {2: 0.7, 3: 0.6}).why == "0 common seeds"
    assert paired_test({0: 0.8, 1: 0.9}, {0: 0.8, 1: 0.9}).p == 1.0  # identical: no difference
    assert paired_test({0: 0.75, 1: 0.5}, {0: 0.5, 1: 0.25}).p == 0.0  # the same gap on every seed: exact
    assert welch_vs_reference([0.8], 0.9, 0.01, 3, 0.95).p is None
    exact = welch_vs_reference([0.8, 0.8, 0.8], 0.8, 0.0, 3, 0.95)
    assert exact.p == 1.0 and exact.low == exact.high == pytest.approx(0.0, abs=1e-12)


def test_welch_matches_scipy_from_stats() -> None:
    reference = sps.ttest_ind_from_stats(np.mean(A), np.std(A, ddof=1), len(A), 0.85, 0.02, 5, equal_var=False)
    got = welch_vs_reference(A, 0.85, 0.02, 5, 0.95)
    assert got.p == pytest.approx(reference.pvalue)
    assert got.low < got.difference < got.high
    # unknown runs: the reference std is the uncertainty of its mean (runs = 1), a wider interval
    wide = welch_vs_reference(A, 0.85, 0.02, None, 0.95)
    assert wide.high - wide.low > got.high - got.low and wide.p > got.p


def test_holm_and_k_to_alpha() -> None:
    assert holm([0.01, 0.04, None, 0.03]) == [pytest.approx(0.03), pytest.approx(0.06), None, pytest.approx(0.06)]
    assert holm([0.2, 0.9]) == [pytest.approx(0.4), pytest.approx(0.9)] and holm([0.5, 0.9]) == [1.0, 1.0]
    assert alpha_of_k(2.0) == pytest.approx(0.0455, abs=1e-4)


def test_board_marks_tie_and_clearly_worse() -> None:
    seeds = range(5)
    per_seed = {"lc": {s: 0.874 + 0.01 * s for s in seeds},
                "entropy": {s: 0.872 + 0.01 * s + (0.004 if s % 2 else -0.004) for s in seeds},
                "random": {s: 0.80 + 0.01 * s + 0.003 * (s % 2) for s in seeds}}
    marks = board_marks(per_seed)
    assert marks["lc"].is_best and marks["entropy"].tied_with_best and not marks["random"].tied_with_best
    assert marks["random"].vs_best.p < 0.05 and marks["entropy"].vs_best.p >= 0.05
    assert marks["lc"].vs_random.p < 0.05 and marks["lc"].vs_random.difference > 0
    assert "≈best" in _vs_best(marks["entropy"]) and "below best" in _vs_best(marks["random"])
    assert "better" in _vs_random(marks["lc"], True) and _vs_random(marks["random"], True) == "(random itself)"
    # ranked by the mean, best first; being "not separated from the best" never lifts a rank (issue 17)
    order = sorted(marks, key=lambda n: -marks[n].interval.mean)
    assert order == ["lc", "entropy", "random"]
    assert ranks_by_mean([marks[n].interval.mean for n in order]) == ["1", "2", "3"]


def test_board_marks_with_one_seed_claim_no_tie() -> None:
    marks = board_marks({"lc": {0: 0.9}, "random": {0: 0.8}})
    assert marks["random"].vs_best.p is None and not marks["random"].tied_with_best
    assert "not testable" in _vs_best(marks["random"])


def test_regression_needs_tolerance_and_significance() -> None:
    alpha = alpha_of_k(2.0)
    doctored = welch_vs_reference([0.40, 0.41, 0.39], 0.90, 0.01, 3, 1 - alpha)
    assert _verdict(doctored, 0.01, alpha)[0] == "regression"
    faithful = welch_vs_reference([0.89, 0.91, 0.90], 0.90, 0.01, 3, 1 - alpha)
    assert _verdict(faithful, 0.01, alpha)[0] == "pass"
    noisy = welch_vs_reference([0.80, 0.95, 0.86], 0.90, 0.05, 3, 1 - alpha)  # 2 points below, within noise
    status, reason = _verdict(noisy, 0.01, alpha)
    assert status == "pass" and "n.s." in reason
    one_seed = welch_vs_reference([0.85], 0.90, 0.01, 3, 1 - alpha)  # untestable: the tolerance decides
    assert _verdict(one_seed, 0.01, alpha)[0] == "regression"
    assert _verdict(welch_vs_reference([0.95, 0.96, 0.94], 0.90, 0.01, 3, 1 - alpha), 0.01, alpha)[0] == "improved"
