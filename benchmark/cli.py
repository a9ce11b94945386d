"""The ``alb`` command line: argument parsing only; the work lives in the modules it calls."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark import __version__
from benchmark.errors import AlbError

if TYPE_CHECKING:
    from benchmark.store import SuiteStore
    from benchmark.suite import Suite

DEFAULT_RESULTS = Path("results")
SUITES_DIR = Path("suites")
EXIT_FAILED_CELLS = 1
EXIT_USAGE = 2


def _add_suite_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", type=Path, help="suite file, e.g. suites/quickstart.yaml")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                   help="results folder (default: results/); the suite's cells go to RESULTS/<suite name>/")


def _label_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected label counts like 1000,5000, got '{text}'") from None
    if not counts or min(counts) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive label counts like 1000,5000, got '{text}'")
    return counts


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alb",
                                     description="alb: reproducible deep active learning benchmark")
    parser.add_argument("--version", action="version", version=f"alb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every unfinished cell of a suite (resumable)")
    _add_suite_args(run)
    run.add_argument("--data-dir", type=Path, default=None,
                     help="where datasets are downloaded / looked for (default: $ALB_DATA or ./data)")
    run.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    run.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                     help="auto: bf16 autocast + channels-last on CUDA, fp32 on CPU; recorded with the results")
    run.add_argument("--compile", action="store_true",
                     help="torch.compile the backbones (faster on GPU after a compile warm-up of ~1 min; "
                          "needs a C++ compiler on CPU); recorded with the results as 'compiled'")
    run.add_argument("--threads", type=int, default=None,
                     help="CPU threads for torch (default: torch's choice). Results are bit-identical only "
                          "for the same count; give each of several processes on one CPU machine cores/N")
    run.add_argument("--force", action="store_true", help="recompute cells that are already finished")
    run.add_argument("--dry-run", action="store_true",
                     help="list the cells that would run and their cost (images through the backbone), run nothing")
    run.add_argument("--throughput", type=_positive_float, default=None, metavar="IMG_PER_S",
                     help="with --dry-run: training images per second of your machine (measure it with "
                          "'python -m benchmark.perf.training'), for a time estimate; no default, since it "
                          "depends on the GPU, backbone and image size")
    run.add_argument("--quiet", action="store_true", help="plain log lines instead of a live display")

    status = sub.add_parser("status", help="list each cell of a suite as done / running / failed / pending")
    _add_suite_args(status)

    check = sub.add_parser("check", help="compare results with the published numbers / a baseline; "
                                         "exit 1 on a regression")
    _add_suite_args(check)
    check.add_argument("--baseline", type=Path, default=None,
                       help="JSON baseline of our own results to compare with (see --save-baseline)")
    check.add_argument("--tolerance", type=float, default=None,
                       help="differences within it always pass; as a fraction (default 0.01 = 1 point)")
    check.add_argument("--k", type=float, default=None,
                       help="significance of a regression / improvement beyond the tolerance: Welch t-test "
                            "over seeds at two-sided level 2(1-Phi(k)) (default 2: p < 0.0455)")
    check.add_argument("--no-published", action="store_true",
                       help="ignore the suite's published references (baseline only)")
    check.add_argument("--allow-missing", action="store_true",
                       help="do not fail when a reference has no results yet")
    check.add_argument("--save-baseline", type=Path, default=None, metavar="FILE",
                       help="write the suite's current results as a baseline file and exit")

    report = sub.add_parser("report", help="tables, learning curves, difference and efficiency plots, "
                                           "leaderboard (HTML, LaTeX, Markdown)")
    report.add_argument("result_dirs", nargs="*", type=Path, default=[DEFAULT_RESULTS],
                        help="result folders (default: results/)")
    report.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default: reports/)")
    report.add_argument("--at", type=_label_counts, default=None, metavar="N,N,...",
                        help="label counts for the tables, e.g. 2000,5000,10000 (default: 5 evenly spaced rounds)")

    lister = sub.add_parser("list", help="show what is registered")
    lister.add_argument("what", choices=["strategies", "backbones", "datasets", "suites"])
    lister.add_argument("--details", action="store_true", help="show descriptions and facts")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.data.loading import resolve_data_dir
    from benchmark.runner import run_suite
    from benchmark.store import SuiteStore
    from benchmark.suite import load_suite

    suite = load_suite(args.suite)
    store = SuiteStore(args.results, suite.name)
    if args.dry_run:
        return _dry_run(suite, store, args.force, args.throughput)
    if args.throughput is not None:
        raise AlbError("--throughput only estimates the time of a --dry-run; add --dry-run")

    from functools import partial

    from benchmark.progress import make_reporter

    if args.threads is not None and args.threads < 1:
        raise AlbError(f"--threads must be at least 1, got {args.threads}")
    outcome = run_suite(suite, store, args.device, resolve_data_dir(args.data_dir), force=args.force,
                        threads=args.threads, precision=args.precision, compile=args.compile,
                        reporter_factory=partial(make_reporter, quiet=args.quiet))
    print(f"suite '{suite.name}': {outcome.done} run, {outcome.cached} cached, {outcome.failed} failed, "
          f"{outcome.busy} running elsewhere ({len(suite.cells)} cells) -> {store.dir}")
    if outcome.failed:
        print(f"{outcome.failed} cell(s) failed; tracebacks: {store.dir}/*.failed.log. "
              "Rerun to retry them.", file=sys.stderr)
        return EXIT_FAILED_CELLS
    return 0


def _dry_run(suite: Suite, store: SuiteStore, force: bool, throughput: float | None) -> int:
    """The cells that would run, then their cost (benchmark/cost.py)."""
    from benchmark.cost import cost_lines, suite_cost

    todo = [c for c in suite.cells if force or not store.is_done(c.id)]
    done = len(suite.cells) - len(todo)
    print(f"suite '{suite.name}': {len(suite.cells)} cells ({done} done, {len(todo)} pending), "
          f"{len(todo)} to run -> {store.dir}")
    for cell in todo:
        b = cell.config.budget
        print(f"  {cell.id}  {cell.label()}  ({cell.config.dataset}/{cell.config.backbone}, "
              f"{b.initial}+{b.rounds}x{b.query} labels, {cell.config.training.epochs} epochs)")
    pending, by_strategy = suite_cost(c.config for c in todo)
    total, _ = suite_cost(c.config for c in suite.cells)
    print("\n".join(cost_lines(pending, total, by_strategy, throughput)))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from benchmark.status import status_lines
    from benchmark.store import SuiteStore
    from benchmark.suite import load_suite

    suite = load_suite(args.suite)
    print("\n".join(status_lines(suite, SuiteStore(args.results, suite.name))))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from benchmark.check import DEFAULT_ABS_TOL, DEFAULT_K, print_report, run_check, save_suite_baseline

    tolerance = DEFAULT_ABS_TOL if args.tolerance is None else args.tolerance
    k = DEFAULT_K if args.k is None else args.k
    if tolerance < 0 or k < 0:
        raise AlbError("--tolerance and --k must be non-negative")
    if args.save_baseline is not None:
        entries = save_suite_baseline(args.suite, args.results, args.save_baseline)
        print(f"baseline with {entries} entries written to {args.save_baseline}")
        return 0
    outcome = run_check(args.suite, args.results, args.baseline, tolerance, k,
                        published=not args.no_published)
    print_report(outcome)
    return 1 if outcome.failed(args.allow_missing) else 0


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.report.build import build_report

    output = build_report(args.result_dirs, args.out, args.at)
    print(f"report: {len(output.pages)} files and {len(output.figures)} figures in {output.out_dir}; "
          f"open {output.out_dir / 'index.html'}")
    return 0


def _parameters(cls: type) -> str:
    """A strategy class's constructor parameters with their defaults."""
    import inspect

    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return ", ".join(f"{p.name}={p.default!r}" for p in params) or "none"


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "suites":
        for path in sorted(SUITES_DIR.glob("*.yaml")):
            if args.details:
                from benchmark.suite import load_suite

                suite = load_suite(path)
                print(f"{path}  {len(suite.cells)} cells  {suite.description.strip()}")
                for i, assumption in enumerate(suite.assumptions):
                    print(f"    A{i + 1} assumed: {assumption.text()}")
            else:
                print(path)
        return 0
    from benchmark.data import DATASETS
    from benchmark.models import BACKBONES
    from benchmark.registry import shown_facts
    from benchmark.strategies import STRATEGIES

    registry = {"strategies": STRATEGIES, "backbones": BACKBONES, "datasets": DATASETS}[args.what]
    width = max(len(name) for name in registry.names())
    for entry in registry:
        if args.details:
            print(f"{entry.name:<{width}}  {entry.summary}\n{'':<{width}}  [{shown_facts(entry.info)}]")
            if args.what == "strategies" and entry.info.kind == "plain":
                print(f"{'':<{width}}  parameters: {_parameters(entry.load())}")
        else:
            print(entry.name)
    if args.details and args.what == "datasets":
        print("\nby path: 'npz:PATH' (arrays x_train, y_train, x_test, y_test; uint8 images) and "
              "'image_folder:PATH' / 'image_folder:PATH:SIZE' (PATH/train/<class>/*, PATH/test/<class>/*, "
              "resized to SIZE, default 32)")
    return 0


COMMANDS = {"run": cmd_run, "status": cmd_status, "check": cmd_check, "report": cmd_report,
            "list": cmd_list}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except AlbError as exc:
        print(f"alb: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("alb: interrupted; progress up to the last finished round is saved, rerun to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
