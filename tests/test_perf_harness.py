"""The selection benchmark runs every strategy it names (at a tiny scale, so the script cannot rot)."""

from __future__ import annotations

import pytest

from benchmark.perf.selection import DEFAULT_STRATEGIES, measure


@pytest.mark.parametrize("name", [*DEFAULT_STRATEGIES, "coreset_dense", "badge_dense", "batchbald"])
def test_every_benchmarked_strategy_runs_and_reports(name: str) -> None:
    result = measure(name, n=300, d=16, c=5, labeled=30, budget=12, device="cpu")
    assert result["strategy"] == name and result["seconds"] >= 0 and result["peak_extra_mb"] >= 0


def test_training_throughput_benchmark_runs_both_loops() -> None:
    from benchmark.perf.training import main

    main(["--device", "cpu", "--steps", "1", "--warmup", "1", "--batch", "8", "--workers", "0"])


def test_label_propagation_benchmark_builds_the_graph_of_every_sample() -> None:
    from benchmark.perf.label_propagation import measure as measure_lp

    result = measure_lp(n=400, d=16, k=5, classes=4, labeled=40, device="cpu")
    # W = A + A^T: between k*n (all pairs mutual) and 2*k*n directed edges
    assert 5 * 400 <= int(result["edges"]) <= 2 * 5 * 400
    assert float(result["knn_seconds"]) >= 0 and float(result["cg_seconds"]) >= 0
