"""The ``alb`` command line: argument parsing only; the work lives in the modules it calls."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmark import __version__
from benchmark.errors import AlbError, AlbWarning, ConfigError, escape_unsafe

DEFAULT_RESULTS = Path("results")
SUITES_DIR = Path("suites")
EXIT_FAILED_CELLS = 1
EXIT_USAGE = 2


def _add_suite_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", type=Path, help="suite file, e.g. suites/quickstart.yaml")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                   help="results folder (default: results/); finished cells go to RESULTS/cells/, the suite's "
                   "log and cell list to RESULTS/<suite name>/")


def _label_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected label counts like 1000,5000, got '{text}'") from None
    if not counts or min(counts) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive label counts like 1000,5000, got '{text}'")
    return counts


def _label_seconds(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not name or not seconds > 0 or seconds == float("inf"):
            raise argparse.ArgumentTypeError(f"expected DATASET=SECONDS with positive seconds, e.g. cifar10=3, "
                                             f"got '{part}'")
        out[name.strip()] = seconds
    if not out:
        raise argparse.ArgumentTypeError(f"expected DATASET=SECONDS, e.g. cifar10=3, got '{text}'")
    return out


def _number(text: str, cast: type[int] | type[float], ok: Callable[[float], bool], expected: str) -> Any:
    """``text`` as ``cast`` when ``ok`` holds for it, else an argparse error 'expected <expected>, got ...'."""
    try:
        value = cast(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        shown = value if cast is int and value is not None else _shown(text)  # a count as itself, else as typed
        raise argparse.ArgumentTypeError(f"expected {expected}, got {shown}")
    return value


def _positive_float(text: str) -> float:
    return float(_number(text, float, lambda v: v > 0, "a positive number"))


MAX_THREADS = 1024  # torch threads per cell on a remote node (ray, slurm); locally at most this machine's cores
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,3})?")


def _shown(text: str) -> str:
    """A bad value as repr shows it (control characters escaped), cut to 60 characters."""
    shown = repr(text)
    return shown if len(shown) <= 60 else f"{shown[:60]}... ({len(text)} characters)"


def _device(text: str) -> str:
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N (N: a GPU's index), got {_shown(text)}")
    return text


def _threads(text: str) -> int:
    return int(_number(text, int, lambda v: 1 <= v <= MAX_THREADS, f"1 to {MAX_THREADS} threads"))


def _non_negative_finite(text: str) -> float:
    return float(_number(text, float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"))


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    return int(_number(text, int, lambda v: v >= 1, "a whole number of workers (at least 1) or 'auto'"))


def _add_executor_args(run: argparse.ArgumentParser) -> None:
    """Who runs the cells (benchmark/executors/; README 'Running on a cluster')."""
    group = run.add_argument_group("executors")
    group.add_argument("--cell", default=None, metavar="ID",
                       help="run only this cell (its id or a unique prefix; ids: --dry-run), in this process")
    group.add_argument("--executor", choices=["local", "ray", "slurm"], default="local",
                       help="local (default): this machine; ray: one Ray task per cell; slurm: one job array")
    group.add_argument("--workers", type=_workers, default=None, metavar="N|auto",
                       help="local: N worker processes, each with cores/N torch threads unless --threads. "
                            "Default $ALB_WORKERS, else auto: on the CPU without --threads one 1-thread worker "
                            "per core, on several GPUs one worker per GPU, else 1 (this process); never more "
                            "than pending cells")
    group.add_argument("--address", default=None, help="ray: address of a running cluster (default: start one here)")
    group.add_argument("--cpus-per-cell", type=int, default=None, help="ray / slurm: CPUs (and torch threads) per cell")
    group.add_argument("--gpus-per-cell", type=float, default=None, help="ray / slurm: GPUs per cell (ray: fractions)")
    group.add_argument("--max-retries", type=int, default=3,
                       help="ray: reruns of a task whose worker died; the cell resumes from its last round")
    group.add_argument("--executor-config", type=Path, default=None, metavar="FILE",
                       help="slurm: YAML with partition, time, cpus_per_cell, gpus_per_cell, mem_gb, setup, ...")
    group.add_argument("--partition", default=None, help="slurm: partition (overrides the config file)")
    group.add_argument("--time", default=None, metavar="MIN|HH:MM:SS", help="slurm: time limit per cell")
    group.add_argument("--wait", action="store_true", help="slurm: wait for the array instead of returning")


def _add_sharing_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """alb bundle / verify / leaderboard (README: "Sharing results")."""
    bundle = sub.add_parser("bundle", help="write a suite's finished cells and a manifest into one .tar.gz")
    _add_suite_args(bundle)
    bundle.add_argument("--out", type=Path, required=True, help="the bundle file to write, e.g. quickstart.tar.gz")
    bundle.add_argument("--submitter", default=None, metavar="NAME", help="who ran it (shown on leaderboards)")
    bundle.add_argument("--url", default=None, help="where to learn more (paper, repository)")
    bundle.add_argument("--note", default=None, metavar="TEXT", help="a free note")
    bundle.add_argument("--allow-partial", action="store_true",
                        help="bundle the finished cells of a suite with unfinished or failed ones (marked partial)")
    verify = sub.add_parser("verify", help="check a bundle's integrity and rerun some of its cells; "
                                           "exit 1 when anything was changed or does not reproduce")
    verify.add_argument("bundle", type=Path, help="a file written by 'alb bundle'")
    verify.add_argument("--rerun", type=int, default=0, metavar="K", help="rerun K cells and compare each round")
    verify.add_argument("--seed", type=int, default=0, metavar="S", help="which cells --rerun draws (default 0)")
    verify.add_argument("--tolerance", type=_non_negative_finite, default=None,
                        help="accuracy difference allowed per round when the rerun's device, precision or "
                             "threads differ from the bundle's (default 0.05); identical setups must match exactly")
    verify.add_argument("--data-dir", type=Path, default=None, help="datasets for --rerun (default: $ALB_DATA or "
                                                                    "./data)")
    verify.add_argument("--record", action="store_true",
                        help="write the outcome to BUNDLE.verify.json, which 'alb leaderboard' shows")
    board = sub.add_parser("leaderboard", help="merge bundles into a static leaderboard site")
    board.add_argument("bundles", type=Path, nargs="+", help="bundle files written by 'alb bundle'")
    board.add_argument("--out", type=Path, required=True, help="folder of the site (index.html, leaderboard.json)")


def _add_data_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """alb data fetch / list (README: "Datasets: fetch once, check, run offline")."""
    data = sub.add_parser("data", help="fetch and verify the datasets (and ImageNet weights) suites need; list them")
    actions = data.add_subparsers(dest="data_command", required=True)
    fetch = actions.add_parser("fetch", help="download, verify and unpack what suites or datasets need")
    fetch.add_argument("items", nargs="+", metavar="SUITE|DATASET", help="suite files and/or dataset names")
    listed = actions.add_parser("list", help="every known dataset: present or not, size, checksum, license, citation")
    for p in (fetch, listed):
        p.add_argument("--data-dir", type=Path, default=None, help="the data folder (default: $ALB_DATA or ./data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alb",
                                     description="alb: reproducible deep active learning benchmark")
    parser.add_argument("--version", action="version", version=f"alb {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="print the full traceback of an error (before the command: alb --debug run ...)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every unfinished cell of a suite (resumable)")
    _add_suite_args(run)
    run.add_argument("--data-dir", type=Path, default=None,
                     help="where datasets are downloaded / looked for (default: $ALB_DATA or ./data)")
    run.add_argument("--device", type=_device, default="auto",
                     help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    run.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                     help="auto: bf16 autocast + channels-last on CUDA, fp32 on CPU; recorded with the results")
    run.add_argument("--compile", action="store_true",
                     help="torch.compile the backbones (faster on GPU after a compile warm-up of ~1 min; "
                          "needs a C++ compiler on CPU); recorded with the results as 'compiled'")
    run.add_argument("--threads", type=_threads, default=None,
                     help="CPU threads for torch per cell (default: cores/N with N workers, torch's choice in "
                          "one process); locally at most the machine's cores, on ray / slurm at most "
                          f"{MAX_THREADS}. Results are bit-identical only for the same count")
    run.add_argument("--force", action="store_true", help="recompute cells that are already finished")
    run.add_argument("--dry-run", action="store_true",
                     help="list the cells that would run and their cost (images through the backbone), run nothing")
    run.add_argument("--throughput", type=_positive_float, default=None, metavar="IMG_PER_S",
                     help="with --dry-run: training images per second of your machine (measure it with "
                          "'python -m benchmark.perf.training'), for a time estimate; no default, since it "
                          "depends on the GPU, backbone and image size")
    run.add_argument("--quiet", action="store_true", help="plain log lines instead of a live display")
    _add_executor_args(run)

    status = sub.add_parser("status", help="list each cell of a suite as done / running / failed / pending")
    _add_suite_args(status)

    check = sub.add_parser("check", help="compare results with the published numbers / a baseline; "
                                         "exit 1 on a regression")
    _add_suite_args(check)
    check.add_argument("--baseline", type=Path, default=None,
                       help="JSON baseline of our own results to compare with (see --save-baseline)")
    check.add_argument("--tolerance", type=_non_negative_finite, default=None,
                       help="differences within it always pass; as a fraction (default 0.01 = 1 point)")
    check.add_argument("--k", type=_non_negative_finite, default=None,
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

    report.add_argument("--label-seconds", type=_label_seconds, default=None, metavar="DATASET=S,...",
                        help="seconds per label for the annotation hours, e.g. cifar10=3,tiny_imagenet=12 "
                             "(default: the declared table in benchmark/report/costs.py)")

    _add_sharing_parsers(sub)
    _add_data_parser(sub)

    lister = sub.add_parser("list", help="show what is registered")
    lister.add_argument("what", choices=["strategies", "backbones", "datasets", "suites"])
    lister.add_argument("--details", action="store_true", help="show descriptions and facts")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.data.loading import resolve_data_dir
    from benchmark.store import SuiteStore
    from benchmark.suite import load_suite

    suite = load_suite(args.suite)
    store = SuiteStore(args.results, suite.name)
    if args.dry_run:
        from benchmark.cost import dry_run_lines

        print("\n".join(dry_run_lines(suite, store, args.force, args.throughput)))
        return 0
    if args.throughput is not None:
        raise AlbError("--throughput only estimates the time of a --dry-run; add --dry-run")

    from functools import partial

    from benchmark.executors import check_device_and_threads, run_with_executor
    from benchmark.progress import make_reporter

    check_device_and_threads(args)
    outcome = run_with_executor(args, suite, store, resolve_data_dir(args.data_dir),
                                partial(make_reporter, quiet=args.quiet))
    if outcome is None:  # submitted to a cluster without --wait
        return 0
    print(f"suite '{suite.name}': {outcome.done} run, {outcome.cached} cached, {outcome.failed} failed, "
          f"{outcome.busy} running elsewhere ({len(suite.cells)} cells) -> {store.dir}")
    if outcome.failed:
        print(f"{outcome.failed} cell(s) failed; tracebacks: {store.cells_dir}/*.failed.log. "
              "Rerun to retry them.", file=sys.stderr)
        return EXIT_FAILED_CELLS
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
    if args.results.exists() and not args.results.is_dir():
        raise AlbError(f"--results {args.results} is a file, not a results folder; pass the folder 'alb run' "
                       "wrote to")
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

    output = build_report(args.result_dirs, args.out, args.at, args.label_seconds)
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

                try:
                    suite = load_suite(path)
                except ConfigError as exc:  # e.g. a suite over the user's own image folder, not present here
                    print(f"{path}  not valid from this folder: {str(exc).replace(chr(10), ' ')}")
                    continue
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
            origin = "alb" if entry.origin is None else f"plugin: {entry.origin.label()}"
            print(f"{'':<{width}}  from {origin} ({entry.target})")
            if args.what == "strategies" and entry.info.kind == "plain":
                print(f"{'':<{width}}  parameters: {_parameters(registry.get(entry.name))}")
        else:
            print(entry.name)
    for name, problem in registry.problems().items():
        print(f"{name:<{width}}  (unusable plugin) {problem}", file=sys.stderr)
    if args.details and args.what == "datasets":
        print("\nby path: 'npz:PATH' (arrays x_train, y_train, x_test, y_test; uint8 images) and "
              "'image_folder:PATH' / 'image_folder:PATH:SIZE' (PATH/train/<class>/*, PATH/test/<class>/*, "
              "resized to SIZE, default 32)")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from benchmark.data import commands
    from benchmark.data.loading import resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    lines = commands.fetch(args.items, data_dir) if args.data_command == "fetch" else commands.listing(data_dir)
    print("\n".join(lines))
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from benchmark.bundles.create import write_bundle
    from benchmark.bundles.manifest import Submitter

    outcome = write_bundle(args.suite, args.results, args.out, Submitter(name=args.submitter, url=args.url,
                           note=args.note), args.allow_partial)
    m = outcome.manifest
    print(f"bundle: {len(m.cells)} of {len(m.suite.cells)} cells of suite '{m.suite.name}'"
          f"{' (PARTIAL)' if m.partial else ''} -> {outcome.path} (digest {m.digest})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from benchmark.bundles.rows import DEFAULT_TOLERANCE
    from benchmark.bundles.verify import verify_bundle, write_record

    if args.rerun < 0:
        raise AlbError(f"--rerun must be non-negative, got {args.rerun}")
    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    verification = verify_bundle(args.bundle, args.rerun, args.seed, args.data_dir, tolerance)
    print("\n".join(verification.lines()))
    if args.record:
        print(f"record: {write_record(verification)}")
    return 0 if verification.ok else 1


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchmark.leaderboard.site import build_site

    site = build_site(args.bundles, args.out)
    print(f"leaderboard: {site.boards} benchmark(s) from {site.bundles} bundle(s) in {args.out}; open "
          f"{args.out / 'index.html'}")
    return 0


COMMANDS = {"run": cmd_run, "status": cmd_status, "check": cmd_check, "report": cmd_report,
            "list": cmd_list, "bundle": cmd_bundle, "verify": cmd_verify, "leaderboard": cmd_leaderboard,
            "data": cmd_data}


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    """alb's own warnings as one line; others as Python shows them."""
    if issubclass(category, AlbWarning):
        return f"alb: warning: {escape_unsafe(str(message))}\n"
    return _PYTHON_FORMAT_WARNING(message, category, filename, lineno, line)


_PYTHON_FORMAT_WARNING = warnings.formatwarning


def _log_error(args: argparse.Namespace, text: str) -> None:
    """The traceback into the suite's events log, when the command has a suite whose folder exists."""
    with contextlib.suppress(Exception):  # best effort: the error may be about this very folder
        from benchmark.store import SuiteStore
        from benchmark.suite import load_suite

        store = SuiteStore(args.results, load_suite(args.suite).name)
        if store.dir.is_dir():
            store.log_event("error", traceback=text)


def _os_error_line(exc: OSError) -> str:
    """'Permission denied: results/x' plus what to do."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    what = exc.strerror or str(exc)
    return (f"{what}{': ' + where if where else ''}; check that path (a file where a folder belongs, "
            "permissions, a full disk) and rerun (alb --debug ... shows the traceback)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    python_format, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return COMMANDS[args.command](args)
    except AlbError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"alb: error: {escape_unsafe(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):  # output piped into `head` and the like: stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        text = traceback.format_exc()
        _log_error(args, text)
        if args.debug:
            print(text, end="", file=sys.stderr)
        print(f"alb: error: {escape_unsafe(_os_error_line(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("alb: interrupted; progress up to the last finished round is saved, rerun to resume",
              file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = python_format


if __name__ == "__main__":
    sys.exit(main())
