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
