"""`alb check`: compare a suite's results with its published references and/or a saved baseline."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from benchmark.report.references import MARKS, Comparison, Reference

DEFAULT_ABS_TOL = 0.01  # one accuracy point
DEFAULT_K = 2.0


@dataclass
class CheckOutcome:
    comparisons: list[Comparison]

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.comparisons)

    def failed(self, allow_missing: bool) -> bool:
        return self.count("regression") > 0 or (not allow_missing and self.count("missing") > 0)


def run_check(suite_path: Path, results_dir: Path, baseline: Path | None, abs_tol: float, k: float,
              published: bool = True) -> CheckOutcome:
    from benchmark.errors import ConfigError
    from benchmark.published import resolve_references
    from benchmark.report.frame import with_labels
    from benchmark.report.references import compare, from_published, load_baseline
    from benchmark.store import load_results
    from benchmark.suite import load_suite

    suite = load_suite(suite_path)
    refs: list[Reference] = []
    if published and suite.references:
        refs += from_published(resolve_references(suite.references))
    if baseline is not None:
        refs += load_baseline(baseline)
    if not refs:
        raise ConfigError(f"{suite_path}: nothing to check against: the suite has no 'references' and no "
                          "--baseline FILE was given")
    frame = load_results(Path(results_dir) / suite.name)
    cell_ids = {c.id for c in suite.cells}
    if not frame.empty:
        frame = with_labels(frame[frame["cell_id"].isin(cell_ids)])
    comparisons = [c for ref in refs for c in compare(ref, frame, abs_tol, k)]
    return CheckOutcome(comparisons)


def print_report(outcome: CheckOutcome) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="alb check", show_lines=False)
    for column in ("reference", "labels", "reference value", "ours (mean ± std, seeds)", "diff", "verdict",
                   "why"):
        table.add_column(column)

    def pct(v: float | None) -> str:
        return "" if v is None else f"{100 * v:.2f}"

    for c in outcome.comparisons:
        ref = c.reference
        ref_value = pct(ref.mean) + (f" ± {pct(ref.std)}" if ref.std is not None else "")
        ours = "" if c.ours_mean is None else f"{pct(c.ours_mean)} ± {pct(c.ours_std or 0.0)} ({c.seeds})"
        labels = "final" if ref.n_labeled is None else str(ref.n_labeled)
        diff = "" if c.difference is None else f"{100 * c.difference:+.2f}"
        table.add_row(ref.id, labels, ref_value, ours, diff, MARKS[c.status], c.reason)
    console = Console(width=200 if not sys.stdout.isatty() else None)
    console.print(table)
    summary = ", ".join(f"{outcome.count(s)} {s}" for s in MARKS)
    console.print(f"alb check: {summary} (accuracy in %)")
