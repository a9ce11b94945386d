"""Result tables and leaderboards as plain data (``Table``), rendered by render.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmark.report.frame import Protocol, differing_keys, metric_name, strategy_label, strategy_params_of
from benchmark.report.metrics import aubc, labels_to_reach
from benchmark.report.references import Comparison
from benchmark.report.stats import ALPHA, ROUND_OFF, BoardMarks, Interval, Test, board_marks

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


def ranks_by_mean(means: list[float]) -> list[str]:
    """Competition ranks of ``means`` sorted best first: equal means (within float round-off) share a rank,
    every other strategy gets its position. Statistical separation never enters the rank (it is the
    'vs best' column): with few seeds almost nothing separates, and a shared rank 1 would put strategies
    far apart on the mean above a better one."""
    ranks: list[str] = []
    for i, mean in enumerate(means):
        tied = i > 0 and abs(mean - means[i - 1]) <= ROUND_OFF
        ranks.append(ranks[-1] if tied else str(i + 1))
    return ranks


LEGEND = ("AUBC 95% CI: Student-t interval of the mean over seeds. vs best: paired t-test over the seeds both ran, "
          "against the strategy with the highest mean; ≈best = not separated at alpha = 0.05, below best = "
          "separated (a marker only: the rank is by mean AUBC). vs random: the same test against random "
          "sampling; better / worse / n.s. (not significant). Both p-value families are Holm-corrected across "
          "the board; differences in AUBC points. Not testable: fewer than 2 common seeds (no tie claimed).")
def rank_note(metric: str = "accuracy") -> str:
    return (f"Ranked by AUBC: the mean {metric} over the budget (area under the learning curve divided by its "
            "label range), mean ± std over seeds, best first; only equal means share a rank. Whether a strategy "
            "is separated from the best is the 'vs best' column, never the rank.")


RANK_NOTE = rank_note()


@dataclass(frozen=True)
class BoardRow:
    """One strategy on one benchmark's board, as numbers (fractions; seconds per round)."""

    rank: str
    label: str
    aubc: dict[int, float]  # per seed
    marks: BoardMarks
    final: dict[int, float]  # final accuracy per seed
    efficiency: float  # labels random needs / labels the strategy needs at random's final accuracy; NaN: none
    train_seconds: float
    query_seconds: float


def board_rows(rows: pd.DataFrame) -> tuple[list[BoardRow], float | None]:
    """The board of one protocol's rows (frame.with_labels), ranked by mean AUBC (ranks_by_mean), and random's
    final accuracy (the efficiency target; None without random)."""
    random_rows = rows[rows["strategy_label"] == "random"]
    target = None
    if not random_rows.empty:
        n_r, a_r = mean_curve(random_rows)
        target = float(a_r[-1])
    per_seed_aubc: dict[str, dict[int, float]] = {}
    facts: dict[str, tuple[dict[int, float], float, float, float]] = {}
    for label, srows in rows.groupby("strategy_label", sort=True):
        per_seed_aubc[str(label)] = {int(seed): aubc(g["n_labeled"].to_numpy(), g["accuracy"].to_numpy())
                                     for seed, g in srows.groupby("seed")}
        last = srows[srows["round"] == srows.groupby("cell_id")["round"].transform("max")]
        final = {int(k): float(v) for k, v in last.groupby("seed")["accuracy"].mean().items()}
        efficiency = float("nan")
        if target is not None:
            efficiency = labels_to_reach(n_r, a_r, target) / labels_to_reach(*mean_curve(srows), target)
        per_round = srows.groupby("cell_id")[["train_seconds", "query_seconds"]].mean()
        facts[str(label)] = (final, efficiency, float(per_round["train_seconds"].mean()),
                             float(per_round["query_seconds"].mean()))
    marks = board_marks(per_seed_aubc, "random")
    order = sorted(marks, key=lambda n: (-marks[n].interval.mean, n))
    ranks = ranks_by_mean([marks[n].interval.mean for n in order])
    return [BoardRow(rank, name, per_seed_aubc[name], marks[name], *facts[name])
            for rank, name in zip(ranks, order, strict=True)], target


def _seed_pm(values: dict[int, float]) -> str:
    series = pd.Series(list(values.values()), dtype=float)
    return _pm(float(series.mean()), _std(series))


def leaderboard_tables(frame: pd.DataFrame) -> list[Table]:
    """Per benchmark (one exact protocol): strategies ranked by AUBC, with t intervals and paired tests
    against the best and against random (stats.board_marks)."""
    tables = []
    for protocol, (title, keys) in protocol_titles(frame).items():
        rows = frame[frame["protocol"] == protocol]
        board, target = board_rows(rows)
        has_random = any(r.label == "random" for r in board)
        body = [[r.rank, r.label, _seed_pm(r.aubc), _ci(r.marks.interval), _vs_best(r.marks),
                 _vs_random(r.marks, has_random), _seed_pm(r.final),
                 "–" if np.isnan(r.efficiency) else f"{r.efficiency:.2f}x",
                 f"{r.train_seconds:.2f}", f"{r.query_seconds:.3f}", str(len(r.aubc))] for r in board]
        metric = metric_name(rows)
        efficiency_header = (f"label efficiency at random's final {metric}"
                             + (f" ({100 * target:.2f}%)" if target is not None else " (no random baseline)"))
        headers = ["rank", "strategy", "AUBC (%)", "AUBC 95% CI", "vs best", "vs random", f"final {metric} (%)",
                   efficiency_header, "train s / round", "query s / round", "seeds"]
        notes = [rank_note(metric), LEGEND, f"Component versions: {protocol.versions()}; cells of other versions "
                 "are never ranked together."]
        if keys:
            notes.insert(0, f"⚠ protocol differs from other {_pair(protocol)} boards in: {', '.join(keys)}; "
                            "not ranked together with them")
        tables.append(Table(f"Leaderboard — {title}", headers, body, notes, anchor=protocol.slug))
    return tables
