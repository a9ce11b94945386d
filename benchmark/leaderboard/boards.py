"""The merged leaderboard as data: one board per benchmark (one exact protocol and component versions),
built with the report's own AUBC and statistics (report/tables.py ``board_rows``), and every number in the
form the pages show it (percent with 2 decimals, p-values with 2 significant digits), so leaderboard.json
holds exactly what a reader sees.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from benchmark.leaderboard.merge import Disagreement
from benchmark.leaderboard.sources import Source
from benchmark.report.frame import Protocol, metric_name
from benchmark.report.stats import ALPHA, Test
from benchmark.report.tables import BoardRow, board_rows, protocol_titles


def _pct(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(100 * x, 2)


def _p(p: float | None) -> float | None:
    return None if p is None else float(f"{p:.2g}")


def _seed_stats(values: dict[int, float]) -> tuple[float | None, float | None]:
    series = np.array(list(values.values()), dtype=float)
    std = float(series.std(ddof=1)) if series.size > 1 else None
    return _pct(float(series.mean())), _pct(std)


def _test(test: Test | None) -> dict[str, Any] | None:
    """A paired test as shown; None for the strategy itself (or no random on the board)."""
    if test is None:
        return None
    separated = None if test.p is None else test.p < ALPHA
    return {"difference": _pct(test.difference), "p": _p(test.p), "separated": separated,
            "why_not_testable": test.why or None}


def _entry(row: BoardRow, cells: pd.DataFrame, cell_sources: dict[str, list[str]],
           sources: dict[str, Source]) -> dict[str, Any]:
    aubc_mean, aubc_std = _seed_stats(row.aubc)
    final_mean, final_std = _seed_stats(row.final)
    interval = row.marks.interval
    digests = sorted({d for c in cells["cell_id"].unique() for d in cell_sources.get(str(c), [])})
    runs = {str(c): len(cell_sources.get(str(c), [])) for c in cells["cell_id"].unique()}
    return {
        "rank": int(row.rank), "strategy": row.label, "aubc": aubc_mean, "aubc_std": aubc_std,
        "aubc_ci": [_pct(interval.low), _pct(interval.high)] if interval.low is not None else None,
        "aubc_per_seed": {str(s): _pct(v) for s, v in sorted(row.aubc.items())},
        "vs_best": "best" if row.marks.is_best else _test(row.marks.vs_best),
        "vs_random": _test(row.marks.vs_random),
        "final_accuracy": final_mean, "final_accuracy_std": final_std,
        "label_efficiency": None if math.isnan(row.efficiency) else round(row.efficiency, 2),
        "train_seconds_per_round": round(row.train_seconds, 2), "query_seconds_per_round": round(row.query_seconds, 3),
        "seeds": len(row.aubc), "cells": sorted(runs), "cells_with_several_runs": sum(n > 1 for n in runs.values()),
        "bundles": [{"digest": d, "submitter": sources[d].submitter, "status": sources[d].status} for d in digests],
    }


def board(protocol: Protocol, title: str, differs_in: list[str], rows: pd.DataFrame,
          cell_sources: dict[str, list[str]], sources: dict[str, Source],
          disagreements: list[Disagreement]) -> dict[str, Any]:
    """One benchmark's board; ``disagreements``: those of its cells (left out of ``rows``)."""
    entries, target = board_rows(rows)
    by_label = {label: g for label, g in rows.groupby("strategy_label")}
    return {"slug": protocol.slug, "title": title, "protocol": dict(protocol.settings),
            # what the *_accuracy numbers and the AUBC are of: accuracy, or mAP@0.5 on a detection board
            "metric": metric_name(rows),
            "versions": protocol.versions(), "differs_from_other_boards_in": differs_in,
            "random_final_accuracy": _pct(target),
            "entries": [_entry(r, by_label[r.label], cell_sources, sources) for r in entries],
            "disagreeing_cells": [d.record() for d in disagreements]}


def boards(labelled: pd.DataFrame, cell_sources: dict[str, list[str]], sources: dict[str, Source],
           disagreements: list[Disagreement]) -> list[dict[str, Any]]:
    """Every benchmark's board of the merged, labelled rows (frame.with_labels) of every cell, the disagreeing
    ones included: they place each disagreement on its board, and are then left out of its numbers."""
    if labelled.empty:
        return []
    flagged = {d.cell_id: d for d in disagreements}
    out = []
    for p, (title, keys) in protocol_titles(labelled).items():
        rows = labelled[labelled["protocol"] == p]
        own = [flagged[c] for c in dict.fromkeys(rows["cell_id"].astype(str)) if c in flagged]
        ranked = rows[~rows["cell_id"].astype(str).isin(flagged)]
        if ranked.empty:
            continue
        out.append(board(p, title, keys, ranked, cell_sources, sources, own))
    return out
