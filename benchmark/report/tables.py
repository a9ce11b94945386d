"""Result tables and leaderboards as plain data (``Table``), rendered by render.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmark.report.frame import Protocol, differing_keys, metric_name, strategy_label, strategy_params_of
from benchmark.report.metrics import aubc, labels_to_reach
from benchmark.report.references import Comparison
from benchmark.report.stats import ALPHA, BoardMarks, Interval, Test, board_marks

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
        if metric_name(rows) != "accuracy":  # detection: say what the numbers are
            headers[0] = f"strategy ({metric_name(rows)}, %)"
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


def _ci(interval: Interval) -> str:
    if interval.low is None or interval.high is None:
        return "– (1 seed)"
    return f"[{100 * interval.low:.2f}, {100 * interval.high:.2f}]"


def _p(test: Test) -> str:
    return f"p={test.p:.2g}" if test.p is not None else f"not testable: {test.why}"


def _vs_best(marks: BoardMarks) -> str:
    if marks.is_best or marks.vs_best is None:
        return "best"
    test = marks.vs_best
    if test.p is None:
        return f"? {100 * test.difference:+.2f} ({_p(test)})"
    word = "≈best" if marks.tied_with_best else "below best"
    return f"{word} ({100 * test.difference:+.2f}, {_p(test)})"


def _vs_random(marks: BoardMarks, has_random: bool) -> str:
    if not has_random:
        return "–"
    test = marks.vs_random
    if test is None:
        return "(random itself)"
    if test.p is None:
        return f"{100 * test.difference:+.2f} ({_p(test)})"
    word = "n.s." if test.p >= ALPHA else ("better" if test.difference > 0 else "worse")
    return f"{100 * test.difference:+.2f} ({_p(test)}, {word})"


def _shared_ranks(order: list[BoardMarks]) -> list[str]:
    """Rank 1 for the best and every strategy not separated from it; competition ranks after them."""
    return ["1" if m.tied_with_best else str(i + 1) for i, m in enumerate(order)]


LEGEND = ("AUBC 95% CI: Student-t interval of the mean over seeds. vs best: paired t-test over the seeds both ran, "
          "against the strategy with the highest mean; ≈best = not separated at alpha = 0.05 (shares rank 1), "
          "below best = separated. vs random: the same test against random sampling; better / worse / n.s. "
          "(not significant). Both p-value families are Holm-corrected across the board; differences in AUBC "
          "points. Not testable: fewer than 2 common seeds (ranked by mean, no tie claimed).")


def leaderboard_tables(frame: pd.DataFrame) -> list[Table]:
    """Per benchmark (one exact protocol): strategies ranked by AUBC, with t intervals and paired tests
    against the best and against random (stats.board_marks)."""
    tables = []
    for protocol, (title, keys) in protocol_titles(frame).items():
        rows = frame[frame["protocol"] == protocol]
        random_rows = rows[rows["strategy_label"] == "random"]
        target = None
        if not random_rows.empty:
            n_r, a_r = mean_curve(random_rows)
            target = float(a_r[-1])
        per_seed_aubc: dict[str, dict[int, float]] = {}
        cells: dict[str, list[str]] = {}
        for label, srows in rows.groupby("strategy_label", sort=True):
            per_seed_aubc[str(label)] = {int(seed): aubc(g["n_labeled"].to_numpy(), g["accuracy"].to_numpy())
                                         for seed, g in srows.groupby("seed")}
            per_seed = list(per_seed_aubc[str(label)].values())
            last = srows[srows["round"] == srows.groupby("cell_id")["round"].transform("max")]
            final = last.groupby("seed")["accuracy"].mean()
            efficiency = float("nan")
            if target is not None:
                efficiency = labels_to_reach(n_r, a_r, target) / labels_to_reach(*mean_curve(srows), target)
            per_round = srows.groupby("cell_id")[["train_seconds", "query_seconds"]].mean()
            cells[str(label)] = [
                _pm(float(np.mean(per_seed)), _std(pd.Series(per_seed))), _pm(float(final.mean()), _std(final)),
                "–" if np.isnan(efficiency) else f"{efficiency:.2f}x",
                f"{per_round['train_seconds'].mean():.2f}", f"{per_round['query_seconds'].mean():.3f}",
                str(srows["seed"].nunique())]
        marks = board_marks(per_seed_aubc, "random")
        order = sorted(marks, key=lambda n: (not marks[n].tied_with_best, -marks[n].interval.mean, n))
        ranks = _shared_ranks([marks[n] for n in order])
        has_random = "random" in marks
        body = [[rank, name, cells[name][0], _ci(marks[name].interval), _vs_best(marks[name]),
                 _vs_random(marks[name], has_random), *cells[name][1:]]
                for rank, name in zip(ranks, order, strict=True)]
        metric = metric_name(rows)
        efficiency_header = (f"label efficiency at random's final {metric}"
                             + (f" ({100 * target:.2f}%)" if target is not None else " (no random baseline)"))
        headers = ["rank", "strategy", "AUBC (%)", "AUBC 95% CI", "vs best", "vs random", f"final {metric} (%)",
                   efficiency_header, "train s / round", "query s / round", "seeds"]
        notes = [f"Ranked by AUBC: the mean {metric} over the budget (area under the learning curve "
                 "divided by its label range), mean ± std over seeds; strategies not separated from the best "
                 "share rank 1.", LEGEND, f"Component versions: {protocol.versions()}; cells of other versions "
                 "are never ranked together."]
        if keys:
            notes.insert(0, f"⚠ protocol differs from other {_pair(protocol)} boards in: {', '.join(keys)}; "
                            "not ranked together with them")
        tables.append(Table(f"Leaderboard — {title}", headers, body, notes, anchor=protocol.slug))
    return tables
