"""Statistics over seeds, as pure functions: t-based confidence intervals, the paired t-test that
separates two strategies run on the same seeds, Holm's correction, and the Welch-type test that
`alb check` uses against a reference given as mean, std and number of runs.

Rules for the cases a textbook formula leaves undefined (they are part of the contract):

- n = 1: a single seed has no spread, so no interval and no test ("not testable").
- Pairing is by seed: only seeds both strategies ran enter the paired test; seeds only one of them ran
  are dropped (and counted in the result). Fewer than two common seeds: not testable.
- Zero variance (below ROUND_OFF) of the paired differences: identical per-seed values give p = 1 (no
  difference); the same non-zero difference on every seed gives p = 0 (an exact separation).
- Holm's step-down correction is applied across the comparisons of one board (one family per question:
  "vs best", "vs random"). Chosen over Bonferroni because it is uniformly more powerful with the same
  family-wise error guarantee, and over Benjamini-Hochberg because the comparisons share one strategy
  (dependent tests) and a leaderboard claim "X beats Y" should hold family-wise, not on average.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

ALPHA = 0.05  # two-sided significance level of the leaderboard's tests and the 95% intervals
ROUND_OFF = 1e-12  # spreads and differences this small are float round-off (means of equal values): zero


@dataclass(frozen=True)
class Interval:
    """Mean over ``n`` seeds with its t-based confidence interval (``low``/``high`` None when n < 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    confidence: float


@dataclass(frozen=True)
class Test:
    """A two-sided test of ``difference`` (a - b) against zero; ``p`` None means not testable (``why``)."""

    difference: float
    p: float | None
    n: int
    why: str = ""
    dropped: int = 0  # seeds without a partner (paired test only)

    @property
    def testable(self) -> bool:
        return self.p is not None


def t_interval(values: Sequence[float], confidence: float = 1 - ALPHA) -> Interval:
    """Student-t interval of the mean: mean ± t_{(1+c)/2, n-1} · s / sqrt(n)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("a confidence interval needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return Interval(mean, None, None, 1, confidence)
    half = float(sps.t.ppf((1 + confidence) / 2, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Interval(mean, mean - half, mean + half, int(x.size), confidence)


def mean_ci(values: Sequence[float], level: float = 1 - ALPHA) -> tuple[float, float, float]:
    """(mean, low, high) of the Student-t interval as plain floats; with one value the interval is
    undefined and both bounds are NaN (the module's n = 1 rule, in the float form)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie strictly between 0 and 1, got {level}")
    interval = t_interval(values, level)
    nan = float("nan")
    low = nan if interval.low is None else interval.low
    high = nan if interval.high is None else interval.high
    return interval.mean, low, high


def paired_test(a: Mapping[int, float], b: Mapping[int, float]) -> Test:
    """Paired t-test of a - b over the seeds both ran (keys are seeds)."""
    common = sorted(set(a) & set(b))
    dropped = len(set(a) ^ set(b))
    d = np.array([a[s] - b[s] for s in common], dtype=np.float64)
    mean = float(d.mean()) if d.size else float("nan")
    if d.size < 2:
        return Test(mean, None, int(d.size), f"{d.size} common seed{'s' * (d.size != 1)}", dropped)
    sd = float(d.std(ddof=1))
    if sd <= ROUND_OFF:
        return Test(mean, 1.0 if abs(mean) <= ROUND_OFF else 0.0, int(d.size), "", dropped)
    t = mean / (sd / math.sqrt(d.size))
    return Test(mean, float(2 * sps.t.sf(abs(t), d.size - 1)), int(d.size), "", dropped)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (None entries, the untestable ones, stay None and do not count)."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m, running = len(order), 0.0
    adjusted: list[float | None] = [None] * len(pvalues)
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))  # step-down keeps adjusted p monotone
        adjusted[i] = running
    return adjusted


def alpha_of_k(k: float) -> float:
    """Two-sided significance level of a k-sigma rule in the normal limit: k = 2 -> 0.0455."""
    return float(2 * sps.norm.sf(k))


@dataclass(frozen=True)
class WelchResult:
    """ours - reference with its t-based interval at ``confidence``; p None when not testable (``why``)."""

    difference: float
    low: float | None
    high: float | None
    p: float | None
    confidence: float
    why: str = ""


def welch_vs_reference(ours: Sequence[float], ref_mean: float, ref_std: float | None, ref_runs: int | None,
                       confidence: float) -> WelchResult:
    """Welch test of our per-seed values against a reference known only by mean, std and runs.

    A reference std with unknown runs is taken as the uncertainty of its mean (runs = 1, the conservative
    reading) and as exactly known (it adds no degrees of freedom); a missing reference std counts as 0.
    One seed of ours, or no spread on either side with a non-zero difference that no variance explains,
    follow the module rules (not testable / exact)."""
    x = np.asarray(ours, dtype=np.float64)
    diff = float(x.mean()) - ref_mean
    if x.size < 2:
        return WelchResult(diff, None, None, None, confidence, "one seed of ours: no spread to test")
    v_ours = float(x.var(ddof=1)) / x.size
    runs = ref_runs if ref_runs and ref_runs > 0 else 1
    v_ref = (ref_std or 0.0) ** 2 / runs
    se = math.sqrt(v_ours + v_ref)
    if se <= ROUND_OFF:
        p = 1.0 if abs(diff) <= ROUND_OFF else 0.0
        return WelchResult(diff, diff, diff, p, confidence, "no spread on either side")
    # Welch-Satterthwaite; a side with one run (or unknown runs) is treated as known: no df term
    denominator = v_ours ** 2 / (x.size - 1) + (v_ref ** 2 / (runs - 1) if runs > 1 else 0.0)
    df = (v_ours + v_ref) ** 2 / denominator if denominator > 0 else float("inf")
    t_crit = float(sps.t.ppf((1 + confidence) / 2, df))
    p = float(2 * sps.t.sf(abs(diff) / se, df))
    return WelchResult(diff, diff - t_crit * se, diff + t_crit * se, p, confidence)


@dataclass(frozen=True)
class BoardMarks:
    """One strategy's statistics on a leaderboard. ``vs_best`` / ``vs_random`` hold Holm-adjusted p-values;
    None for the best / random strategy itself, or ``vs_random`` None when the board has no random."""

    interval: Interval
    is_best: bool
    vs_best: Test | None
    vs_random: Test | None

    @property
    def tied_with_best(self) -> bool:
        """The best itself, or not separated from it by a test that could run."""
        return self.is_best or (self.vs_best is not None and self.vs_best.p is not None and self.vs_best.p >= ALPHA)


def _adjusted(tests: dict[str, Test]) -> dict[str, Test]:
    names = list(tests)
    ps = holm([tests[n].p for n in names])
    return {n: Test(tests[n].difference, p, tests[n].n, tests[n].why, tests[n].dropped)
            for n, p in zip(names, ps, strict=True)}


def board_marks(per_seed: Mapping[str, Mapping[int, float]], random: str | None = "random") -> dict[str, BoardMarks]:
    """Per strategy (values per seed): the t interval, the paired test against the strategy with the highest
    mean and against ``random`` (when on the board), each family Holm-corrected across the board."""
    if not per_seed:
        return {}
    intervals = {name: t_interval(list(values.values())) for name, values in per_seed.items()}
    best = max(intervals, key=lambda n: intervals[n].mean)
    vs_best = _adjusted({n: paired_test(v, per_seed[best]) for n, v in per_seed.items() if n != best})
    vs_random: dict[str, Test] = {}
    if random is not None and random in per_seed:
        vs_random = _adjusted({n: paired_test(v, per_seed[random]) for n, v in per_seed.items() if n != random})
    return {n: BoardMarks(intervals[n], n == best, vs_best.get(n), vs_random.get(n)) for n in per_seed}
