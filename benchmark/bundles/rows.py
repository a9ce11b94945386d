"""The rows of one cell: are they a possible run of its config, and do two runs of it agree? Pure functions.

Row r of a cell holds the test metric (accuracy; mAP@0.5 for detection) after training on L_r and the samples
that joined in round r (``selected``: the initial set in row 0, one query batch after), so ``n_labeled`` is
initial + r x query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmark.bundles.manifest import CellRun

# accuracy difference per round that runs on different devices, precisions or thread counts may show
# (their selections diverge after the first different logit); identical setups must agree exactly
DEFAULT_TOLERANCE = 0.05
SCORE_COLUMNS = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class Rows:
    """One cell's rows as plain lists, in file order."""

    rounds: list[int]
    n_labeled: list[int]
    accuracy: list[float]  # the cell's test metric per round: ``metric`` names it
    macro_f1: list[float | None]
    selected: list[list[int]]
    metric: str = "accuracy"

    @staticmethod
    def of(records: Sequence[dict[str, Any]]) -> Rows:
        from benchmark.store import METRIC_COLUMNS

        # a classification cell's accuracy, a detection cell's map_50 (benchmark.store.headline_metric)
        metric = next((c for c in METRIC_COLUMNS if records and records[0].get(c) is not None), METRIC_COLUMNS[0])
        return Rows([int(r["round"]) for r in records], [int(r["n_labeled"]) for r in records],
                    [_float(r.get(metric)) for r in records], [_optional_float(r.get("macro_f1")) for r in records],
                    [_indices(r["selected"]) for r in records], metric)


def _indices(value: Any) -> list[int]:
    """A ``selected`` value as ints: a list (pyarrow), a numpy array (pandas) or None."""
    return [] if value is None else [int(i) for i in value]


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _score_problem(name: str, value: float | None) -> str | None:
    if value is None:
        return None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return f"{name} {value!r} is not in [0, 1]"
    return None


def row_problems(rows: Rows, budget: dict[str, Any], pool_size: int | None) -> list[str]:
    """Why ``rows`` cannot be a run of a cell with this resolved ``budget`` on a pool of ``pool_size`` images
    (None: unknown, only the lower bound is checked); each problem names its round."""
    rounds, initial, query = int(budget["rounds"]), int(budget["initial"]), int(budget["query"])
    if rows.rounds != list(range(rounds + 1)):
        return [f"rounds are {rows.rounds[:12]}, not 0..{rounds} in order"]
    problems: list[str] = []
    seen: set[int] = set()
    for r in rows.rounds:
        expected = initial + r * query
        if rows.n_labeled[r] != expected:
            problems.append(f"round {r}: n_labeled {rows.n_labeled[r]}, the budget gives {expected}")
        batch = rows.selected[r]
        size = initial if r == 0 else query
        if len(batch) != size:
            problems.append(f"round {r}: {len(batch)} selected samples, the budget gives {size}")
        outside = [i for i in batch if i < 0 or (pool_size is not None and i >= pool_size)]
        if outside:
            problems.append(f"round {r}: selected indices outside the pool of {pool_size} images: {outside[:5]}")
        repeated = sorted(set(batch) & seen | {i for i in batch if batch.count(i) > 1})
        if repeated:
            problems.append(f"round {r}: samples selected twice: {repeated[:5]}")
        seen.update(batch)
        for name, value in ((rows.metric, rows.accuracy[r]), ("macro_f1", rows.macro_f1[r])):
            problem = _score_problem(name, value)
            if problem:
                problems.append(f"round {r}: {problem}")
    return problems


def same_setup(a: CellRun, b: CellRun) -> bool:
    """Whether two runs used the same kind of device, precision and torch threads: then they are identical."""
    def kind(device: str | None) -> str | None:
        return None if device is None else device.split(":")[0]

    return (a.device is not None and kind(a.device) == kind(b.device) and a.precision == b.precision
            and a.torch_threads == b.torch_threads)


def runs_difference(a: Rows, b: Rows, exact: bool, tolerance: float = DEFAULT_TOLERANCE) -> str | None:
    """The first round where two runs of one cell disagree, or None. Exact: every accuracy, label count and
    selected sample equal; else accuracies within ``tolerance`` (selections may diverge)."""
    if a.rounds != b.rounds:
        return f"rounds {a.rounds[:12]} vs {b.rounds[:12]}"
    for r, (x, y) in enumerate(zip(a.accuracy, b.accuracy, strict=True)):
        if exact and (a.n_labeled[r] != b.n_labeled[r] or a.selected[r] != b.selected[r]):
            return f"round {r}: different samples selected"
        if (exact and x != y) or not abs(x - y) <= tolerance:
            bound = "identical" if exact else f"within {tolerance}"
            return f"round {r}: {a.metric} {x:.6f} vs {y:.6f} (expected {bound})"
    return None
