"""Confidence intervals and paired tests over seeds (benchmark/report/stats.py) against scipy.stats, and
the marks they put on the leaderboard built from a synthetic results frame (issue 9)."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from benchmark.report.frame import with_labels
from benchmark.report.render import to_html, to_latex, to_markdown
from benchmark.report.stats import mean_ci, paired_test
from benchmark.report.tables import leaderboard_tables

# three seeds, as on the quickstart boards the issue is about
X = [0.712, 0.695, 0.731]
Y = [0.701, 0.690, 0.712]


@pytest.mark.parametrize("level", [0.95, 0.9, 0.99])
def test_mean_ci_equals_scipy_t_interval(level: float) -> None:
    low, high = sps.t.interval(level, len(X) - 1, loc=np.mean(X), scale=sps.sem(X))
    mean, got_low, got_high = mean_ci(X, level)
    assert mean == pytest.approx(np.mean(X))
    assert (got_low, got_high) == (pytest.approx(low), pytest.approx(high))


def test_mean_ci_of_one_value_has_nan_bounds_and_bad_input_is_refused() -> None:
    mean, low, high = mean_ci([0.8])
    assert mean == 0.8 and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        mean_ci(X, 95)


def test_paired_test_equals_scipy_ttest_rel() -> None:
    reference = sps.ttest_rel(X, Y)
    got = paired_test(dict(enumerate(X)), dict(enumerate(Y)))
    assert got.p == pytest.approx(reference.pvalue) and got.n == 3
    assert got.difference == pytest.approx(np.mean(np.subtract(X, Y)))
    swapped = paired_test(dict(enumerate(Y)), dict(enumerate(X)))  # two-sided: same p, opposite sign
    assert swapped.p == pytest.approx(got.p) and swapped.difference == pytest.approx(-got.difference)


def test_paired_test_not_testable_and_zero_variance() -> None:
    assert paired_test({0: 0.7, 1: 0.8}, {1: 0.6, 2: 0.5}).p is None  # one shared seed
    assert paired_test({0: 0.7, 1: 0.8}, {0: 0.7, 1: 0.8}).p == 1.0  # no difference at all
    assert paired_test({0: 0.7, 1: 0.8}, {0: 0.6, 1: 0.7}).p == 0.0  # the same gap on every seed


LABELS = (10, 20, 30)
# per strategy, per seed: the offset added to a shared seed effect on every round of the curve
OFFSETS = {"least_confidence": (0.000, 0.000, 0.000),
           "entropy": (0.006, -0.009, 0.002),  # within seed noise of least_confidence: a tie
           "coreset": (-0.100, -0.102, -0.098),  # ten points below on every seed: clearly worse
           "random": (-0.050, -0.049, -0.052)}


def _synthetic_frame() -> pd.DataFrame:
    rows = []
    for strategy, offsets in OFFSETS.items():
        for seed, offset in enumerate(offsets):
            cell = f"{strategy}-{seed}"
            for r, n in enumerate(LABELS):
                accuracy = 0.6 + 0.05 * r + 0.01 * seed + offset
                rows.append({"suite": "synthetic", "cell_id": cell, "strategy": strategy, "seed": seed,
                             "dataset": "digits", "backbone": "small_cnn", "budget.initial": 10,
                             "budget.query": 10, "budget.rounds": 2, "round": r, "n_labeled": n,
                             "accuracy": accuracy, "train_seconds": 1.0, "query_seconds": 0.1})
    return with_labels(pd.DataFrame(rows))


def _board_rows(markdown: str) -> dict[str, dict[str, str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = [dict(zip(headers, (re.sub(r"\\(.)", r"\1", c.strip()) for c in line.strip("|").split("|")), strict=True))
            for line in lines[1:]]  # cells without Markdown's backslash escapes
    return {row["strategy"]: row for row in rows}


def test_leaderboard_marks_a_tie_and_a_clearly_worse_strategy() -> None:
    boards = leaderboard_tables(_synthetic_frame())
    assert len(boards) == 1
    markdown = to_markdown(boards, "board")
    rows = _board_rows(markdown)
    assert rows["least_confidence"]["vs best"] == "best" and rows["least_confidence"]["rank"] == "1"
    # not separated from the best (a marker), but ranked by its lower mean: rank 2, not a shared rank 1
    assert rows["entropy"]["vs best"].startswith("≈best") and rows["entropy"]["rank"] == "2"
    assert rows["coreset"]["vs best"].startswith("below best") and rows["coreset"]["rank"] == "4"
    assert "worse" in rows["coreset"]["vs random"] and "better" in rows["least_confidence"]["vs random"]
    assert rows["random"]["vs random"] == "(random itself)"
    # the interval is the t interval of the per-seed AUBC (here: mean accuracy of the curve), in points
    aubcs = [0.65 + 0.01 * s + OFFSETS["coreset"][s] for s in range(3)]
    _, low, high = mean_ci(aubcs)
    assert rows["coreset"]["AUBC 95% CI"] == f"[{100 * low:.2f}, {100 * high:.2f}]"
    assert "paired t-test" in markdown and "Holm" in markdown  # the legend is on the board
    latex = to_latex(boards)
    assert r"$\approx$best" in latex and "≈" not in latex
    page = to_html("tables.html.j2", title="Leaderboard", tables=boards, first_text_column=1, intro="", nav=[],
                   version="test", generated="now", n_cells=12)
    assert "<th>vs best</th>" in page and "≈best (" in page and "paired t-test" in page


def test_leaderboard_without_random_or_with_one_seed_claims_nothing() -> None:
    frame = _synthetic_frame()
    frame = frame[(frame["strategy"] != "random") & (frame["seed"] == 0)]
    rows = _board_rows(to_markdown(leaderboard_tables(frame), "board"))
    assert {row["vs random"] for row in rows.values()} == {"–"}
    assert rows["least_confidence"]["AUBC 95% CI"] == "– (1 seed)"
    assert rows["entropy"]["vs best"] == "best"  # seed 0 alone: entropy has the highest mean
    lc = rows["least_confidence"]
    assert "not testable: 1 common seed" in lc["vs best"] and lc["rank"] == "2"  # no tie claimed


def _frame_of(per_seed_accuracy: dict[str, tuple[float, ...]]) -> pd.DataFrame:
    """Flat curves (the same accuracy every round), so a strategy's AUBC on a seed is that accuracy."""
    rows = []
    for strategy, values in per_seed_accuracy.items():
        for seed, accuracy in enumerate(values):
            for r, n in enumerate(LABELS):
                rows.append({"suite": "s", "cell_id": f"{strategy}-{seed}", "strategy": strategy, "seed": seed,
                             "dataset": "digits", "backbone": "small_cnn", "budget.initial": 10,
                             "budget.query": 10, "budget.rounds": 2, "round": r, "n_labeled": n,
                             "accuracy": accuracy, "train_seconds": 1.0, "query_seconds": 0.1})
    return with_labels(pd.DataFrame(rows))


def test_rank_is_by_mean_never_by_separation() -> None:
    """Issue 17's quickstart case: a noisy strategy far below the best is not separated from it by 3 seeds,
    while a steady one just below the best is; the steady one must still rank above the noisy one."""
    frame = _frame_of({"margin": (0.70, 0.71, 0.72),
                       "hclc": (0.68, 0.69, 0.70),  # 2 points below on every seed: separated
                       "high_confidence": (0.20, 0.75, 0.45),  # 25 points below on average: not separable
                       "entropy": (0.68, 0.69, 0.70)})  # equal mean to hclc: shares its rank
    rows = _board_rows(to_markdown(leaderboard_tables(frame), "board"))
    assert rows["margin"]["rank"] == "1"
    assert rows["entropy"]["rank"] == rows["hclc"]["rank"] == "2"
    assert rows["high_confidence"]["rank"] == "4"
    assert rows["high_confidence"]["vs best"].startswith("≈best")  # separation shown as a marker only
    assert rows["hclc"]["vs best"].startswith("below best")
    order = list(rows)
    assert order.index("hclc") < order.index("high_confidence")


def test_ranks_by_mean_share_only_equal_means() -> None:
    from benchmark.report.tables import ranks_by_mean

    assert ranks_by_mean([0.9, 0.9, 0.8, 0.7, 0.7, 0.1]) == ["1", "1", "3", "4", "4", "6"]
    assert ranks_by_mean([0.9, 0.9 - 1e-6]) == ["1", "2"]
    assert ranks_by_mean([]) == []
