"""A suite's declared assumptions beside its results, and where the report and ``alb check`` show them.

Results carry config columns, not the suite file, so ``alb run`` writes ``RESULTS/<suite>/suite.json``
(the suite's name, file, description, the ids of its cells and its assumptions, each with the ids of the
cells it applies to) every time it runs, cached cells included. Its cell ids also make the suite's folder a
view over the shared ``RESULTS/cells/`` (benchmark/store.py: ``load_results``).
``alb report`` reads every ``suite.json`` under its result
folders and notes, under each results table, the assumptions that apply to the table's cells. Results
run before the suite declared its assumptions get them by rerunning ``alb run SUITE`` (nothing is
recomputed). No torch here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.store import SUITE_RECORD  # the store reads the cell ids of a suite's record

if TYPE_CHECKING:
    import pandas as pd

    from benchmark.report.frame import Protocol
    from benchmark.suite import Assumption, Suite

RECORD_VERSION = 1


def suite_record(suite: Suite) -> dict[str, Any]:
    return {"version": RECORD_VERSION, "suite": suite.name, "file": str(suite.path),
            "description": suite.description.strip(), "cells": [c.id for c in suite.cells],
            "assumptions": [a.record() for a in suite.assumptions]}


def write_suite_record(results_dir: Path, suite: Suite) -> Path:
    """``results_dir/<suite>/suite.json``, replaced atomically."""
    from benchmark.store import atomic_write

    target = Path(results_dir) / suite.name / SUITE_RECORD
    text = json.dumps(suite_record(suite), indent=1, default=str) + "\n"
    atomic_write(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return target


def read_suite_records(dirs: list[Path]) -> dict[str, dict[str, Any]]:
    """Every ``suite.json`` under ``dirs`` (hidden folders skipped), by suite name; unreadable ones are skipped
    (a report must not fail on them: the results themselves are still shown)."""
    records: dict[str, dict[str, Any]] = {}
    for d in dirs:
        for path in sorted(Path(d).rglob(SUITE_RECORD)):
            if any(part.startswith(".") for part in path.relative_to(d).parts):
                continue
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                records[str(record["suite"])] = record
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return records


def describe(entry: dict[str, Any]) -> str:
    """'training.schedule.name = cosine — why (source: seed 000 l.189)' from a record entry."""
    return f"{entry['setting']} = {entry['shown']} — {entry['why']} (source: {entry['source']})"


def table_notes(frame: pd.DataFrame, records: dict[str, dict[str, Any]]) -> dict[Protocol, list[str]]:
    """Per protocol of a labelled results frame: one note per assumption whose cells are among the
    protocol's cells, naming the strategies it is limited to when it covers only some of them."""
    notes: dict[Protocol, list[str]] = {}
    if frame.empty or not records:
        return notes
    for protocol, rows in frame.groupby("protocol", sort=False):
        labels_of = rows.groupby("cell_id")["strategy_label"].first()
        for suite in sorted(set(rows["suite"].astype(str))):
            for entry in records.get(suite, {}).get("assumptions", []):
                hit = labels_of[labels_of.index.isin(entry.get("cells", []))]
                if hit.empty:
                    continue
                limited = sorted(set(hit)) if set(hit) != set(labels_of) else []
                only = f" [only: {', '.join(map(str, limited))}]" if limited else ""
                notes.setdefault(protocol, []).append(f"assumed (suite {suite}): {describe(entry)}{only}")
    return notes


def compared_cells(frame: pd.DataFrame, protocol: Protocol | None, strategy: str,
                   setting: dict[str, Any]) -> set[str]:
    """The cells behind one comparison of ``alb check``: its protocol and the reference's strategy label."""
    from benchmark.report.frame import strategy_label, strategy_params_of

    if protocol is None or frame.empty:
        return set()
    label = strategy_label(strategy, setting.get("initial_strategy"), setting.get("pool_subset"),
                           strategy_params_of(setting))
    rows = frame[(frame["protocol"] == protocol) & (frame["strategy_label"] == label)]
    return set(rows["cell_id"])


def assumed_marks(assumptions: list[Assumption], cells: set[str]) -> str:
    """'A1 A3': the numbers (1-based, in the suite's order) of the assumptions that hold for ``cells``."""
    return " ".join(f"A{i + 1}" for i, a in enumerate(assumptions) if a.cells & cells)
