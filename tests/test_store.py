"""Atomic writes, the parquet schema and the loader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchmark.store import SuiteStore, atomic_write, load_results, read_cell_metadata
from benchmark.versions import TRAINER_VERSION


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_crash_between_temp_write_and_rename_leaves_no_partial_file(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "cell.parquet"

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        atomic_write(target, lambda tmp: tmp.write_bytes(b"partial"))
    assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_failed_write_keeps_the_previous_file_intact(tmp_path: Path) -> None:
    target = tmp_path / "cell.parquet"
    atomic_write(target, lambda tmp: tmp.write_bytes(b"old complete content"))

    def half_written(tmp: Path) -> None:
        tmp.write_bytes(b"new but")
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError):
        atomic_write(target, half_written)
    assert target.read_bytes() == b"old complete content"
    assert _leftovers(tmp_path) == []


def test_result_file_has_one_row_per_round_config_columns_and_metadata(tmp_path: Path) -> None:
    store = SuiteStore(tmp_path, "demo")
    config = {"dataset": "digits", "strategy": "entropy", "seed": 3,
              "training": {"epochs": 2, "schedule": {"milestones": [1]}}}
    rows = [{"round": r, "n_labeled": 10 * (r + 1), "accuracy": 0.5 + r / 10, "macro_f1": 0.4,
             "train_seconds": 1.0, "query_seconds": 0.1, "selected": list(range(r, r + 3))}
            for r in range(3)]
    path = store.write_result("abc123", config, ["strategy", "seed"], rows, {"device": "cpu"})
    assert path == tmp_path / "cells" / "abc123.parquet"  # one store for every suite
    table = pq.read_table(path).to_pandas()
    assert list(table["round"]) == [0, 1, 2]
    assert list(table["selected"][2]) == [2, 3, 4]
    assert set(table["training.epochs"]) == {2}
    assert json.loads(table["training.schedule.milestones"][0]) == [1]
    assert set(table["suite"]) == {"demo"} and set(table["cell_id"]) == {"abc123"}
    # the versions of the components the cell names, as columns (benchmark/versions.py)
    assert set(table["version.strategy"]) == {1} and set(table["version.trainer"]) == {TRAINER_VERSION}
    meta = read_cell_metadata(path)
    assert meta["config"] == config and meta["axes"] == ["strategy", "seed"]


def test_loader_concatenates_result_folders_and_ignores_work_files(tmp_path: Path) -> None:
    for suite, cell in (("a", "c1"), ("a", "c2"), ("b", "c3")):
        SuiteStore(tmp_path / suite, suite).write_result(
            cell, {"strategy": "random", "budget": {"rounds": 0}}, [],
            [{"round": 0, "n_labeled": 1, "accuracy": 0.1, "selected": [1]}], {})
    (tmp_path / "a" / "cells" / ".work").mkdir()
    (tmp_path / "a" / "cells" / ".work" / "x.parquet").write_bytes(b"not a parquet file")
    frame = load_results(tmp_path / "a", tmp_path / "b")
    assert sorted(frame["cell_id"]) == ["c1", "c2", "c3"]
    assert load_results(tmp_path / "missing").empty
