"""Cells of the same id from several bundles: merged as runs of one cell when they agree, flagged otherwise.

Two runs agree when they are identical (same kind of device, precision and threads: alb is bit-reproducible
there) or, run on different setups, when their accuracies agree round by round within the tolerance of
`alb verify` (bundles/rows.py). Agreeing runs count once, as one cell (seed) of the board, with their
per-round scores averaged; a cell whose runs disagree is left out of the numbers and listed with the round
where they part, since no single value of it can be trusted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from benchmark.bundles.rows import DEFAULT_TOLERANCE, Rows, runs_difference, same_setup
from benchmark.leaderboard.sources import CellRows
from benchmark.versions import VERSION_PREFIX

AVERAGED_COLUMNS = ("accuracy", "macro_f1", "map_50", "map", "train_loss", "train_seconds", "query_seconds")


@dataclass(frozen=True)
class Disagreement:
    cell_id: str
    bundles: tuple[str, str]  # digests
    difference: str
    exact: bool

    def record(self) -> dict[str, Any]:
        return {"cell_id": self.cell_id, "bundles": list(self.bundles), "difference": self.difference,
                "compared": "exactly (same setup)" if self.exact else f"within {DEFAULT_TOLERANCE}"}


@dataclass
class Merged:
    frame: pd.DataFrame  # the rows of every cell kept, one run per cell
    flagged: pd.DataFrame  # the first run of every disagreeing cell: to place it on its board, never ranked
    sources: dict[str, list[str]] = field(default_factory=dict)  # cell id -> digests of the bundles that hold it
    disagreements: list[Disagreement] = field(default_factory=list)


def _rows(frame: pd.DataFrame) -> Rows:
    return Rows.of(frame.sort_values("round").to_dict("records"))


def _versions(frame: pd.DataFrame) -> dict[str, Any]:
    first = frame.iloc[0]
    return {c: first[c] for c in frame.columns if c.startswith(VERSION_PREFIX) and not pd.isna(first[c])}


def _versions_difference(a: pd.DataFrame, b: pd.DataFrame) -> str | None:
    """One id is one set of component versions (the id covers them); two bundles that disagree on them cannot
    both be faithful."""
    va, vb = _versions(a), _versions(b)
    return None if va == vb else f"component versions {va} vs {vb} under one cell id"


def _averaged(runs: list[CellRows]) -> pd.DataFrame:
    first = runs[0].rows.sort_values("round").reset_index(drop=True)
    for column in AVERAGED_COLUMNS:
        if column in first.columns:
            values = [r.rows.sort_values("round")[column].to_numpy(dtype=float) for r in runs]
            first[column] = sum(values) / len(values)
    return first


def merge_cells(cells: Iterable[CellRows]) -> Merged:
    by_id: dict[str, list[CellRows]] = {}
    for cell in cells:
        by_id.setdefault(str(cell.rows["cell_id"].iloc[0]), []).append(cell)
    merged = Merged(pd.DataFrame(), pd.DataFrame())
    frames, flagged = [], []
    for cell_id, runs in by_id.items():
        merged.sources[cell_id] = [r.bundle for r in runs]
        problem = None
        for other in runs[1:]:
            exact = same_setup(runs[0].run, other.run)
            difference = _versions_difference(runs[0].rows, other.rows) or runs_difference(
                _rows(runs[0].rows), _rows(other.rows), exact)
            if difference is not None:
                problem = Disagreement(cell_id, (runs[0].bundle, other.bundle), difference, exact)
                break
        if problem is not None:
            merged.disagreements.append(problem)
            flagged.append(runs[0].rows)
            continue
        frames.append(_averaged(runs) if len(runs) > 1 else runs[0].rows)
    if frames:
        merged.frame = pd.concat(frames, ignore_index=True, sort=False)
    if flagged:
        merged.flagged = pd.concat(flagged, ignore_index=True, sort=False)
    return merged
