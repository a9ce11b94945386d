"""Compare our results with reference numbers: published ones, or a saved baseline of our own.

A reference names a dataset, backbone, strategy, the protocol settings it was
measured under, and a label count (or the final round). Our matching cells give
a mean and std over seeds; the verdict is:

- regression / improved: ours is below / above the reference by more than abs_tol AND a Welch-type t-test
  over seeds (ours: per-seed values; reference: mean, std, runs) finds the difference significant at the
  two-sided level alpha = 2(1 - Phi(k)) (k = 2: 0.0455, a ~95.4% interval; see stats.alpha_of_k); when
  the test is impossible (one seed of ours) the tolerance alone decides
- pass: otherwise (within the tolerance, or not separable from the reference by the test)
- missing: the suite has matching cells but no finished results for them, or (benchmark.check) some of the
  suite's cells of a comparison (e.g. one seed) are unfinished: the reason lists them and the verdict of the
  seeds present (``Comparison.partial``)
- not comparable: alb cannot measure it, or the protocol differs (the reason says how), or the reference
  is a baseline of other component versions (benchmark/versions.py; "component versions differ: ...")

A baseline records the component versions of its cells (settings ``version.*``); published numbers and
baselines saved before versions were recorded have none, and are compared whatever our versions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from benchmark.config import cut_text, shorten
from benchmark.report.frame import (
    STRATEGY_PARAMS_PREFIX,
    STRATEGY_VERSION_COLUMNS,
    Protocol,
    strategy_label,
    strategy_params_of,
)
from benchmark.report.stats import WelchResult, alpha_of_k, welch_vs_reference
from benchmark.versions import UNKNOWN, VERSION_PREFIX

Status = Literal["pass", "regression", "improved", "missing", "not comparable"]
MARKS: dict[str, str] = {"pass": "✓ pass", "regression": "✗ REGRESSION", "improved": "↑ improved",
                         "missing": "? missing", "not comparable": "≠ not comparable"}


@dataclass(frozen=True)
class Reference:
    """A number to compare with, in fractions (accuracy 0.9353, not 93.53)."""

    id: str
    dataset: str
    backbone: str
    strategy: str
    setting: dict[str, Any]
    n_labeled: int | None  # None: the final round
    metric: str
    mean: float | None  # None: not a point value (a published accuracy_range)
    std: float | None
    runs: int | None
    source: str


@dataclass
class Comparison:
    reference: Reference
    status: Status
    reason: str = ""
    ours_mean: float | None = None
    ours_std: float | None = None
    seeds: int = 0
    n_labeled: int | None = None
    protocol: Protocol | None = field(default=None, repr=False)
    test: WelchResult | None = None  # ours - reference with its t interval and p-value
    versions: str = ""  # the component versions of the compared cells: 'strategy v1, backbone v1, ...'
    partial: Status | None = None  # status "missing" for unfinished cells: the verdict of the cells present

    @property
    def difference(self) -> float | None:
        if self.ours_mean is None or self.reference.mean is None:
            return None
        return self.ours_mean - self.reference.mean


# the result column a published metric is compared with: VOC's mAP is AP at IoU 0.5 (benchmark.detection.metrics)
METRIC_COLUMN = {"accuracy": "accuracy", "map": "map_50"}


def from_published(numbers: list[Any]) -> list[Reference]:
    refs = [Reference(n.id, n.dataset, n.backbone, n.strategy, dict(n.setting), n.n_labeled, n.metric,
                      n.as_fraction(), n.std_fraction(), n.runs, f"{n.table_id} ({n.printed})")
            for n in numbers]
    for ref in refs:
        checked_reference(ref, "published number")
    return refs


def _is_fraction(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= float(value) <= 1.0


def checked_reference(ref: Reference, where: str) -> Reference:
    """The reference, or ConfigError when a number of it is out of range: an accuracy mean outside [0, 1]
    (NaN and infinities included), a std outside [0, 1], runs < 1 or a negative label count."""
    from benchmark.errors import ConfigError

    problems = []
    if ref.metric == "accuracy" and ref.mean is not None and not _is_fraction(ref.mean):
        problems.append(f"mean {ref.mean!r} is not an accuracy in [0, 1]")
    if ref.metric == "accuracy" and ref.std is not None and not _is_fraction(ref.std):
        problems.append(f"std {ref.std!r} is not in [0, 1]")
    if ref.runs is not None and (not isinstance(ref.runs, int) or isinstance(ref.runs, bool) or ref.runs < 1):
        problems.append(f"runs {ref.runs!r} is not a count >= 1")
    if ref.n_labeled is not None and (not isinstance(ref.n_labeled, int) or ref.n_labeled < 0):
        problems.append(f"n_labeled {ref.n_labeled!r} is not a label count >= 0")
    if problems:
        raise ConfigError(f"{where} '{ref.id}': {'; '.join(problems)}")
    return ref


def _same(a: Any, b: Any) -> bool:
    """Whether our value ``a`` is the reference's ``b``; ``b`` true for a non-boolean setting means "set, value
    not printed" (seed 000's class imbalance of unknown ratio) and matches any value that is set."""
    if b is True and not isinstance(a, bool):
        return a is not None and not (isinstance(a, float) and np.isnan(a))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0))
    return str(a) == str(b)


def compare(reference: Reference, frame: pd.DataFrame, abs_tol: float, k: float) -> list[Comparison]:
    """Comparisons of one reference with the labelled results frame (see frame.with_labels);
    one per matching protocol, or a single missing / not comparable verdict."""
    from benchmark.data import DATASETS
    from benchmark.models import BACKBONES
    from benchmark.strategies import STRATEGIES

    def verdict(status: Status, reason: str) -> list[Comparison]:
        return [Comparison(reference, status, reason)]

    if reference.metric == "accuracy_range" or reference.mean is None:
        return verdict("not comparable", "a start-mid-end accuracy range that other papers reported, under "
                                         "protocols the source does not give: not a point accuracy")
    if reference.metric not in METRIC_COLUMN:
        return verdict("not comparable", f"alb does not measure '{reference.metric}'")
    column = METRIC_COLUMN[reference.metric]
    for kind, registry, name in (("dataset", DATASETS, reference.dataset),
                                 ("backbone", BACKBONES, reference.backbone),
                                 ("strategy", STRATEGIES, reference.strategy)):
        if name not in registry:
            return verdict("not comparable", f"{kind} '{name}' is not implemented in alb")
    if frame.empty:
        return verdict("missing", "no results")
    rows = frame[(frame["dataset"] == reference.dataset) & (frame["backbone"] == reference.backbone)
                 & (frame["strategy"] == reference.strategy)]
    if rows.empty:
        return verdict("missing", "no finished cell with this dataset, backbone and strategy")
    versions = {k: v for k, v in reference.setting.items() if k.startswith(VERSION_PREFIX)}
    for key, wanted in versions.items():
        ours = rows[key] if key in rows.columns else pd.Series([UNKNOWN] * len(rows), index=rows.index)
        same = ours.map(lambda v, w=wanted: not _absent(v) and _same(v, w))
        if not same.any():
            found = ", ".join(sorted({_shown_version(v) for v in ours}))
            return verdict("not comparable", f"component versions differ: {key.removeprefix(VERSION_PREFIX)} is "
                                             f"{_shown_version(wanted)} in the baseline, {found} in our results")
        rows = rows[same]
    for key, wanted in reference.setting.items():
        if key in versions:
            continue
        if key not in rows.columns:
            return verdict("not comparable", f"setting '{key}' is not supported by alb yet")
        same = rows[key].map(lambda v, w=wanted: _same(v, w))
        if not same.any():
            ours = sorted({str(v) for v in rows[key]})
            return verdict("not comparable", f"protocol differs: {key} is {wanted} in the reference, "
                                             f"{', '.join(ours)} in our results")
        rows = rows[same]
    # strategy parameters the reference does not name take their defaults (a random initial set, the
    # whole pool scored); cells that changed them measure another method
    wanted_label = strategy_label(reference.strategy, reference.setting.get("initial_strategy"),
                                  reference.setting.get("pool_subset"), strategy_params_of(reference.setting))
    rows = rows[rows["strategy_label"] == wanted_label]
    if rows.empty:
        return verdict("missing", f"no finished cell of '{wanted_label}' under this protocol")
    comparisons = []
    for protocol, cells in rows.groupby("protocol", sort=False):
        if reference.n_labeled is None:
            last = cells.groupby("cell_id")["round"].transform("max")
            at = cells[cells["round"] == last]
        else:
            at = cells[cells["n_labeled"] == reference.n_labeled]
        if at.empty:
            counts = ", ".join(str(n) for n in sorted(cells["n_labeled"].unique())[:8])
            comparisons.append(Comparison(reference, "not comparable", f"no round at {reference.n_labeled} "
                                          f"labels (ours: {counts})", protocol=protocol))
            continue
        if column not in at.columns or at[column].isna().all():
            comparisons.append(Comparison(reference, "not comparable", f"our results have no {column} (the "
                                          f"reference's {reference.metric})", protocol=protocol))
            continue
        per_seed = at.groupby("seed")[column].mean()
        mean = float(per_seed.mean())
        std = float(per_seed.std(ddof=1)) if len(per_seed) > 1 else None
        test = welch_vs_reference(per_seed.to_list(), reference.mean, reference.std, reference.runs,
                                  1 - alpha_of_k(k))
        status, reason = _verdict(test, abs_tol, alpha_of_k(k))
        comparisons.append(Comparison(reference, status, reason, mean, std, len(per_seed),
                                      int(at["n_labeled"].iloc[0]), protocol, test, _versions_of(at)))
    return comparisons


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _shown_version(value: Any) -> str:
    if _absent(value) or value == UNKNOWN:
        return "unknown"
    return f"v{int(value)}" if isinstance(value, int | float | np.integer) else str(value)


def _versions_of(rows: pd.DataFrame) -> str:
    """'strategy v1, initial_strategy v1, backbone v1, ...' of the compared cells (values joined by '/')."""
    columns = [c for c in rows.columns if c.startswith(VERSION_PREFIX)]
    shown = []
    for column in columns:
        values = sorted({_shown_version(v) for v in rows[column] if not _absent(v)})
        if values:
            shown.append(f"{column.removeprefix(VERSION_PREFIX)} {'/'.join(values)}")
    return ", ".join(shown)


def _verdict(test: WelchResult, abs_tol: float, alpha: float) -> tuple[Status, str]:
    """A difference beyond the tolerance is a regression / improvement only when the test separates it
    from the reference; without a test (one seed) the tolerance alone decides."""
    diff = test.difference
    direction: Status = "regression" if diff < 0 else "improved"
    if abs(diff) <= abs_tol:
        return "pass", f"|diff| {abs(diff):.4f} <= tolerance {abs_tol:.4f}"
    if test.p is None:
        return direction, f"|diff| {abs(diff):.4f} > tolerance {abs_tol:.4f}; not testable ({test.why})"
    if test.p < alpha:
        return direction, f"|diff| {abs(diff):.4f} > tolerance and p={test.p:.3g} < {alpha:.3g}"
    return "pass", f"|diff| {abs(diff):.4f} > tolerance but n.s. (p={test.p:.3g} >= {alpha:.3g})"


# ---- baselines: our own results saved as references -------------------------------------------

def baseline_references(frame: pd.DataFrame, suite: str) -> list[Reference]:
    """One reference per (protocol, strategy, label count) of a labelled results frame."""
    refs = []
    for (protocol, label, n), rows in frame.groupby(["protocol", "strategy_label", "n_labeled"], sort=False):
        per_seed = rows.groupby("seed")["accuracy"].mean()
        first = rows.iloc[0]
        setting = {k: v for k, v in protocol.settings if k not in ("dataset", "backbone") and v is not None}
        setting["initial_strategy"] = str(first["initial_strategy"])
        # the strategy's versions too (the protocol has the others): a baseline compares only like with like
        setting.update({c: int(first[c]) if isinstance(first[c], int | float | np.integer) else str(first[c])
                        for c in STRATEGY_VERSION_COLUMNS if c in first and not _absent(first[c])})
        setting.update({f"{STRATEGY_PARAMS_PREFIX}{k}": v for k, v in strategy_params_of(first.to_dict()).items()})
        refs.append(Reference(
            id=f"{suite}/{protocol.id}/{label}/{int(n)}", dataset=str(first["dataset"]),
            backbone=str(first["backbone"]), strategy=str(first["strategy"]), setting=setting,
            n_labeled=int(n), metric="accuracy",
            mean=float(per_seed.mean()), std=float(per_seed.std(ddof=1)) if len(per_seed) > 1 else None,
            runs=len(per_seed), source=f"baseline {suite}"))
    return refs


def save_baseline(refs: list[Reference], path: Any, suite: str) -> None:
    from pathlib import Path

    from benchmark import __version__
    from benchmark.store import atomic_write, now_iso

    payload = {"suite": suite, "created": now_iso(), "alb_version": __version__,
               "entries": [ref.__dict__ for ref in refs]}
    atomic_write(Path(path), lambda tmp: tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n"))


Scalar = StrictStr | StrictInt | StrictFloat | StrictBool | None


class BaselineEntry(BaseModel):
    """One entry of a baseline file: a Reference as ``save_baseline`` writes it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    dataset: str
    backbone: str
    strategy: str
    setting: dict[str, Scalar | list[Scalar]]
    n_labeled: int | None
    metric: str
    mean: float | None
    std: float | None
    runs: int | None
    source: str

    @field_validator("setting")
    @classmethod
    def _known_types(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(v.get("initial_strategy"), str | None):
            raise ValueError(f"setting initial_strategy must be a strategy name, got {shorten(v['initial_strategy'])}")
        subset = v.get("pool_subset")
        if subset is not None and (isinstance(subset, bool | str | list) or not math.isfinite(subset)):
            raise ValueError(f"setting pool_subset must be a count of images, got {shorten(subset)}")
        return v


class BaselineFile(BaseModel):
    """A baseline file: the entries, and where they come from (not checked)."""

    model_config = ConfigDict(strict=True)

    entries: list[BaselineEntry]


MAX_BASELINE_PROBLEMS = 8


def _where(err: dict[str, Any], payload: Any) -> str:
    """'entries[3] (id 'x').setting': the key of a validation error, with its entry's id when it has one."""
    loc = list(err["loc"])
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"
    if len(loc) >= 2 and loc[0] == "entries" and isinstance(loc[1], int):
        entry = payload["entries"][loc[1]]
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            head = f"entries[{loc[1]}]"
            text = f"{head} (id {shorten(entry['id'])}){text.removeprefix(head)}"
    return text


def _schema_problems(exc: ValidationError, payload: Any) -> str:
    lines = []
    for err in exc.errors()[:MAX_BASELINE_PROBLEMS]:
        message = err["msg"].removeprefix("Value error, ")
        shown = "" if err["type"] in ("value_error", "missing") else f" (got {shorten(err.get('input'))})"
        lines.append(f"{_where(err, payload)}: {message}{shown}")
    more = exc.error_count() - len(lines)
    return "\n  ".join(lines) + (f"\n  ... and {more} more" if more > 0 else "")


def load_baseline(path: Any) -> list[Reference]:
    """The references of a baseline file; ConfigError naming the file, the entry and the key of a problem."""
    from pathlib import Path

    from benchmark.errors import ConfigError

    redo = f"write it again with 'alb check SUITE --save-baseline {path}'"
    try:
        payload = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"baseline file not found: {path}; create it with "
                          f"'alb check SUITE --save-baseline {path}'") from None
    except RecursionError:
        raise ConfigError(f"{path} is not an alb baseline file: its JSON is nested too deeply; {redo}") from None
    except ValueError as exc:  # not JSON, not UTF-8
        raise ConfigError(f"{path} is not an alb baseline file ({cut_text(str(exc))}); {redo}") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"{path} is not an alb baseline file: a JSON object with 'entries' was expected, got "
                          f"{type(payload).__name__}; {redo}")
    try:
        entries = BaselineFile.model_validate(payload).entries
    except ValidationError as exc:
        raise ConfigError(f"{path} is not a valid alb baseline file ({redo}):\n  "
                          f"{_schema_problems(exc, payload)}") from None
    refs = [Reference(**entry.model_dump()) for entry in entries]
    return [checked_reference(ref, f"baseline {path}: entry") for ref in refs]
