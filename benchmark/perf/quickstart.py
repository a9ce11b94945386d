"""Wall time of the quickstart as a new user runs it, under several executors, back to back.

    python -m benchmark.perf.quickstart                        # default (auto workers) and one process
    python -m benchmark.perf.quickstart --variants default ray
    python -m benchmark.perf.quickstart --busy                  # with one competing busy process

Each variant is ``alb run suites/quickstart.yaml --quiet`` plus its flags, in a fresh results folder
(nothing cached), timed from the command's start to its exit. ``--busy`` keeps one other process
spinning on a core during every run (a pure-Python loop: what "another busy process" means on a
shared machine). Run it on an otherwise quiet machine: a second job on the cores changes every figure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS: dict[str, list[str]] = {
    "default": [],  # what the README's command does: --workers auto
    "one-process": ["--workers", "1"],  # this process, torch's default threads (alb before --workers auto)
    "one-process-1-thread": ["--workers", "1", "--threads", "1"],
    "ray": ["--executor", "ray"],
}
SUITE = Path(__file__).resolve().parents[2] / "suites" / "quickstart.yaml"


def time_variant(flags: list[str], busy: bool) -> float:
    """Seconds of one cold `alb run` of the quickstart with ``flags``."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        with tempfile.TemporaryDirectory(prefix="alb-perf-quickstart-") as results:
            command = [sys.executable, "-m", "benchmark.cli", "run", str(SUITE), "--results", results, "--quiet",
                       *flags]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
            return seconds
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["default", "one-process"])
    parser.add_argument("--busy", action="store_true", help="one competing busy process during every run")
    args = parser.parse_args(argv)
    seconds: dict[str, float] = {}
    for name in args.variants:
        seconds[name] = time_variant(VARIANTS[name], args.busy)
        print(f"{name:<22} {seconds[name]:7.1f} s   alb run {SUITE.name} {' '.join(VARIANTS[name])}".rstrip(),
              flush=True)
    first = args.variants[0]
    for name in args.variants[1:]:
        print(f"{name} / {first}: {seconds[name] / seconds[first]:.2f}x")


if __name__ == "__main__":
    main()
