"""`alb check`: compare a suite's results with its published references and/or a saved baseline."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.report.references import MARKS, Comparison, Reference

if TYPE_CHECKING:
    from benchmark.suite import Assumption

DEFAULT_ABS_TOL = 0.01  # one accuracy point
DEFAULT_K = 2.0


@dataclass
class CheckOutcome:
    comparisons: list[Comparison]
    assumptions: list[Assumption] = field(default_factory=list)  # the suite's, numbered A1, A2, ...
    assumed: list[str] = field(default_factory=list)  # per comparison: 'A1 A3', the assumptions its cells use

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
    return CheckOutcome(comparisons, suite.assumptions, _assumed(comparisons, frame, suite.assumptions))


def save_suite_baseline(suite_path: Path, results_dir: Path, target: Path) -> int:
    """Write the finished results of every cell of the suite as a baseline file; the number of entries.
    Raises AlbError while a cell is unfinished."""
    from benchmark.errors import AlbError
    from benchmark.report.frame import with_labels
    from benchmark.report.references import baseline_references, save_baseline
    from benchmark.store import load_results
    from benchmark.suite import load_suite

    suite = load_suite(suite_path)
    frame = load_results(Path(results_dir) / suite.name)
    done = {c.id for c in suite.cells} & set(frame.get("cell_id", []))
    if len(done) < len(suite.cells):
        raise AlbError(f"only {len(done)} of {len(suite.cells)} cells of '{suite.name}' are finished in "
                       f"{results_dir}; run 'alb run {suite_path}' first")
    refs = baseline_references(with_labels(frame[frame["cell_id"].isin(done)]), suite.name)
    save_baseline(refs, target, suite.name)
    return len(refs)


def _assumed(comparisons: list[Comparison], frame: object, assumptions: list[Assumption]) -> list[str]:
    """Per comparison, the suite's assumptions that hold for the cells it compared."""
    from benchmark.assumptions import assumed_marks, compared_cells

    if not assumptions:
        return ["" for _ in comparisons]
    return [assumed_marks(assumptions, compared_cells(frame, c.protocol, c.reference.strategy, c.reference.setting))
            for c in comparisons]


def _difference_cells(c: Comparison) -> tuple[str, str]:
    """ours - reference in points with its t interval (confidence from --k), and the test's p-value."""
    if c.difference is None:
        return "", ""
    text = f"{100 * c.difference:+.2f}"
    test = c.test
    if test is None or test.p is None:
        return text, "not testable" if test is not None else ""
    if test.low is not None and test.high is not None:
        text += f" [{100 * test.low:+.2f}, {100 * test.high:+.2f}] ({100 * test.confidence:.1f}%)"
    return text, f"{test.p:.3g}"


def print_report(outcome: CheckOutcome) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="alb check", show_lines=False)
    for column in ("reference", "labels", "reference value", "ours (mean ± std, seeds)", "diff [t interval]",
                   "p (Welch)", "verdict", "why", "component versions"):
        table.add_column(column)
    if outcome.assumptions:  # which of the suite's assumptions the compared cells use (legend below)
        table.add_column("assumed")

    def pct(v: float | None) -> str:
        return "" if v is None else f"{100 * v:.2f}"

    for i, c in enumerate(outcome.comparisons):
        ref = c.reference
        ref_value = pct(ref.mean) + (f" ± {pct(ref.std)}" if ref.std is not None else "")
        ours = "" if c.ours_mean is None else f"{pct(c.ours_mean)} ± {pct(c.ours_std or 0.0)} ({c.seeds})"
        labels = "final" if ref.n_labeled is None else str(ref.n_labeled)
        diff, p = _difference_cells(c)
        table.add_row(ref.id, labels, ref_value, ours, diff, p, MARKS[c.status], c.reason, c.versions,
                      *([outcome.assumed[i] if i < len(outcome.assumed) else ""] if outcome.assumptions else []))
    console = Console(width=200 if not sys.stdout.isatty() else None)
    console.print(table)
    summary = ", ".join(f"{outcome.count(s)} {s}" for s in MARKS)
    console.print(f"alb check: {summary} (accuracy in %)")
    if outcome.assumptions:
        console.print("assumptions of the suite (settings its paper leaves open; the 'assumed' column marks the "
                      "comparisons whose cells use them):", markup=False, highlight=False)
        for i, a in enumerate(outcome.assumptions):
            console.print(f"  A{i + 1}  {a.text()}", markup=False, highlight=False)
