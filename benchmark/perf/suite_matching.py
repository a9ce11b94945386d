"""Time validating a big suite: CELLS matrix cells and EXCLUDE exclude entries (issue 20, item 10).

    python -m benchmark.perf.suite_matching [--cells 10000] [--exclude 15000] [--include 0]

The matrix is strategy [random, entropy] x cells/2 seeds. Each exclude entry names a seed and one more value
that cells of the seed have (six spellings per seed: either strategy, or a setting at its default), so that
15,000 distinct entries exclude the cells of the first 2,500 seeds and each matches one or two cells; each
include entry extends one kept 'entropy' cell with a pool subset (the last seed first). Prints the seconds
load_suite takes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

DEFAULTS: dict[str, Any] = {"dataset": "digits", "backbone": "small_cnn",
                            "budget": {"initial": 20, "query": 20, "rounds": 2},
                            "training": {"epochs": 3, "optimizer": {"name": "sgd", "lr": 0.05}}}
# values cells have (a strategy, settings at their defaults): entries of two keys, the seed and one of these
SPELLINGS: tuple[dict[str, Any], ...] = ({"strategy": "random"}, {"strategy": "entropy"}, {"training.epochs": 3},
                                         {"budget": {"rounds": 2}}, {"training.optimizer.lr": 0.05},
                                         {"backbone": "small_cnn"})


def suite_document(cells: int, exclude: int, include: int = 0) -> dict[str, Any]:
    """A suite of ``cells`` cells (even), ``exclude`` distinct exclude entries that each match a cell, and
    ``include`` include entries that each extend one kept cell."""
    seeds = cells // 2
    excluded_seeds = -(-exclude // len(SPELLINGS))
    kept_seeds = seeds - excluded_seeds
    if kept_seeds < 1 or include > cells:
        raise ValueError(f"{exclude} exclude and {include} include entries need more than {cells} cells")
    excluded = [{"seed": i // len(SPELLINGS), **SPELLINGS[i % len(SPELLINGS)]} for i in range(exclude)]
    # from the last seed down, then again with a larger subset (a later entry overrides an earlier one)
    included = [{"strategy": "entropy", "seed": seeds - 1 - i % kept_seeds, "pool_subset": 100 + i // kept_seeds}
                for i in range(include)]
    return {"name": "suite_matching", "defaults": DEFAULTS,
            "matrix": {"strategy": ["random", "entropy"], "seed": list(range(seeds))},
            "include": included, "exclude": excluded}


def measure(cells: int, exclude: int, include: int = 0) -> dict[str, float | int]:
    """Seconds to load the suite (after a warm-up load that imports the registries), and its cell count."""
    from benchmark.suite import load_suite

    with tempfile.TemporaryDirectory() as directory:
        warm = Path(directory) / "warm.yaml"
        warm.write_text(yaml.safe_dump(suite_document(4, 1)))
        load_suite(warm)
        path = Path(directory) / "suite_matching.yaml"
        path.write_text(yaml.safe_dump(suite_document(cells, exclude, include), default_flow_style=True, width=200))
        start = time.perf_counter()
        suite = load_suite(path)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "cells": len(suite.cells), "bytes": path.stat().st_size}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--exclude", type=int, default=15_000)
    parser.add_argument("--include", type=int, default=0)
    args = parser.parse_args(argv)
    result = measure(args.cells, args.exclude, args.include)
    print(f"{args.cells} matrix cells x {args.exclude} exclude entries, {args.include} include entries "
          f"({result['bytes']} bytes): {result['cells']} cells kept, validated in {result['seconds']:.2f} s")


if __name__ == "__main__":
    main()
