"""Column roles of the results frame, strategy labels, and grouping by training protocol.

A *protocol* is everything in a cell's configuration except the strategy, the
initial strategy and the seed: cells are ranked against each other only when
their protocols are identical.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchmark.store import IDENTITY_COLUMNS, PROVENANCE_COLUMNS, ROUND_COLUMNS

# what defines a query strategy (not the training protocol): cells that differ only here are ranked together
STRATEGY_COLUMNS = ("strategy", "initial_strategy", "pool_subset")
STRATEGY_PARAMS_PREFIX = "strategy_params."  # one column per parameter a suite set, part of the label
DERIVED_COLUMNS = ("strategy_label", "protocol")
NOT_PROTOCOL = {*ROUND_COLUMNS, *PROVENANCE_COLUMNS, *IDENTITY_COLUMNS, *STRATEGY_COLUMNS, *DERIVED_COLUMNS,
                "seed"}


def protocol_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c not in NOT_PROTOCOL and not c.startswith(STRATEGY_PARAMS_PREFIX)
                  and c != "strategy_params")


def strategy_params_of(row: dict[str, Any]) -> dict[str, Any]:
    """The strategy parameters a cell set, from its flattened columns (absent ones are defaults)."""
    return {k.removeprefix(STRATEGY_PARAMS_PREFIX): v for k, v in row.items()
            if k.startswith(STRATEGY_PARAMS_PREFIX) and not _absent(v)}


def default_initial(strategy: str) -> str:
    from benchmark.strategies import STRATEGIES

    if strategy in STRATEGIES:
        info = STRATEGIES.entry(strategy).info
        return info["initial"] if info["kind"] == "schedule" else "random"
    return "random"


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def strategy_label(strategy: str, initial_strategy: str | None = None, pool_subset: Any = None,
                   params: dict[str, Any] | None = None) -> str:
    """'entropy', plus '(initial: margin)' when the initial set was not the default,
    '(subset 10000)' when only a random subset of the pool was scored and 'epochs=100' for each
    strategy parameter the suite set."""
    details = [f"{k}={_plain(v)}" for k, v in sorted((params or {}).items())]
    if not _absent(initial_strategy) and initial_strategy != default_initial(strategy):
        details.append(f"initial: {initial_strategy}")
    if not _absent(pool_subset):
        details.append(f"subset {int(pool_subset)}")
    return f"{strategy} ({', '.join(details)})" if details else str(strategy)


def _plain(v: Any) -> Any:
    """100.0 -> 100 in labels; parameters keep their type in the results."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _value(v: Any) -> Any:
    return None if (isinstance(v, float) and pd.isna(v)) else v


@dataclass(frozen=True)
class Protocol:
    """One training protocol: its settings, a short id, and a human title."""

    settings: tuple[tuple[str, Any], ...]

    @property
    def id(self) -> str:
        payload = json.dumps(self.settings, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:8]

    def get(self, key: str) -> Any:
        return dict(self.settings).get(key)

    @property
    def slug(self) -> str:
        return f"{self.get('dataset')}-{self.get('backbone')}-{self.id}"

    def title(self, differing: list[str] | None = None) -> str:
        base = f"{self.get('dataset')} / {self.get('backbone')}"
        b = {k: self.get(f"budget.{k}") for k in ("initial", "query", "rounds")}
        if None not in b.values():
            base += f" / {b['initial']}+{b['rounds']}x{b['query']} labels"
        extra = [f"{k}={self.get(k)}" for k in (differing or []) if not k.startswith("budget.")]
        return base + (f" ({', '.join(extra)})" if extra else "")


def with_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Add 'strategy_label' and 'protocol' (a Protocol) columns."""
    frame = frame.copy()
    missing = [None] * len(frame)
    initial = frame.get("initial_strategy", missing)
    subset = frame.get("pool_subset", missing)
    param_columns = [c for c in frame.columns if c.startswith(STRATEGY_PARAMS_PREFIX)]
    records = frame[param_columns].to_dict("records") if param_columns else [{}] * len(frame)
    frame["strategy_label"] = [strategy_label(s, i, r, strategy_params_of(p))
                               for s, i, r, p in zip(frame["strategy"], initial, subset, records, strict=True)]
    columns = protocol_columns(frame)
    frame["protocol"] = [Protocol(tuple((c, _value(v)) for c, v in zip(columns, values, strict=True)))
                         for values in frame[columns].itertuples(index=False, name=None)]
    return frame


def differing_keys(protocols: list[Protocol]) -> list[str]:
    """Settings whose value is not the same in all the given protocols."""
    if len(protocols) < 2:
        return []
    keys = sorted({k for p in protocols for k, _ in p.settings})
    return [k for k in keys if len({json.dumps(p.get(k), default=str) for p in protocols}) > 1]
