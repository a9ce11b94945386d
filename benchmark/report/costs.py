"""Seed 000's time columns from the result rows: time saved by not training a candidate, and annotation time.

*Time saved* (seed 000 "Time Saved (hrs)", l.7-83): the training time of the candidate model that the
paper's method never trains (l.193). alb measures it with the candidate baseline (``candidate`` in a suite,
benchmark/config.py): the ``candidate_seconds`` of a candidate cell, on the machine that ran it, and as a
fraction of that cell's total (train + query + candidate seconds over all rounds). The paper's hours come
from an RTX 4080 (l.147): only the fractions compare across machines.

*Annotation Sim. Time* (TinyImageNet table, l.73-77) is read as the wall-clock time of the simulated AL run:
l.78 says BADGE "took ~45 hrs — 1.5x longer than our methods", and 45 / 1.5 = 30 is the 29.87 printed, so
it is compute time, not a labelling cost. alb reproduces it as the sum of train + query (+ candidate) seconds
of a cell. Separately, the human *annotation hours* are labels x seconds per label: no seed states a
labelling cost, so the seconds per label are declared below (LABEL_SECONDS) and may be overridden with
``alb report --label-seconds DATASET=SECONDS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

SECONDS_PER_HOUR = 3600.0
TIME_COLUMNS = ("train_seconds", "query_seconds", "candidate_seconds")


@dataclass(frozen=True)
class LabelCost:
    seconds: float
    why: str


# Declared assumptions (no seed paper states a labelling cost): one image-level class label per image
DEFAULT_LABEL_COST = LabelCost(5.0, "assumed: 5 s to give one image one class label (no seed states a cost)")
LABEL_SECONDS: dict[str, LabelCost] = {
    "tiny_imagenet": LabelCost(10.0, "assumed: 200 fine-grained classes take longer to tell apart than 10"),
    "cifar100": LabelCost(10.0, "assumed: 100 fine-grained classes take longer to tell apart than 10"),
}


def label_cost(dataset: str, overrides: Mapping[str, float] | None = None) -> LabelCost:
    """Seconds per label of ``dataset``: the user's override, the declared table, or the default."""
    if overrides and dataset in overrides:
        return LabelCost(float(overrides[dataset]), "given with --label-seconds")
    return LABEL_SECONDS.get(dataset, DEFAULT_LABEL_COST)


def annotation_hours(n_labeled: np.ndarray | pd.Series | float, seconds_per_label: float) -> np.ndarray:
    """Human labelling hours of ``n_labeled`` labels."""
    return np.asarray(n_labeled, dtype=np.float64) * seconds_per_label / SECONDS_PER_HOUR


def cell_seconds(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell: candidate seconds, total seconds (train + query + candidate over all rounds), final labels
    and final accuracy; cells without a candidate have candidate_seconds NaN."""
    times = frame.reindex(columns=[*TIME_COLUMNS, "cell_id", "round", "n_labeled", "accuracy"]).copy()
    times["total_seconds"] = times[list(TIME_COLUMNS)].fillna(0.0).sum(axis=1)
    by_cell = times.groupby("cell_id", sort=False)
    last = times.sort_values("round").groupby("cell_id", sort=False).tail(1).set_index("cell_id")
    out = pd.DataFrame({"candidate_seconds": by_cell["candidate_seconds"].sum(min_count=1),
                        "total_seconds": by_cell["total_seconds"].sum()})
    out["final_n_labeled"] = last["n_labeled"]
    out["final_accuracy"] = last["accuracy"]
    out["candidate_fraction"] = out["candidate_seconds"] / out["total_seconds"]
    return out


def time_saved(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate cell: its candidate's seconds and their fraction of the cell's total, beside the
    total of its twin without a candidate (same protocol, strategy, initial strategy and seed) where present."""
    cells = cell_seconds(frame)
    meta = frame.groupby("cell_id", sort=False).first()
    keys = ["dataset", "backbone", "strategy", "initial_strategy", "seed"]
    if "protocol" in meta:
        keys.append("protocol")
    cells = cells.join(meta.reindex(columns=keys))
    has_candidate = cells["candidate_seconds"].notna()
    twins = cells.loc[~has_candidate, [*keys, "total_seconds"]].rename(columns={"total_seconds": "plain_seconds"})
    with_candidate = cells.loc[has_candidate].reset_index()
    return with_candidate.merge(twins.drop_duplicates(keys), on=keys, how="left")


def published_fraction(saved_hours: float | None, sim_hours: float | None) -> float | None:
    """The paper's time saved as a fraction of the candidate practice's total, where it prints the run time of
    its own method (Annotation Sim. Time): saved / (sim + saved)."""
    if saved_hours is None or sim_hours is None:
        return None
    return saved_hours / (sim_hours + saved_hours)
