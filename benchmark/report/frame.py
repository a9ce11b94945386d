"""Column roles of the results frame, strategy labels, and grouping by training protocol.

A *protocol* is everything in a cell's configuration except the strategy, the
initial strategy, the pool subset, the strategy parameters and the seed, plus the
identity of the components that train and feed the network (version.backbone,
version.dataset, version.trainer, version.pretraining, input.*, plugin.backbone,
plugin.dataset): cells are ranked against each other only when their protocols are
identical. Which columns those are comes from the column roles (benchmark/columns.py),
never from what else a row holds: a metric added to a round is no part of a protocol. The versions of a strategy
(version.strategy, version.initial_strategy, version.rounds_strategy) are part of
its label when the results hold more than one version of it. Results written
before versions were recorded have the version "unknown".
"""

from __future__ import annotations

import functools
import hashlib
import json
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from benchmark import columns
from benchmark.columns import STRATEGY_COMPONENT_COLUMNS, STRATEGY_CONFIG_KEYS, STRATEGY_PARAMS_KEY
from benchmark.store import CONFIG_COLUMNS_ATTR
from benchmark.versions import UNKNOWN, VERSION_PREFIX

# what defines a query strategy (not the training protocol): cells that differ only here are ranked together
STRATEGY_COLUMNS = STRATEGY_CONFIG_KEYS
STRATEGY_PARAMS_PREFIX = f"{STRATEGY_PARAMS_KEY}."  # one column per parameter a suite set, part of the label
DERIVED_COLUMNS = ("strategy_label", "protocol")
# versions of what selects (part of the strategy's label) and of what trains (part of the protocol)
# (a plugin strategy's origin, benchmark.plugins, tells two strategies of one name apart like a version)
STRATEGY_VERSION_COLUMNS = STRATEGY_COMPONENT_COLUMNS
PROTOCOL_VERSION_COLUMNS = tuple(f"{VERSION_PREFIX}{k}" for k in ("backbone", "dataset", "trainer", "pretraining"))


@functools.cache
def _schema_config_keys() -> frozenset[str]:
    from benchmark.config import config_keys

    return frozenset(config_keys())


def config_keys_of(frame: pd.DataFrame) -> frozenset[str]:
    """The configuration keys of the frame's cells: those of the configuration schema, and those the cell
    files' metadata lists (benchmark.store.load_results; a setting alb no longer has stays configuration)."""
    return _schema_config_keys() | frozenset(frame.attrs.get(CONFIG_COLUMNS_ATTR, ()))


def with_metric(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every row's test metric in ``accuracy``, which curves, tables, boards and AUBC read:
    a detection cell's mAP@0.5 (its ``map_50``) there, and ``metric`` naming it (accuracy / mAP@0.5). Detection
    and classification cells never share a protocol (their datasets differ), so no curve mixes the two."""
    frame = frame.copy()
    if "accuracy" not in frame.columns:
        frame["accuracy"] = np.nan
    frame["metric"] = "accuracy"
    if "map_50" in frame.columns:
        detection = frame["map_50"].notna() & frame["accuracy"].isna()
        frame.loc[detection, "accuracy"] = frame.loc[detection, "map_50"]
        frame.loc[detection, "metric"] = "mAP@0.5"
    return frame


def metric_name(rows: pd.DataFrame) -> str:
    """What the ``accuracy`` column of these report rows (one protocol) holds: accuracy or mAP@0.5."""
    return str(rows["metric"].iloc[0]) if "metric" in rows.columns and len(rows) else "accuracy"


def protocol_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's columns that define its cells' protocols (benchmark/columns.py), sorted."""
    return columns.protocol_columns(frame.columns, config_keys_of(frame))


def strategy_params_of(row: dict[str, Any]) -> dict[str, Any]:
    """The strategy parameters a cell set, from its flattened columns (absent ones are defaults)."""
    return {k.removeprefix(STRATEGY_PARAMS_PREFIX): v for k, v in row.items()
            if k.startswith(STRATEGY_PARAMS_PREFIX) and not _absent(v)}


def default_initial(strategy: str) -> str:
    from benchmark.strategies import STRATEGIES

    if strategy in STRATEGIES:
        info = STRATEGIES.info(strategy)
        return info.initial if info.kind == "schedule" and info.initial else "random"
    return "random"


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def strategy_label(strategy: str, initial_strategy: str | None = None, pool_subset: Any = None,
                   params: dict[str, Any] | None = None, candidate: tuple[Any, Any] = (None, None)) -> str:
    """'entropy', plus '(initial: margin)' when the initial set was not the default,
    '(subset 10000)' when only a random subset of the pool was scored, 'epochs=100' for each
    strategy parameter the suite set and '(candidate 2500 x 100 ep)' when a candidate model
    (trained on that many random labels for that many epochs) chose the initial set."""
    details = [f"{k}={_plain(v)}" for k, v in sorted((params or {}).items())]
    if not _absent(initial_strategy) and initial_strategy != default_initial(strategy):
        details.append(f"initial: {initial_strategy}")
    if not _absent(pool_subset):
        details.append(f"subset {int(pool_subset)}")
    if not _absent(candidate[0]):
        details.append(f"candidate {int(candidate[0])} x {int(candidate[1])} ep")
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

    def versions(self) -> str:
        """'backbone v1, dataset v1, trainer v1': the component versions of the protocol's cells."""
        return ", ".join(f"{k.removeprefix(VERSION_PREFIX)} v{v}" if v != UNKNOWN
                         else f"{k.removeprefix(VERSION_PREFIX)} version unknown"
                         for k, v in self.settings if k.startswith(VERSION_PREFIX) and v is not None)

    def title(self, differing: list[str] | None = None) -> str:
        base = f"{self.get('dataset')} / {self.get('backbone')}"
        b = {k: self.get(f"budget.{k}") for k in ("initial", "query", "rounds")}
        if None not in b.values():
            base += f" / {b['initial']}+{b['rounds']}x{b['query']} labels"
        extra = [f"{k}={self.get(k)}" for k in (differing or []) if not k.startswith("budget.")]
        return base + (f" ({', '.join(extra)})" if extra else "")


def _version(value: Any) -> Any:
    if _absent(value):
        return UNKNOWN
    return int(value) if isinstance(value, numbers.Real) and float(value).is_integer() else value


def _with_versions(frame: pd.DataFrame) -> pd.DataFrame:
    """Version columns with every absent version "unknown" (results from before versions were recorded);
    a schedule's rounds strategy and the pre-training of a cell that starts from scratch have none."""
    absent = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for column in (*STRATEGY_VERSION_COLUMNS[:2], *PROTOCOL_VERSION_COLUMNS[:3]):
        frame[column] = frame.get(column, absent).map(_version).astype(object)
    init = frame.get("init", pd.Series(["scratch"] * len(frame), index=frame.index))
    pretraining = frame.get(f"{VERSION_PREFIX}pretraining", absent)
    frame[f"{VERSION_PREFIX}pretraining"] = [None if _absent(i) or i == "scratch" else _version(v)
                                             for i, v in zip(init, pretraining, strict=True)]
    return frame


def _shown_version(column: str, value: Any) -> str:
    """'strategy v2', 'strategy version unknown', or 'from alb-example-plugin==0.1.0 sha256:1a2b3c4d'."""
    if column.startswith("plugin."):
        return "from alb" if value is None else f"from {str(value)[:len(str(value).split(':')[0]) + 9]}"
    return f"{column.removeprefix(VERSION_PREFIX)} {'version unknown' if value == UNKNOWN else f'v{value}'}"


def _versioned_labels(frame: pd.DataFrame, labels: list[str]) -> list[str]:
    """Labels with ' [strategy v2]' where the frame holds more than one version of that labelled strategy."""
    columns = [c for c in STRATEGY_VERSION_COLUMNS if c in frame.columns]
    versions = [tuple(_value(v) for v in row) for row in frame[columns].itertuples(index=False, name=None)]
    seen: dict[str, set[tuple[Any, ...]]] = {}
    for label, v in zip(labels, versions, strict=True):
        seen.setdefault(label, set()).add(v)
    out = []
    for label, v in zip(labels, versions, strict=True):
        if len(seen[label]) < 2:
            out.append(label)
            continue
        differing = [i for i in range(len(columns)) if len({s[i] for s in seen[label]}) > 1]
        shown = ", ".join(_shown_version(columns[i], v[i]) for i in differing)
        out.append(f"{label} [{shown}]")
    return out


def with_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Add 'strategy_label' and 'protocol' (a Protocol) columns, and the test metric (:func:`with_metric`);
    absent component versions are "unknown"."""
    frame = _with_versions(with_metric(frame))
    missing = [None] * len(frame)
    initial = frame.get("initial_strategy", missing)
    subset = frame.get("pool_subset", missing)
    candidates = zip(frame.get("candidate.subset", missing), frame.get("candidate.epochs", missing), strict=True)
    param_columns = [c for c in frame.columns if c.startswith(STRATEGY_PARAMS_PREFIX)]
    records = frame[param_columns].to_dict("records") if param_columns else [{}] * len(frame)
    frame["strategy_label"] = _versioned_labels(frame, [
        strategy_label(s, i, r, strategy_params_of(p), c)
        for s, i, r, p, c in zip(frame["strategy"], initial, subset, records, candidates, strict=True)])
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
