"""The AL loop: caching, determinism, failures, --force, the rows it writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_suite

from benchmark import cli
from benchmark.store import load_results
from benchmark.suite import load_suite

TIMING_COLUMNS = ["train_seconds", "query_seconds", "finished_at"]



def test_cli_three_times_trains_once_then_hits_the_cache_then_forces(
        tiny_suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        count_training: Callable[[], list[int]]) -> None:
    calls = count_training()
    results = str(tmp_path / "results")
    rounds_per_cell = 3  # initial round + 2 query rounds
    assert cli.main(["run", str(tiny_suite), "--results", results]) == 0
    assert len(calls) == 4 * rounds_per_cell
    assert cli.main(["run", str(tiny_suite), "--results", results]) == 0
    assert len(calls) == 4 * rounds_per_cell  # nothing retrained
    assert cli.main(["run", str(tiny_suite), "--results", results, "--force"]) == 0
    assert len(calls) == 8 * rounds_per_cell


def test_rows_record_every_round_with_selected_indices_and_provenance(tiny_suite: Path,
                                                                      tmp_path: Path) -> None:
    assert cli.main(["run", str(tiny_suite), "--results", str(tmp_path)]) == 0
    frame = load_results(tmp_path)
    assert len(frame) == 4 * 3
    for cell_id, rows in frame.groupby("cell_id"):
        rows = rows.sort_values("round")
        assert list(rows["round"]) == [0, 1, 2]
        assert list(rows["n_labeled"]) == [10, 20, 30]
        selected = np.concatenate(rows["selected"].to_list())
        assert len(selected) == 30 and len(np.unique(selected)) == 30, cell_id
        assert ((rows["accuracy"] >= 0) & (rows["accuracy"] <= 1)).all()
    for column in ("strategy", "seed", "dataset", "training.epochs", "macro_f1", "train_seconds",
                   "query_seconds", "alb_version", "torch_version", "device", "git_commit"):
        assert column in frame.columns, column
    assert set(frame["device"]) == {"cpu"}


def _rows_without_timings(results: Path) -> list[dict[str, Any]]:
    frame = load_results(results).drop(columns=TIMING_COLUMNS).sort_values(["cell_id", "round"])
    records = frame.to_dict("records")
    for record in records:
        record["selected"] = list(record["selected"])
    return records


def test_same_cell_twice_gives_identical_indices_and_accuracies(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "det", """\
        defaults:
          dataset: digits
          backbone: small_cnn
          budget: {initial: 10, query: 15, rounds: 2}
          training: {epochs: 3, batch_size: 8, augmentation: standard, start: cold}
        matrix:
          strategy: [margin, hclc]
        """)
    for out in ("a", "b"):
        assert cli.main(["run", str(suite), "--results", str(tmp_path / out)]) == 0
    first, second = _rows_without_timings(tmp_path / "a"), _rows_without_timings(tmp_path / "b")
    assert len(first) == 6
    assert json.dumps(first, default=str) == json.dumps(second, default=str)


def test_a_failing_cell_is_recorded_and_the_others_go_on(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    suite_path = write_suite(tmp_path, "fail", """\
        defaults:
          dataset: digits
          backbone: small_cnn
          strategy: entropy
          budget: {initial: 10, query: 10, rounds: 1}
          training: {epochs: 2, batch_size: 16}
        matrix:
          training.optimizer.lr: [0.05, 1.0e+12]
        """)
    results = tmp_path / "results"
    assert cli.main(["run", str(suite_path), "--results", str(results)]) == cli.EXIT_FAILED_CELLS
    suite = load_suite(suite_path)
    good, bad = suite.cells
    folder = results / "cells"  # one store for the cells of every suite
    assert (folder / f"{good.id}.parquet").exists()
    assert not (folder / f"{bad.id}.parquet").exists()
    log = (folder / f"{bad.id}.failed.log").read_text()
    assert "NonFiniteLossError" in log and "Traceback" in log
    assert "failed" in capsys.readouterr().err
    cli.main(["status", str(suite_path), "--results", str(results)])
    status = capsys.readouterr().out
    assert f"{good.id}  done" in status and f"{bad.id}  failed" in status


def test_initial_set_can_be_chosen_by_a_strategy_on_the_random_network(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "init", """\
        defaults:
          dataset: digits
          backbone: small_cnn
          budget: {initial: 25, query: 10, rounds: 0}
          training: {epochs: 1}
        matrix:
          strategy: [hclc, least_confidence, random]
        include:
          - {strategy: margin, initial_strategy: least_confidence}
        """)
    assert cli.main(["run", str(suite), "--results", str(tmp_path)]) == 0
    frame = load_results(tmp_path)
    initial = {(row.strategy, row.initial_strategy): sorted(row.selected) for row in frame.itertuples()}
    assert len(initial) == 4
    # plain strategies start from a random set that depends only on the seed
    assert initial["least_confidence", "random"] == initial["random", "random"]
    # LC and HC on the same untrained network pick other sets than random, and than each other
    lc_initial = initial["margin", "least_confidence"]
    assert lc_initial != initial["random", "random"]
    assert initial["hclc", "high_confidence"] != lc_initial
    assert len(set(lc_initial) & set(initial["hclc", "high_confidence"])) == 0


def test_pool_subset_scores_only_that_many_unlabeled_samples(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.strategies.pool_model import PoolModel

    scored: list[int] = []
    real_outputs = PoolModel._outputs

    def counting_outputs(self: PoolModel, index: Any) -> Any:
        scored.append(int(index.numel()))
        return real_outputs(self, index)

    monkeypatch.setattr(PoolModel, "_outputs", counting_outputs)
    suite = write_suite(tmp_path, "subset", """\
        defaults:
          dataset: digits
          backbone: small_cnn
          strategy: entropy
          pool_subset: 50
          budget: {initial: 10, query: 10, rounds: 2}
          training: {epochs: 1}
        """)
    assert cli.main(["run", str(suite), "--results", str(tmp_path)]) == 0
    assert scored == [50, 50]  # one scoring pass per query round, over the subset only
    frame = load_results(tmp_path)
    assert set(frame["pool_subset"]) == {50}
