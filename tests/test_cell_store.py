"""One content-addressed cell store: a cell two suites share is computed once, in ``RESULTS/cells/``, and each
suite's folder is a view over the ids it lists; results folders of the earlier layout still load."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import write_suite

from benchmark import cli
from benchmark.errors import DamagedFileWarning, ResultsLayoutError
from benchmark.store import CELLS_DIR, QUARANTINE_DIR, SuiteStore, load_results
from benchmark.suite import Suite, load_suite

FIRST = """\
    name: first
    defaults:
      dataset: digits
      backbone: small_cnn
      seed: 0
      budget: {initial: 10, query: 10, rounds: 1}
      training: {epochs: 2, batch_size: 16, optimizer: {name: sgd, lr: 0.05}}
    matrix:
      strategy: [random, entropy]
    """
SECOND = """\
    name: second
    defaults:
      dataset: digits
      backbone: small_cnn
      strategy: random
      budget: {initial: 10, query: 10, rounds: 1}
      training: {epochs: 2, batch_size: 16, optimizer: {name: sgd, lr: 0.05}}
    matrix:
      seed: [0, 1]
    """
ROUNDS_PER_CELL = 2
RUN = ["--threads", "1", "--quiet"]



def _ids(suite: Suite) -> set[str]:
    return {c.id for c in suite.cells}


def _events(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


def _status(suite: Path, results: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert cli.main(["status", str(suite), "--results", str(results)]) == 0
    return capsys.readouterr().out.splitlines()[-1]


@pytest.fixture(scope="module")
def first_done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(first suite file, second suite file, results with the first suite finished), run once."""
    root = tmp_path_factory.mktemp("cells")
    first, second = write_suite(root, "first", FIRST), write_suite(root, "second", SECOND)
    results = root / "results"
    assert cli.main(["run", str(first), "--results", str(results), *RUN]) == 0
    return first, second, results


@pytest.fixture
def copy(first_done: tuple[Path, Path, Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    first, second, results = first_done
    mine = tmp_path / "results"
    shutil.copytree(results, mine)
    return first, second, mine


def test_a_cell_two_suites_share_is_computed_once_and_loaded_in_each_view(
        copy: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], count_training: Callable[[], list[int]]) -> None:
    first_path, second_path, results = copy
    first, second = load_suite(first_path), load_suite(second_path)
    shared = _ids(first) & _ids(second)
    assert len(shared) == 1  # random, seed 0: the same configuration, so the same id
    assert {p.stem for p in (results / CELLS_DIR).glob("*.parquet")} == _ids(first)
    assert not list((results / "first").glob("*.parquet"))  # the suite folder holds no cells
    assert json.loads((results / "first" / "suite.json").read_text())["cells"] == [c.id for c in first.cells]

    assert _status(second_path, results, capsys) == "suite 'second': 2 cells: 1 done, 1 pending"
    calls = count_training()
    assert cli.main(["run", str(second_path), "--results", str(results), *RUN]) == 0
    assert len(calls) == ROUNDS_PER_CELL  # only the cell that first does not have
    started = [e["cell_id"] for e in _events(results / "second") if e["event"] == "cell_started"]
    assert started == sorted(_ids(second) - shared)
    assert _status(first_path, results, capsys) == "suite 'first': 2 cells: 2 done"
    assert _status(second_path, results, capsys) == "suite 'second': 2 cells: 2 done"
    assert {p.stem for p in (results / CELLS_DIR).glob("*.parquet")} == _ids(first) | _ids(second)

    calls.clear()
    assert cli.main(["run", str(first_path), "--results", str(results), *RUN]) == 0
    assert calls == []

    for suite in (first, second):
        frame = load_results(results / suite.name)
        assert set(frame["cell_id"]) == _ids(suite) and set(frame["suite"]) == {suite.name}
        assert len(frame) == len(suite.cells) * ROUNDS_PER_CELL
        computed = dict(zip(frame["cell_id"], frame["computed_by"], strict=True))
        assert {computed[i] for i in shared} == {"first"}
        assert {computed[i] for i in _ids(suite) - shared} == {suite.name}
    both = load_results(results)  # every suite's view, as when each suite kept its own copy
    pairs = set(zip(both["suite"], both["cell_id"], strict=True))
    assert pairs == {("first", i) for i in _ids(first)} | {("second", i) for i in _ids(second)}

    report = tmp_path / "report"
    assert cli.main(["report", str(results / "second"), "--out", str(report)]) == 0
    assert "second" in (report / "index.html").read_text()
    baseline = tmp_path / "baseline.json"
    for suite_path in (first_path, second_path):
        assert cli.main(["check", str(suite_path), "--results", str(results), "--save-baseline",
                         str(baseline)]) == 0
        assert cli.main(["check", str(suite_path), "--results", str(results), "--baseline", str(baseline),
                         "--no-published"]) == 0


def test_a_damaged_shared_cell_is_quarantined_beside_it_and_pending_for_every_suite(
        copy: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    first_path, second_path, results = copy
    shared = next(iter(_ids(load_suite(first_path)) & _ids(load_suite(second_path))))
    path = results / CELLS_DIR / f"{shared}.parquet"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(DamagedFileWarning, match=f"{shared}.parquet cannot be used.*moved to"):
        assert _status(second_path, results, capsys) == "suite 'second': 2 cells: 2 pending"
    assert [p.name.split(".parquet.")[0] for p in (results / CELLS_DIR / QUARANTINE_DIR).iterdir()] == [shared]
    assert _status(first_path, results, capsys) == "suite 'first': 2 cells: 1 done, 1 pending"
    assert set(load_results(results / "first")["cell_id"]) == _ids(load_suite(first_path)) - {shared}


@pytest.mark.parametrize("with_record", [True, False])
def test_a_results_folder_of_the_earlier_layout_loads_and_counts_as_done(
        with_record: bool, copy: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], count_training: Callable[[], list[int]]) -> None:
    """Cells in RESULTS/<suite>/<id>.parquet (alb before the shared store), with or without a suite.json."""
    first_path, _, results = copy
    first = load_suite(first_path)
    legacy = tmp_path / "legacy"
    (legacy / "first").mkdir(parents=True)
    for path in (results / CELLS_DIR).glob("*.parquet"):
        shutil.copy(path, legacy / "first" / path.name)
    if with_record:
        shutil.copy(results / "first" / "suite.json", legacy / "first" / "suite.json")
    before = {p.name: p.read_bytes() for p in (legacy / "first").glob("*.parquet")}

    expected = load_results(results / "first").sort_values(["cell_id", "round"]).reset_index(drop=True)
    loaded = load_results(legacy / "first").sort_values(["cell_id", "round"]).reset_index(drop=True)
    assert loaded[["suite", "cell_id", "round", "accuracy"]].equals(expected[["suite", "cell_id", "round", "accuracy"]])
    assert _status(first_path, legacy, capsys) == "suite 'first': 2 cells: 2 done"
    calls = count_training()
    assert cli.main(["run", str(first_path), "--results", str(legacy), *RUN]) == 0
    assert calls == []
    assert {p.name: p.read_bytes() for p in (legacy / "first").glob("*.parquet")} == before  # never moved
    assert not list((legacy / CELLS_DIR).glob("*.parquet"))
    assert set(load_results(legacy)["cell_id"]) == _ids(first)
    assert cli.main(["report", str(legacy / "first"), "--out", str(tmp_path / "report")]) == 0
    assert cli.main(["check", str(first_path), "--results", str(legacy), "--save-baseline",
                     str(tmp_path / "baseline.json")]) == 0


def test_a_suite_cannot_be_named_like_the_cell_store(tmp_path: Path) -> None:
    with pytest.raises(ResultsLayoutError, match="cannot be named 'cells'"):
        SuiteStore(tmp_path, CELLS_DIR)


def test_an_unfinished_cell_of_the_earlier_layout_resumes_from_its_checkpoint(
        first_done: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A checkpoint left in RESULTS/<suite>/.work/ by an earlier alb is adopted into RESULTS/cells/.work/:
    the cell resumes at its next round and ends with the rows of an uninterrupted run."""
    import os
    import subprocess
    import sys

    first_path, _, results = first_done
    store = SuiteStore(results, "first")
    cell_id = sorted(_ids(load_suite(first_path)))[0]
    expected = load_results(results / "first")
    expected = expected[expected["cell_id"] == cell_id].sort_values("round")

    fresh = tmp_path / "results"
    env = {**os.environ, "ALB_FAULT_KILL_AFTER_ROUND": "0", "ALB_FAULT_CELL": cell_id, "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "benchmark.cli", "run", str(first_path), "--results", str(fresh), "--cell", cell_id,
           *RUN]
    assert subprocess.run(run, env=env, capture_output=True).returncode != 0  # killed after round 0
    new_store = SuiteStore(fresh, "first")
    checkpoint = new_store.progress_path(cell_id)
    assert checkpoint.is_file() and not new_store.is_done(cell_id)
    legacy = fresh / "first" / ".work" / f"{cell_id}.pt"  # where alb kept it before the shared store
    legacy.parent.mkdir(parents=True)
    os.replace(checkpoint, legacy)

    assert cli.main(["run", str(first_path), "--results", str(fresh), "--cell", cell_id, *RUN]) == 0
    events = _events(fresh / "first")
    assert any(e["event"] == "checkpoint_adopted" and e["cell_id"] == cell_id for e in events)
    assert [e["round"] for e in events if e["event"] == "cell_resumed" and e["cell_id"] == cell_id] == [1]
    assert not legacy.exists()
    got = load_results(fresh / "first")
    got = got[got["cell_id"] == cell_id].sort_values("round")
    assert got["accuracy"].tolist() == expected["accuracy"].tolist()
    assert [list(s) for s in got["selected"]] == [list(s) for s in expected["selected"]]
    assert store.is_done(cell_id)
