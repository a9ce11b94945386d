"""`alb check`: compare a suite's results with its published references and/or a saved baseline.

Only the cells the suite lists count, and they are checked before anything is compared: an accuracy that is
not a number in [0, 1] (NaN, an infinity, 1.2, -0.1) stops the check with InvalidResultsError (the CLI exits
2), naming the cell's file and row. A comparison some of whose cells are unfinished (a seed missing) is
"missing", with the absent cells listed and the verdict of the seeds present; under --allow-missing that
verdict still fails the check when it is a regression.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.errors import AlbError, escape_unsafe
from benchmark.report.references import MARKS, Comparison, Reference

if TYPE_CHECKING:
    import pandas as pd
    from rich.text import Text

    from benchmark.suite import Assumption, Suite

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
        """A regression fails; so does a missing result, unless allowed (then a regression over the seeds
        that are present still fails)."""
        if self.count("regression") > 0:
            return True
        if not allow_missing:
            return self.count("missing") > 0
        return any(c.status == "missing" and c.partial == "regression" for c in self.comparisons)


class InvalidResultsError(AlbError):
    """A result file of the suite holds values no finished cell can produce (the CLI exits 2)."""


def run_check(suite_path: Path, results_dir: Path, baseline: Path | None, abs_tol: float, k: float,
              published: bool = True) -> CheckOutcome:
    from benchmark.errors import ConfigError
    from benchmark.published import resolve_references
    from benchmark.report.frame import with_labels
    from benchmark.report.references import compare, from_published, load_baseline
    from benchmark.store import load_suite_cells
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
    frame = load_suite_cells(results_dir, suite.name, [c.id for c in suite.cells])
    if not frame.empty:
        check_accuracies(frame, Path(results_dir), suite.name)
        frame = with_labels(frame)
    comparisons = [c for ref in refs for c in compare(ref, frame, abs_tol, k)]
    mark_unfinished_cells(comparisons, frame, suite)
    return CheckOutcome(comparisons, suite.assumptions, _assumed(comparisons, frame, suite.assumptions))


def check_accuracies(frame: pd.DataFrame, results_dir: Path, suite_name: str) -> None:
    """Raise InvalidResultsError, naming the file and row, for an accuracy that is not a number in [0, 1]."""
    import numpy as np
    import pandas as pd

    from benchmark.store import SuiteStore

    if frame.empty:
        return
    from benchmark.report.frame import with_metric

    frame = with_metric(frame)  # a detection cell's mAP@0.5 is checked like an accuracy
    store = SuiteStore(results_dir, suite_name)
    if frame["accuracy"].isna().all() and "map_50" not in frame.columns:
        raise InvalidResultsError(f"the results of '{suite_name}' in {store.dir} have no 'accuracy' column: "
                                  "they are not alb result files")
    values = pd.to_numeric(frame["accuracy"], errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(values) & (values >= 0.0) & (values <= 1.0))
    if not bad.any():
        return
    rows = frame.groupby("cell_id", sort=False).cumcount().to_numpy()  # the row within its cell's file
    shown = [f"{store.cell_file(cell)} row {row}: accuracy {_shown_value(value)}"
             for cell, row, value in zip(frame["cell_id"].to_numpy()[bad], rows[bad],
                                         frame["accuracy"].to_numpy()[bad], strict=True)]
    more = f" (and {len(shown) - 5} more)" if len(shown) > 5 else ""
    raise InvalidResultsError(f"{len(shown)} result row(s) of '{suite_name}' hold an accuracy outside [0, 1] "
                              f"(or not a number): {'; '.join(shown[:5])}{more}. The files are damaged: delete "
                              "them and run the cells again.")


def _shown_value(value: Any) -> str:
    import numpy as np

    return repr(float(value)) if isinstance(value, int | float | np.number) else repr(value)


def mark_unfinished_cells(comparisons: list[Comparison], frame: pd.DataFrame, suite: Suite) -> None:
    """A comparison whose cells are a part of the suite's (the same configuration with other seeds
    unfinished) becomes "missing": its reason lists the absent cells and its verdict moves to ``partial``."""
    from benchmark.assumptions import compared_cells

    if frame.empty:
        return
    done = set(frame["cell_id"])
    groups: dict[str, list[Any]] = {}
    group_of: dict[str, str] = {}
    for cell in suite.cells:
        key = _without_seed(cell.config.canonical())
        groups.setdefault(key, []).append(cell)
        group_of[cell.id] = key
    for c in comparisons:
        if c.status not in ("pass", "regression", "improved"):
            continue
        compared = compared_cells(frame, c.protocol, c.reference.strategy, c.reference.setting)
        expected = [cell for key in sorted({group_of[i] for i in compared if i in group_of}) for cell in groups[key]]
        absent = [cell for cell in expected if cell.id not in done]
        if not absent:
            continue
        listed = ", ".join(f"{cell.label()} [{cell.id}]" for cell in absent[:6])
        more = f", and {len(absent) - 6} more" if len(absent) > 6 else ""
        c.partial, c.status = c.status, "missing"
        c.reason = (f"{len(absent)} of {len(expected)} cells unfinished: {listed}{more}; the {c.seeds} seed(s) "
                    f"present give '{c.partial}' ({c.reason})")


def _without_seed(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)


def save_suite_baseline(suite_path: Path, results_dir: Path, target: Path) -> int:
    """Write the finished results of every cell of the suite as a baseline file; the number of entries.
    Raises AlbError while a cell is unfinished, InvalidResultsError for an accuracy out of [0, 1]."""
    from benchmark.report.frame import with_labels
    from benchmark.report.references import baseline_references, save_baseline
    from benchmark.store import load_suite_cells
    from benchmark.suite import load_suite

    suite = load_suite(suite_path)
    frame = load_suite_cells(results_dir, suite.name, [c.id for c in suite.cells])
    done = {c.id for c in suite.cells} & set(frame.get("cell_id", []))
    if len(done) < len(suite.cells):
        raise AlbError(f"only {len(done)} of {len(suite.cells)} cells of '{suite.name}' are finished in "
                       f"{results_dir}; run 'alb run {suite_path}' first")
    frame = frame[frame["cell_id"].isin(done)]
    check_accuracies(frame, Path(results_dir), suite.name)
    refs = baseline_references(with_labels(frame), suite.name)
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


def _plain_text(text: str) -> Text:
    """A table cell shown as written: a baseline's id or reason may hold '[/]' (rich markup) or escapes."""
    from rich.text import Text

    return Text(escape_unsafe(text, newlines=False))


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
        cells = [ref.id, labels, ref_value, ours, diff, p, MARKS[c.status], c.reason, c.versions,
                 *([outcome.assumed[i] if i < len(outcome.assumed) else ""] if outcome.assumptions else [])]
        table.add_row(*(_plain_text(cell) for cell in cells))
    console = Console(width=200 if not sys.stdout.isatty() else None)
    console.print(table)
    summary = ", ".join(f"{outcome.count(s)} {s}" for s in MARKS)
    console.print(f"alb check: {summary} (accuracy in %)")
    if outcome.assumptions:
        console.print("assumptions of the suite (settings its paper leaves open; the 'assumed' column marks the "
                      "comparisons whose cells use them):", markup=False, highlight=False)
        for i, a in enumerate(outcome.assumptions):
            console.print(f"  A{i + 1}  {a.text()}", markup=False, highlight=False)
