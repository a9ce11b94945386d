"""Result tables and leaderboards as plain data (``Table``), rendered by render.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from benchmark.report.frame import Protocol, differing_keys, strategy_label, strategy_params_of
from benchmark.report.metrics import aubc, labels_to_reach
from benchmark.report.references import Comparison

MAX_LABEL_COLUMNS = 5


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    anchor: str = ""


def _pm(mean: float, std: float | None, scale: float = 100.0, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "–"
    if std is None or np.isnan(std):
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def _std(values: pd.Series) -> float | None:
    return float(values.std(ddof=1)) if len(values) > 1 else None


def _pair(protocol: Protocol) -> str:
    return f"{protocol.get('dataset')}/{protocol.get('backbone')}"


def protocol_titles(frame: pd.DataFrame) -> dict[Protocol, tuple[str, list[str]]]:
    """Each protocol's title, and the settings in which it differs from the other protocols
    of the same dataset and backbone (empty when it is the only one)."""
    protocols = list(dict.fromkeys(frame["protocol"]))
    titles = {}
    for p in protocols:
        siblings = [q for q in protocols
                    if q.get("dataset") == p.get("dataset") and q.get("backbone") == p.get("backbone")]
        keys = differing_keys(siblings)
        titles[p] = (p.title(keys), keys)
    return titles


def label_columns(counts: list[int], wanted: set[int], chosen: list[int] | None = None) -> list[int]:
    """The user's ``chosen`` label counts that the run has, or else up to MAX_LABEL_COLUMNS evenly
    spaced ones (first and last included); plus any count a reference asks for."""
    counts = sorted(counts)
    if chosen:
        return sorted((set(chosen) | wanted) & set(counts))
    positions = np.linspace(0, len(counts) - 1, min(MAX_LABEL_COLUMNS, len(counts)))
    picks = {counts[round(i)] for i in positions}
    return sorted(picks | (wanted & set(counts)))


def cell_curves(rows: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(g["n_labeled"].to_numpy(), g["accuracy"].to_numpy()) for _, g in rows.groupby("seed")]


def mean_curve(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    curve = rows.groupby("n_labeled")["accuracy"].mean().sort_index()
    return curve.index.to_numpy(), curve.to_numpy()


def results_tables(frame: pd.DataFrame, comparisons: list[Comparison],
                   at_labels: list[int] | None = None,
                   assumptions: dict[Protocol, list[str]] | None = None) -> list[Table]:
    """Per protocol: mean ± std accuracy (%) at chosen label counts, AUBC, and the published value
    with our difference wherever a reference exists; ``assumptions``: notes on the settings the suites
    assumed for the protocol's cells (benchmark/assumptions.py table_notes)."""
    refs: dict[tuple[Protocol, str, int], list[Comparison]] = {}
    for c in comparisons:
        if c.protocol is not None and c.ours_mean is not None and c.n_labeled is not None:
            setting = c.reference.setting
            label = strategy_label(c.reference.strategy, setting.get("initial_strategy"), setting.get("pool_subset"),
                                   strategy_params_of(setting))
            refs.setdefault((c.protocol, label, c.n_labeled), []).append(c)
    tables = []
    for protocol, (title, keys) in protocol_titles(frame).items():
        rows = frame[frame["protocol"] == protocol]
        wanted = {n for (p, _, n) in refs if p == protocol}
        columns = label_columns([int(n) for n in rows["n_labeled"].unique()], wanted, at_labels)
        headers = ["strategy", *[f"{n} labels" for n in columns], "AUBC", "seeds"]
        body, notes = [], []
        for label, srows in rows.groupby("strategy_label", sort=True):
            stats = srows.groupby(["n_labeled", "seed"])["accuracy"].mean().groupby("n_labeled")
            means, stds = stats.mean(), stats.std(ddof=1)
            cells = []
            for n in columns:
                text = _pm(means.get(n, np.nan), stds.get(n, np.nan)) if n in means.index else "–"
                for c in refs.get((protocol, str(label), n), []):
                    diff = 100 * (c.difference or 0.0)
                    text += f" [paper {_pm(c.reference.mean, c.reference.std)}, diff {diff:+.2f}]"
                    notes.append(f"{label} at {n} labels: {c.reference.id} from {c.reference.source}")
                cells.append(text)
            per_seed_aubc = [aubc(n, a) for n, a in cell_curves(srows)]
            aubc_text = _pm(float(np.mean(per_seed_aubc)), _std(pd.Series(per_seed_aubc)))
            body.append([str(label), *cells, aubc_text, str(srows["seed"].nunique())])
        if keys:
            notes.insert(0, f"protocol differs from the other {_pair(protocol)} tables in: {', '.join(keys)}")
        notes[:0] = (assumptions or {}).get(protocol, [])  # first: they qualify every number of the table
        tables.append(Table(f"Accuracy (%) — {title}", headers, body, notes, anchor=protocol.slug))
    return tables


def leaderboard_tables(frame: pd.DataFrame) -> list[Table]:
    """Per benchmark (one exact protocol): strategies ranked by AUBC."""
    tables = []
    for protocol, (title, keys) in protocol_titles(frame).items():
        rows = frame[frame["protocol"] == protocol]
        random_rows = rows[rows["strategy_label"] == "random"]
        target = None
        if not random_rows.empty:
            n_r, a_r = mean_curve(random_rows)
            target = float(a_r[-1])
        entries = []
        for label, srows in rows.groupby("strategy_label", sort=True):
            per_seed = [aubc(n, a) for n, a in cell_curves(srows)]
            last = srows[srows["round"] == srows.groupby("cell_id")["round"].transform("max")]
            final = last.groupby("seed")["accuracy"].mean()
            efficiency = float("nan")
            if target is not None:
                efficiency = labels_to_reach(n_r, a_r, target) / labels_to_reach(*mean_curve(srows), target)
            per_round = srows.groupby("cell_id")[["train_seconds", "query_seconds"]].mean()
            entries.append((float(np.mean(per_seed)), [
                str(label), _pm(float(np.mean(per_seed)), _std(pd.Series(per_seed))),
                _pm(float(final.mean()), _std(final)),
                "–" if np.isnan(efficiency) else f"{efficiency:.2f}x",
                f"{per_round['train_seconds'].mean():.2f}", f"{per_round['query_seconds'].mean():.3f}",
                str(srows["seed"].nunique())]))
        entries.sort(key=lambda e: -e[0])
        body = [[str(i + 1), *cells] for i, (_, cells) in enumerate(entries)]
        efficiency_header = ("label efficiency at random's final accuracy"
                             + (f" ({100 * target:.2f}%)" if target is not None else " (no random baseline)"))
        headers = ["rank", "strategy", "AUBC (%)", "final accuracy (%)", efficiency_header,
                   "train s / round", "query s / round", "seeds"]
        notes = ["Ranked by AUBC: the mean accuracy over the budget (area under the learning curve "
                 "divided by its label range), mean ± std over seeds."]
        if keys:
            notes.insert(0, f"⚠ protocol differs from other {_pair(protocol)} boards in: {', '.join(keys)}; "
                            "not ranked together with them")
        tables.append(Table(f"Leaderboard — {title}", headers, body, notes, anchor=protocol.slug))
    return tables


def protocol_summary(protocol: Protocol) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in protocol.settings if v is not None]
