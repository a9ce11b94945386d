"""Hostile inputs and damaged files (issue 12): nothing crashes, nothing escapes, nothing wrong is counted.

Damaged cell files and checkpoints go to the ``.quarantine/`` folder beside them (``RESULTS/cells/``) with a
warning and their cells run again; a file where a folder belongs (or the reverse) is one clear error line,
never a traceback; a valid cell file is never moved.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_suite

from benchmark import cli
from benchmark.errors import DamagedFileWarning
from benchmark.store import QUARANTINE_DIR, load_results
from benchmark.suite import load_suite

SUITE = """\
    name: hostile
    defaults:
      dataset: digits
      backbone: small_cnn
      strategy: random
      budget: {initial: 10, query: 10, rounds: 1}
      training: {epochs: 1, batch_size: 16, optimizer: {name: sgd, lr: 0.05}}
    matrix:
      seed: [0, 1]
    """
ROUNDS_PER_CELL = 2
RUN = ["--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(suite file, results folder) of the two finished cells, run once for the whole module."""
    root = tmp_path_factory.mktemp("hostile")
    suite = write_suite(root, "hostile", SUITE)
    results = root / "results"
    assert cli.main(["run", str(suite), "--results", str(results), *RUN]) == 0
    return suite, results


@pytest.fixture
def copy(finished: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """(suite, a private copy of the finished results, the cell ids)."""
    suite, results = finished
    mine = tmp_path / "results"
    shutil.copytree(results, mine)
    return suite, mine, [c.id for c in load_suite(suite).cells]



def _rows(results: Path, cell_id: str) -> list[tuple[int, float, list[int]]]:
    frame = load_results(results)
    frame = frame[frame["cell_id"] == cell_id].sort_values("round")
    return [(int(r), float(a), list(s)) for r, a, s in zip(frame["round"], frame["accuracy"], frame["selected"],
                                                          strict=True)]


def _quarantined(suite_dir: Path) -> list[str]:
    folder = suite_dir / QUARANTINE_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# -- 1. damaged cell files -------------------------------------------------------------------------------------

def _zero_bytes(path: Path, other: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path, other: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _wrong_schema(path: Path, other: Path) -> None:
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)


def _missing_last_round(path: Path, other: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)  # keeps alb's metadata


def _other_cells_file(path: Path, other: Path) -> None:
    shutil.copyfile(other, path)


DAMAGES = {"zero bytes": _zero_bytes, "truncated": _truncated, "wrong schema": _wrong_schema,
           "missing last round": _missing_last_round, "another cell's file": _other_cells_file}


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_cell_file_is_quarantined_not_counted_and_recomputed(
        damage: str, copy: tuple[Path, Path, list[str]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], count_training: Callable[[], list[int]]) -> None:
    suite, results, (damaged_id, good_id) = copy
    suite_dir, cells_dir = results / "hostile", results / "cells"
    expected = _rows(results, damaged_id)
    DAMAGES[damage](cells_dir / f"{damaged_id}.parquet", cells_dir / f"{good_id}.parquet")

    with pytest.warns(DamagedFileWarning,
                      match=f"{damaged_id}.parquet cannot be used.*moved to .*{QUARANTINE_DIR}"):
        assert cli.main(["status", str(suite), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "2 cells: 1 done, 1 pending" in out
    assert [n.split(".parquet.")[0] for n in _quarantined(cells_dir)] == [damaged_id]
    events = [json.loads(line) for line in (suite_dir / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "file_quarantined" and e["cell_id"] == damaged_id for e in events)

    calls = count_training()
    assert cli.main(["run", str(suite), "--results", str(results), *RUN]) == 0
    assert len(calls) == ROUNDS_PER_CELL  # only the damaged cell ran again
    assert _rows(results, damaged_id) == expected  # from scratch, the same rows as the first run
    assert len(_quarantined(cells_dir)) == 1


def test_report_and_check_quarantine_a_damaged_cell_instead_of_failing(
        copy: tuple[Path, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite, results, (damaged_id, good_id) = copy
    cells_dir = results / "cells"
    _truncated(cells_dir / f"{damaged_id}.parquet", cells_dir / f"{good_id}.parquet")
    capsys.readouterr()
    with pytest.warns(DamagedFileWarning, match=f"{damaged_id}.parquet cannot be used"):
        assert cli.main(["check", str(suite), "--results", str(results),
                         "--save-baseline", str(tmp_path / "baseline.json")]) == cli.EXIT_USAGE
    assert "only 1 of 2 cells" in capsys.readouterr().err  # the damaged cell is not counted
    assert [n.split(".parquet.")[0] for n in _quarantined(cells_dir)] == [damaged_id]
    assert cli.main(["report", str(results), "--out", str(tmp_path / "report")]) == 0
    _wrong_schema(cells_dir / f"{good_id}.parquet", cells_dir / f"{good_id}.parquet")
    with pytest.warns(DamagedFileWarning, match=f"{good_id}.parquet cannot be used"):
        assert cli.main(["report", str(results), "--out", str(tmp_path / "report")]) == cli.EXIT_USAGE
    assert "no finished cells" in capsys.readouterr().err
    assert len(_quarantined(cells_dir)) == 2


def test_data_page_damage_behind_a_good_footer_is_quarantined_when_loaded(
        copy: tuple[Path, Path, list[str]]) -> None:
    _, results, (damaged_id, good_id) = copy
    path = results / "cells" / f"{damaged_id}.parquet"
    data = bytearray(path.read_bytes())
    data[4:200] = b"\xff" * 196  # the first data pages; footer and metadata intact
    path.write_bytes(bytes(data))
    with pytest.warns(DamagedFileWarning, match=f"{damaged_id}.parquet cannot be used"):
        frame = load_results(results)
    assert set(frame["cell_id"]) == {good_id}
    assert not path.exists()


def test_stray_files_are_ignored_with_a_warning_and_never_moved(copy: tuple[Path, Path, list[str]]) -> None:
    _, results, cell_ids = copy
    suite_dir = results / "hostile"
    notes = suite_dir / "notes.parquet"
    pq.write_table(pa.table({"cell_id": ["mine"], "accuracy": [0.99]}), notes)
    folder = suite_dir / "dataset.parquet"
    folder.mkdir()
    with pytest.warns(DamagedFileWarning) as record:
        frame = load_results(results)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2 and "dataset.parquet: not an alb cell file" in messages[0]
    assert "notes.parquet: not an alb cell file" in messages[1]
    assert sorted(frame["cell_id"].unique()) == sorted(cell_ids)
    assert notes.is_file() and folder.is_dir() and _quarantined(suite_dir) == []


def test_valid_cell_files_are_never_quarantined(copy: tuple[Path, Path, list[str]], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, recwarn: Any,
                                                 count_training: Callable[[], list[int]]) -> None:
    suite, results, cell_ids = copy
    suite_dir, cells_dir = results / "hostile", results / "cells"
    # a hand-corrected accuracy is still a valid file: judged by shape, never by values
    path = cells_dir / f"{cell_ids[0]}.parquet"
    table = pq.read_table(path)
    i = table.schema.get_field_index("accuracy")
    pq.write_table(table.set_column(i, "accuracy", pa.array([0.5] * table.num_rows)), path)
    before = {p.name: p.read_bytes() for p in cells_dir.glob("*.parquet")}
    calls = count_training()
    for command in (["status", str(suite), "--results", str(results)],
                    ["run", str(suite), "--results", str(results), *RUN],
                    ["run", str(suite), "--results", str(results), "--dry-run"],
                    ["report", str(results), "--out", str(tmp_path / "report")],
                    ["check", str(suite), "--results", str(results), "--save-baseline", str(tmp_path / "b.json")]):
        assert cli.main(command) == 0, command
    assert calls == []
    assert {p.name: p.read_bytes() for p in cells_dir.glob("*.parquet")} == before
    assert not (cells_dir / QUARANTINE_DIR).exists() and not (suite_dir / QUARANTINE_DIR).exists()
    assert not [w for w in recwarn if issubclass(w.category, DamagedFileWarning)]


# -- 2. damaged checkpoints ------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["garbage", "folder"])
def test_damaged_checkpoint_is_quarantined_and_the_cell_restarts(
        damage: str, copy: tuple[Path, Path, list[str]]) -> None:
    suite, results, (cell_id, _) = copy
    cells_dir = results / "cells"
    expected = _rows(results, cell_id)
    (cells_dir / f"{cell_id}.parquet").unlink()
    checkpoint = cells_dir / ".work" / f"{cell_id}.pt"
    checkpoint.parent.mkdir(exist_ok=True)
    if damage == "garbage":
        checkpoint.write_bytes(b"PK\x03\x04 not a checkpoint")
    else:
        checkpoint.mkdir()
    with pytest.warns(DamagedFileWarning, match=f"{cell_id}.pt cannot be used.*restarts from scratch.*moved to"):
        assert cli.main(["run", str(suite), "--results", str(results), *RUN]) == 0
    assert [n.split(".pt.")[0] for n in _quarantined(cells_dir)] == [cell_id]
    if damage == "garbage":
        kept = next((cells_dir / QUARANTINE_DIR).iterdir())
        assert kept.read_bytes() == b"PK\x03\x04 not a checkpoint"  # kept for inspection, not deleted
    assert _rows(results, cell_id) == expected
    assert not checkpoint.exists()


# -- 3. a file where a folder belongs, or the reverse ----------------------------------------------------------

def _claim_is_a_folder(results: Path, cell_id: str) -> Path:
    path = results / "cells" / ".claims" / f"{cell_id}.json"
    path.mkdir(parents=True)
    return path


def _claims_is_a_file(results: Path, cell_id: str) -> Path:
    path = results / "cells" / ".claims"
    shutil.rmtree(path, ignore_errors=True)
    path.write_text("")
    return path


def _events_is_a_folder(results: Path, cell_id: str) -> Path:
    path = results / "hostile" / "events.jsonl"
    path.unlink()
    path.mkdir()
    return path


def _quarantine_is_a_file(results: Path, cell_id: str) -> Path:
    path = results / "hostile" / QUARANTINE_DIR
    path.write_text("")
    return path


def _suite_folder_is_a_file(results: Path, cell_id: str) -> Path:
    path = results / "hostile"
    shutil.rmtree(path)
    path.write_text("")
    return path


def _results_is_a_file(results: Path, cell_id: str) -> Path:
    shutil.rmtree(results)
    results.write_text("")
    return results


LAYOUTS = {"claim is a folder": _claim_is_a_folder, ".claims is a file": _claims_is_a_file,
           "events.jsonl is a folder": _events_is_a_folder, ".quarantine is a file": _quarantine_is_a_file,
           "suite folder is a file": _suite_folder_is_a_file,
           "--results is a file": _results_is_a_file}


def _one_clean_error_line(err: str, path: Path) -> None:
    errors = [line for line in err.splitlines() if line.startswith("alb: error: ")]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    assert str(path) in errors[0] and "Traceback" not in err


@pytest.mark.parametrize("layout", LAYOUTS)
def test_wrong_kind_of_path_is_one_clear_error_line(layout: str, copy: tuple[Path, Path, list[str]],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    suite, results, (cell_id, _) = copy
    (results / "cells" / f"{cell_id}.parquet").unlink()  # one cell to run: claims and events are used
    path = LAYOUTS[layout](results, cell_id)
    capsys.readouterr()
    assert cli.main(["run", str(suite), "--results", str(results), *RUN]) == cli.EXIT_USAGE
    _one_clean_error_line(capsys.readouterr().err, path)


def test_report_out_that_is_a_file_is_one_clear_error_line(copy: tuple[Path, Path, list[str]], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _, results, _ = copy
    out = tmp_path / "report.html"
    out.write_text("mine")
    assert cli.main(["report", str(results), "--out", str(out)]) == cli.EXIT_USAGE
    _one_clean_error_line(capsys.readouterr().err, out)
    assert out.read_text() == "mine"


def test_os_errors_stop_at_the_cli_with_the_traceback_in_the_events_log_and_under_debug(
        copy: tuple[Path, Path, list[str]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import benchmark.runner as runner

    suite, results, _ = copy
    blocked = results / "hostile" / "suite.json"

    def denied(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(blocked))

    monkeypatch.setattr(runner, "write_suite_record", denied)
    capsys.readouterr()
    assert cli.main(["run", str(suite), "--results", str(results), *RUN]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    _one_clean_error_line(err, blocked)
    assert "Permission denied" in err and "--debug" in err
    events = [json.loads(line) for line in (results / "hostile" / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "error" and "PermissionError" in events[-1]["traceback"]

    assert cli.main(["--debug", "run", str(suite), "--results", str(results), *RUN]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" in err and "PermissionError" in err and err.splitlines()[-1].startswith("alb: error: ")
