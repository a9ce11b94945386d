"""Tables of seed 000's time columns (benchmark/report/costs.py), beside the published hours."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from benchmark.published import PublishedNumber
from benchmark.report.costs import SECONDS_PER_HOUR, annotation_hours, cell_seconds, label_cost, published_fraction
from benchmark.report.costs import time_saved as time_saved_frame
from benchmark.report.tables import Table, protocol_titles

HARDWARE_NOTE = ("Seconds are on the machine that ran the cell (column device); the published hours were measured "
                 "on an RTX 4080 (seed 000 l.147) and are hardware-bound: compare the fractions, not the hours.")


def _published(numbers: list[PublishedNumber], metric: str, dataset: str, backbone: str, strategy: str,
               initial: str | None) -> float | None:
    """The paper's final-round value of ``metric`` for this dataset, backbone and strategy (LC / HC entries
    carry initial_strategy in their setting; schedules do not)."""
    for n in numbers:
        if (n.metric, n.dataset, n.backbone, n.strategy, n.n_labeled) != (metric, dataset, backbone, strategy, None):
            continue
        wanted = n.setting.get("initial_strategy")
        if wanted is None or wanted == initial:
            return n.mean
    return None


def _mean_std(values: pd.Series, scale: float = 1.0, digits: int = 1) -> str:
    v = values.dropna().to_numpy(dtype=np.float64) * scale
    if len(v) == 0:
        return "–"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _or_dash(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def time_saved_table(frame: pd.DataFrame, numbers: list[PublishedNumber]) -> list[Table]:
    """Candidate training time avoided, per protocol and strategy: seconds here, fraction of the cell's total,
    and the published hours (and fraction, where the paper prints its run time)."""
    saved = time_saved_frame(frame)
    if saved.empty:
        return []
    titles = protocol_titles(frame)
    label = frame.groupby("cell_id", sort=False)["strategy_label"].first() if "strategy_label" in frame else None
    saved["label"] = saved["cell_id"].map(label) if label is not None else saved["strategy"]
    devices = frame.groupby("cell_id", sort=False)["device"].first() if "device" in frame else None
    tables = []
    for protocol, group in saved.groupby("protocol", sort=False) if "protocol" in saved else [(None, saved)]:
        rows = []
        for lbl, g in group.groupby("label", sort=True):
            first = g.iloc[0]
            pub_saved = _published(numbers, "time_saved_hours", first["dataset"], first["backbone"],
                                   first["strategy"], first["initial_strategy"])
            pub_sim = _published(numbers, "annotation_hours", first["dataset"], first["backbone"],
                                 first["strategy"], first["initial_strategy"])
            device = ", ".join(sorted({str(devices[c]) for c in g["cell_id"]})) if devices is not None else ""
            rows.append([str(lbl), str(len(g)), _mean_std(g["candidate_seconds"]), _mean_std(g["total_seconds"]),
                         _mean_std(g["candidate_fraction"], 100.0), _mean_std(g["plain_seconds"]), device,
                         _or_dash(pub_saved, ".2f"), _or_dash(published_fraction(pub_saved, pub_sim), ".1%")])
        title = titles[protocol][0] if protocol is not None and protocol in titles else "all cells"
        tables.append(Table(f"Time saved: {title}", [
            "strategy", "seeds", "candidate s (time saved)", "cell total s", "saved % of total",
            "total s without candidate", "device", "published saved (h)", "published saved % of total"],
            rows, notes=[HARDWARE_NOTE, "cell total = train + query + candidate seconds over all rounds; published "
                         "% of total only where the paper prints its run time (Annotation Sim. Time)."],
            anchor="time-saved"))
    return tables


def annotation_table(frame: pd.DataFrame, numbers: list[PublishedNumber],
                     overrides: Mapping[str, float] | None = None) -> list[Table]:
    """Per protocol and strategy: final labels, human annotation hours (labels x declared seconds per label),
    the simulated run's hours (seed 000's Annotation Sim. Time) and final accuracy."""
    cells = cell_seconds(frame)
    meta = frame.groupby("cell_id", sort=False)[["dataset", "backbone", "strategy", "initial_strategy",
                                                "strategy_label", "protocol"]].first()
    cells = cells.join(meta)
    titles = protocol_titles(frame)
    tables = []
    for protocol, group in cells.groupby("protocol", sort=False):
        dataset = str(group["dataset"].iloc[0])
        cost = label_cost(dataset, overrides)
        rows = []
        for lbl, g in group.groupby("strategy_label", sort=True):
            first = g.iloc[0]
            pub_sim = _published(numbers, "annotation_hours", dataset, first["backbone"], first["strategy"],
                                 first["initial_strategy"])
            hours = annotation_hours(g["final_n_labeled"], cost.seconds)
            rows.append([str(lbl), str(len(g)), str(int(g["final_n_labeled"].max())),
                         f"{float(np.mean(hours)):.2f}", _mean_std(g["total_seconds"], 1 / SECONDS_PER_HOUR, 3),
                         _or_dash(pub_sim, ".2f"), _mean_std(g["final_accuracy"], 100.0, 2)])
        tables.append(Table(f"Annotation time: {titles[protocol][0]}", [
            "strategy", "seeds", "labels", f"annotation h ({cost.seconds:g} s/label)", "simulated run h",
            "published Annotation Sim. Time (h)", "accuracy (%)"], rows, notes=[
            f"seconds per label for {dataset}: {cost.seconds:g} ({cost.why}).",
            "simulated run h = train + query + candidate seconds over all rounds, seed 000's 'Annotation Sim. "
            "Time' (l.73-78: compute time, as BADGE's ~45 h = 1.5x shows). " + HARDWARE_NOTE],
            anchor="annotation-time"))
    return tables
