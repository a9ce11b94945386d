"""Figures: learning curves, setting-difference curves, labeling efficiency, accuracy vs annotation time
(PNG + SVG)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.report.frame import Protocol, metric_name
from benchmark.report.metrics import efficiency_targets, label_efficiency
from benchmark.report.tables import mean_curve, protocol_titles

# the value subtracted in a difference plot, where the papers fix one (seed 001 Figs. 3, 4, 7, 10)
DIFFERENCE_BASELINE = {"training.start": "cold", "training.augmentation": "none", "init": "scratch",
                       "training.semi": "none"}
# settings that exist only for some values of another (pretraining.* is null unless init is self-supervised):
# they do not make two protocols differ in more than the swept setting
DEPENDENT_SETTINGS: dict[str, tuple[str, ...]] = {"init": ("pretraining.",)}


@dataclass(frozen=True)
class Figure:
    title: str
    png: str
    svg: str


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    plt.rcParams["svg.hashsalt"] = "alb"  # reproducible SVG ids
    plt.rcParams["text.parse_math"] = False  # names from results are text, never mathtext
    return plt


def _save(fig: Any, out_dir: Path, stem: str, title: str) -> Figure:
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    fig.savefig(png, dpi=120)
    fig.savefig(svg, metadata={"Date": None})
    plt.close(fig)
    return Figure(title, f"{out_dir.name}/{png.name}", f"{out_dir.name}/{svg.name}")


def _seed_stats(rows: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    per_seed = rows.groupby(["n_labeled", "seed"])[value].mean()
    stats = per_seed.groupby("n_labeled").agg(["mean", "std"]).fillna({"std": 0.0})
    return stats.sort_index()


def learning_curves(frame: pd.DataFrame, out_dir: Path) -> list[Figure]:
    """Accuracy vs labels, mean with a ± std band over seeds, one panel per protocol."""
    plt = _pyplot()
    figures = []
    for protocol, (title, _) in protocol_titles(frame).items():
        rows = frame[frame["protocol"] == protocol]
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for label, srows in rows.groupby("strategy_label", sort=True):
            stats = _seed_stats(srows)
            x, m, s = stats.index.to_numpy(), 100 * stats["mean"].to_numpy(), 100 * stats["std"].to_numpy()
            ax.plot(x, m, marker="o", markersize=3, label=str(label))
            ax.fill_between(x, m - s, m + s, alpha=0.2)
        ax.set(xlabel="labeled samples", ylabel=f"test {metric_name(rows)} (%)", title=title)
        ax.legend(fontsize=7)
        figures.append(_save(fig, out_dir, f"curves-{_safe(protocol.slug)}", title))
    return figures


def _difference_groups(frame: pd.DataFrame) -> list[tuple[str, list[Protocol]]]:
    """(setting, protocols that differ only in that setting), for every swept setting."""
    protocols = list(dict.fromkeys(frame["protocol"]))
    groups = []
    keys = sorted({k for p in protocols for k, _ in p.settings})
    for key in keys:
        by_rest: dict[tuple[Any, ...], list[Protocol]] = {}
        dependent = DEPENDENT_SETTINGS.get(key, ())
        for p in protocols:
            rest = tuple((k, str(v)) for k, v in p.settings if k != key and not k.startswith(dependent))
            by_rest.setdefault(rest, []).append(p)
        groups += [(key, ps) for ps in by_rest.values() if len({str(p.get(key)) for p in ps}) > 1]
    return groups


def difference_curves(frame: pd.DataFrame, out_dir: Path) -> list[Figure]:
    """'Setting A minus setting B' per strategy, for every swept setting (warm - cold, ...)."""
    plt = _pyplot()
    figures = []
    for key, protocols in _difference_groups(frame):
        values = sorted({str(p.get(key)) for p in protocols})
        base_value = DIFFERENCE_BASELINE.get(key, values[0])
        if base_value not in values:
            base_value = values[0]
        base = next(p for p in protocols if str(p.get(key)) == base_value)
        for other in (p for p in protocols if p is not base):
            where = f"{other.get('dataset')} / {other.get('backbone')}"
            title = f"{key}: {other.get(key)} minus {base_value} — {where}"
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            a_rows, b_rows = frame[frame["protocol"] == other], frame[frame["protocol"] == base]
            plotted = 0
            for label in sorted(set(a_rows["strategy_label"]) & set(b_rows["strategy_label"])):
                a = _seed_stats(a_rows[a_rows["strategy_label"] == label])
                b = _seed_stats(b_rows[b_rows["strategy_label"] == label])
                common = a.index.intersection(b.index)
                if common.empty:
                    continue
                diff = 100 * (a.loc[common, "mean"] - b.loc[common, "mean"]).to_numpy()
                band = 100 * np.sqrt(a.loc[common, "std"] ** 2 + b.loc[common, "std"] ** 2).to_numpy()
                x = common.to_numpy()
                ax.plot(x, diff, marker="o", markersize=3, label=str(label))
                ax.fill_between(x, diff - band, diff + band, alpha=0.15)
                plotted += 1
            if not plotted:
                plt.close(fig)
                continue
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set(xlabel="labeled samples", ylabel="accuracy difference (points)", title=title)
            ax.legend(fontsize=7)
            stem = f"diff-{_safe(key)}-{_safe(str(other.get(key)))}-{other.id}-{base.id}"
            figures.append(_save(fig, out_dir, stem, title))
    return figures


def efficiency_curves(frame: pd.DataFrame, out_dir: Path) -> list[Figure]:
    """Seed 001 A.12: labels random needs / labels the strategy needs, against target accuracy."""
    plt = _pyplot()
    figures = []
    for protocol, (title, _) in protocol_titles(frame).items():
        rows = frame[frame["protocol"] == protocol]
        random_rows = rows[rows["strategy_label"] == "random"]
        others = [(label, r) for label, r in rows.groupby("strategy_label", sort=True) if label != "random"]
        if random_rows.empty or not others:
            continue
        reference = mean_curve(random_rows)
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for label, srows in others:
            curve = mean_curve(srows)
            targets = efficiency_targets([reference, curve])
            ax.plot(100 * targets, label_efficiency(reference, curve, targets), label=str(label))
        ax.axhline(1, color="black", linewidth=0.8)
        ax.set(xlabel="target test accuracy (%)", ylabel="labels(random) / labels(strategy)",
               title=f"Labeling efficiency — {title}")
        ax.legend(fontsize=7)
        figures.append(_save(fig, out_dir, f"efficiency-{_safe(protocol.slug)}", title))
    return figures


def annotation_curves(frame: pd.DataFrame, out_dir: Path, overrides: Mapping[str, float] | None = None
                      ) -> list[Figure]:
    """Accuracy vs human annotation hours (labels x the dataset's seconds per label, report/costs.py)."""
    from benchmark.report.costs import annotation_hours, label_cost

    plt = _pyplot()
    figures = []
    for protocol, (title, _) in protocol_titles(frame).items():
        rows = frame[frame["protocol"] == protocol]
        cost = label_cost(str(protocol.get("dataset")), overrides)
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for label, srows in rows.groupby("strategy_label", sort=True):
            stats = _seed_stats(srows)
            x = annotation_hours(stats.index.to_numpy(), cost.seconds)
            m, s = 100 * stats["mean"].to_numpy(), 100 * stats["std"].to_numpy()
            ax.plot(x, m, marker="o", markersize=3, label=str(label))
            ax.fill_between(x, m - s, m + s, alpha=0.2)
        ax.set(xlabel=f"annotation hours ({cost.seconds:g} s per label)", ylabel="test accuracy (%)",
               title=f"Accuracy vs annotation time — {title}")
        ax.legend(fontsize=7)
        figures.append(_save(fig, out_dir, f"annotation-{_safe(protocol.slug)}", title))
    return figures
