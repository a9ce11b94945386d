"""`alb report`: read result folders, write tables, figures, leaderboard and an index page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import __version__
from benchmark.errors import AlbError
from benchmark.report import plots
from benchmark.report.references import MARKS, Comparison, compare, from_published
from benchmark.report.render import to_html, to_latex, to_markdown
from benchmark.report.tables import Table, leaderboard_tables, results_tables
from benchmark.store import atomic_write, now_iso

DEFAULT_ABS_TOL, DEFAULT_K = 0.01, 2.0


@dataclass
class ReportOutput:
    out_dir: Path
    pages: list[Path]
    figures: list[plots.Figure]


def _write(path: Path, text: str) -> Path:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def reference_table(comparisons: list[Comparison]) -> list[Table]:
    """Every published number, our value where we have one, and the verdict."""
    by_table: dict[str, list[Comparison]] = {}
    for c in comparisons:
        by_table.setdefault(c.reference.source.split(" ")[0], []).append(c)
    tables = []
    for table_id, items in sorted(by_table.items()):
        rows = []
        for c in items:
            ref = c.reference
            ours = "" if c.ours_mean is None else f"{100 * c.ours_mean:.2f}"
            diff = "" if c.difference is None else f"{100 * c.difference:+.2f}"
            labels = "final" if ref.n_labeled is None else str(ref.n_labeled)
            rows.append([ref.id, ref.dataset, ref.backbone, ref.strategy, labels, ref.source, ours, diff,
                         MARKS[c.status], c.reason])
        tables.append(Table(f"Published: {table_id}", ["reference", "dataset", "backbone", "strategy", "labels",
                                                        "published (as printed)", "ours", "diff", "verdict", "why"],
                            rows, anchor=table_id.replace("/", "-")))
    return tables


def _provenance(frame: pd.DataFrame) -> list[list[str]]:
    rows = []
    for suite, g in frame.groupby("suite", sort=True):
        def values(column: str, frame: pd.DataFrame = g) -> str:
            return ", ".join(sorted({str(v) for v in frame[column].dropna()})) if column in frame else ""

        rows.append([str(suite), str(g["cell_id"].nunique()), values("alb_version"), values("torch_version"),
                     values("device"), values("git_commit")[:60]])
    return rows


def build_report(result_dirs: list[Path], out_dir: Path, at_labels: list[int] | None = None,
                 label_seconds: dict[str, float] | None = None) -> ReportOutput:
    from benchmark.published import all_numbers
    from benchmark.report.frame import with_labels
    from benchmark.store import load_results

    files = [str(d) for d in result_dirs if Path(d).exists() and not Path(d).is_dir()]
    if files:
        raise AlbError(f"{', '.join(files)}: a file, not a results folder; pass the folder that --results "
                       "pointed to")
    if out_dir.exists() and not out_dir.is_dir():
        raise AlbError(f"--out {out_dir} is a file; pass a folder (it is created if missing)")
    missing = [str(d) for d in result_dirs if not Path(d).is_dir()]
    if missing:
        raise AlbError(f"result folder(s) not found: {', '.join(missing)}; run 'alb run SUITE' first or pass "
                       "the folder that --results pointed to")
    raw = load_results(*result_dirs)
    if raw.empty:
        raise AlbError(f"no finished cells in {', '.join(map(str, result_dirs))}; run 'alb run SUITE' first")
    frame = with_labels(raw)
    comparisons = [c for ref in from_published(all_numbers())
                   for c in compare(ref, frame, DEFAULT_ABS_TOL, DEFAULT_K)]
    from benchmark.assumptions import read_suite_records, table_notes

    tables = results_tables(frame, comparisons, at_labels, table_notes(frame, read_suite_records(result_dirs)))
    boards = leaderboard_tables(frame)
    refs = reference_table(comparisons)

    figures_dir = out_dir / "figures"
    curves = plots.learning_curves(frame, figures_dir)
    differences = plots.difference_curves(frame, figures_dir)
    efficiency = plots.efficiency_curves(frame, figures_dir)
    annotation = plots.annotation_curves(frame, figures_dir, label_seconds)
    from benchmark.report.time_tables import annotation_table, time_saved_table

    numbers = all_numbers()
    time_tables = time_saved_table(frame, numbers) + annotation_table(frame, numbers, label_seconds)

    nav = [("index", "index.html"), ("leaderboard", "leaderboard.html"), ("tables", "tables.html"),
           ("learning curves", "curves.html"), ("differences", "differences.html"),
           ("labeling efficiency", "efficiency.html"), ("time", "time.html"),
           ("published numbers", "published.html")]
    common: dict[str, Any] = {"nav": nav, "version": __version__, "generated": now_iso(),
                              "n_cells": int(frame["cell_id"].nunique())}
    pages = [
        _write(out_dir / "leaderboard.html", to_html("tables.html.j2", title="Leaderboard", tables=boards,
                                                     first_text_column=1, intro="", **common)),
        _write(out_dir / "tables.html", to_html(
            "tables.html.j2", title="Results tables", tables=tables, first_text_column=0,
            intro="Mean ± std over seeds; [paper …] gives the published value and our difference. "
                  "'assumed' notes list the settings a suite chose where its paper is silent (the suite "
                  "file's assumptions).", **common)),
        _write(out_dir / "published.html", to_html(
            "tables.html.j2", title="Published numbers", tables=refs, first_text_column=9,
            intro="Every number transcribed from the source papers, with ours where a cell matches.", **common)),
        _write(out_dir / "curves.html", to_html("figures.html.j2", title="Learning curves", figures=curves,
                                                intro="Mean ± std over seeds.", empty="No results.", **common)),
        _write(out_dir / "differences.html", to_html(
            "figures.html.j2", title="Setting differences", figures=differences,
            intro="Setting A minus setting B, per strategy, for every swept setting (band: combined std).",
            empty="No setting was swept: add an axis such as training.start: [warm, cold] to a suite.",
            **common)),
        _write(out_dir / "efficiency.html", to_html(
            "figures.html.j2", title="Labeling efficiency", figures=efficiency,
            intro="Labels random sampling needs to reach an accuracy divided by the labels the strategy "
                  "needs (linear interpolation between rounds).",
            empty="Needs random sampling and another strategy under one protocol.", **common)),
        _write(out_dir / "time.html", to_html(
            "tables.html.j2", title="Time saved and annotation time", tables=time_tables, first_text_column=0,
            intro="Seed 000's time columns: the candidate model's training time a cell avoids (from candidate "
                  "cells, suite key candidate), and annotation hours (labels x declared seconds per label).",
            **common)),
        _write(out_dir / "annotation.html", to_html(
            "figures.html.j2", title="Accuracy vs annotation time", figures=annotation,
            intro="Mean ± std over seeds; x = labels x the dataset's seconds per label (declared; alb report "
                  "--label-seconds DATASET=S overrides).", empty="No results.", **common)),
    ]
    downloads = []
    for name, text in (("tables.md", to_markdown(tables, "alb results tables")),
                       ("tables.tex", to_latex(tables)),
                       ("leaderboard.md", to_markdown(boards, "alb leaderboard")),
                       ("leaderboard.tex", to_latex(boards)),
                       ("published.md", to_markdown(refs, "Published numbers beside ours")),
                       ("time.md", to_markdown(time_tables, "alb time saved and annotation time"))):
        pages.append(_write(out_dir / name, text))
        downloads.append(name)
    page_list = [(name, href, what) for (name, href), what in zip(nav[1:], [
        "strategies ranked by AUBC per benchmark (one exact protocol each)",
        "accuracy at chosen label counts with published values beside ours",
        "learning curves with ± std bands", "setting A minus setting B (warm − cold, ...)",
        "labels saved relative to random sampling",
        "candidate training time avoided, annotation hours (figures: annotation.html)",
        "every transcribed number and its verdict"], strict=True)]
    sources = [str(d) for d in result_dirs]
    pages.append(_write(out_dir / "index.html", to_html(
        "index.html.j2", title="alb report", pages=page_list, downloads=downloads, sources=sources,
        provenance=_provenance(frame), **common)))
    return ReportOutput(out_dir, pages, curves + differences + efficiency + annotation)
