"""Hostile inputs and damaged files (issue 12): nothing crashes, nothing escapes, nothing wrong is counted.

Damaged cell files and checkpoints go to the ``.quarantine/`` folder beside them (``RESULTS/cells/``) with a
warning and their cells run again; a file where a folder belongs (or the reverse) is one clear error line,
never a traceback; a valid cell file is never moved.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import finishes_within, write_suite

from benchmark import cli
from benchmark.errors import ClaimWarning, DamagedFileWarning
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


# -- 4. files a writer can plant in a results folder (issue 20) ----------------------------------------------

def _status_line(suite: Path, results: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert finishes_within(60, lambda: cli.main(["status", str(suite), "--results", str(results)]),
                           [results]) == 0
    return capsys.readouterr().out.splitlines()[-1]


def test_fifo_in_a_cell_files_place_is_quarantined_never_waited_on(
        copy: tuple[Path, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        count_training: Callable[[], list[int]]) -> None:
    suite, results, (planted_id, good_id) = copy
    cells_dir = results / "cells"
    expected = _rows(results, planted_id)
    fifo = cells_dir / f"{planted_id}.parquet"
    fifo.unlink()
    os.mkfifo(fifo)
    with pytest.warns(DamagedFileWarning, match=f"{planted_id}.parquet cannot be used \\(it is a FIFO "
                                                "\\(named pipe\\), not a regular file\\); moved to"):
        assert _status_line(suite, results, capsys).endswith("2 cells: 1 done, 1 pending")
    assert [n.split(".parquet.")[0] for n in _quarantined(cells_dir)] == [planted_id]

    os.mkfifo(fifo)  # report and check load the cells
    with pytest.warns(DamagedFileWarning, match=f"{planted_id}.parquet cannot be used \\(it is a FIFO"):
        frame = finishes_within(60, lambda: load_results(results), [results])
    assert set(frame["cell_id"]) == {good_id}

    os.mkfifo(fifo)  # run: recomputed, the FIFO moved aside
    calls = count_training()
    with pytest.warns(DamagedFileWarning, match="FIFO"):
        assert finishes_within(300, lambda: cli.main(["run", str(suite), "--results", str(results), *RUN]),
                               [results]) == 0
    assert len(calls) == ROUNDS_PER_CELL and _rows(results, planted_id) == expected
    assert len(_quarantined(cells_dir)) == 3


def test_fifo_in_a_claims_place_is_a_stale_claim_named_in_a_warning(
        copy: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str],
        count_training: Callable[[], list[int]]) -> None:
    suite, results, (cell_id, _) = copy
    (results / "cells" / f"{cell_id}.parquet").unlink()
    claim = results / "cells" / ".claims" / f"{cell_id}.json"
    claim.parent.mkdir(exist_ok=True)
    os.mkfifo(claim)
    with pytest.warns(ClaimWarning, match=f"claim {claim} holds nothing: it is a FIFO .*treated as stale"):
        assert _status_line(suite, results, capsys).endswith("2 cells: 1 done, 1 pending")
    calls = count_training()
    with pytest.warns(ClaimWarning, match="FIFO"):
        assert finishes_within(300, lambda: cli.main(["run", str(suite), "--results", str(results), *RUN]),
                               [results]) == 0
    assert len(calls) == ROUNDS_PER_CELL and not claim.exists()  # taken over, then released


def test_fifo_events_log_is_named_a_fifo_not_a_folder(copy: tuple[Path, Path, list[str]],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    suite, results, _ = copy
    events = results / "hostile" / "events.jsonl"
    events.unlink()
    os.mkfifo(events)
    capsys.readouterr()
    assert finishes_within(60, lambda: cli.main(["run", str(suite), "--results", str(results), *RUN]),
                           [results]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    _one_clean_error_line(err, events)
    assert "is a FIFO (named pipe) where alb appends its events log" in err and "folder" not in err


def _outside(results: Path) -> Path:
    """A folder beside the results folder that a planted link points into; nothing may be written there."""
    outside = results.parent / "outside"
    outside.mkdir(exist_ok=True)
    return outside


def _events_links_outside(results: Path, cell_id: str) -> Path:
    path = results / "hostile" / "events.jsonl"
    path.unlink()
    (_outside(results) / "victim").write_text("mine\n")
    path.symlink_to(_outside(results) / "victim")
    return path


def _quarantine_links_outside(results: Path, cell_id: str) -> Path:
    path = results / "cells" / QUARANTINE_DIR
    path.symlink_to(_outside(results), target_is_directory=True)
    return path


def _claims_link_outside(results: Path, cell_id: str) -> Path:
    path = results / "cells" / ".claims"
    shutil.rmtree(path, ignore_errors=True)
    path.symlink_to(_outside(results), target_is_directory=True)
    return path


LINKS = {"events.jsonl links outside": _events_links_outside, ".quarantine links outside": _quarantine_links_outside,
         ".claims links outside": _claims_link_outside}


@pytest.mark.parametrize("layout", LINKS)
def test_a_link_out_of_the_results_folder_is_never_written_through(
        layout: str, copy: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    suite, results, (cell_id, good_id) = copy
    _truncated(results / "cells" / f"{cell_id}.parquet", results / "cells" / f"{good_id}.parquet")
    link = LINKS[layout](results, cell_id)
    before = {p.name: p.read_bytes() for p in _outside(results).iterdir()}
    for command in (["status", str(suite), "--results", str(results)],
                    ["run", str(suite), "--results", str(results), *RUN]):
        capsys.readouterr()
        assert cli.main(command) == cli.EXIT_USAGE, command
        err = capsys.readouterr().err
        _one_clean_error_line(err, link)
        assert "is a symbolic link" in err
    assert {p.name: p.read_bytes() for p in _outside(results).iterdir()} == before


def test_report_leaves_a_damaged_cell_in_place_rather_than_move_it_through_a_linked_quarantine(
        copy: tuple[Path, Path, list[str]]) -> None:
    _, results, (damaged_id, good_id) = copy
    damaged = results / "cells" / f"{damaged_id}.parquet"
    _truncated(damaged, results / "cells" / f"{good_id}.parquet")
    link = _quarantine_links_outside(results, damaged_id)
    with pytest.warns(DamagedFileWarning, match=f"left in place \\(cannot move it to {link}: it is a symbolic"):
        frame = load_results(results)  # `alb report` reads without SuiteStore's layout check
    assert set(frame["cell_id"]) == {good_id}
    assert damaged.is_file() and list(_outside(results).iterdir()) == []


def test_results_folder_and_cells_folder_may_be_links(finished: tuple[Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    suite, original = finished
    shutil.copytree(original / "hostile", tmp_path / "real" / "hostile")
    shutil.copytree(original / "cells", tmp_path / "shared-cells")
    (tmp_path / "real" / "cells").symlink_to(tmp_path / "shared-cells", target_is_directory=True)
    results = tmp_path / "results"
    results.symlink_to(tmp_path / "real", target_is_directory=True)
    assert _status_line(suite, results, capsys).endswith("2 cells: 2 done")
    assert cli.main(["run", str(suite), "--results", str(results), *RUN]) == 0
    assert cli.main(["report", str(results), "--out", str(tmp_path / "report")]) == 0


def test_claim_with_a_heartbeat_far_in_the_future_does_not_block_its_cell(
        copy: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str],
        count_training: Callable[[], list[int]]) -> None:
    suite, results, (cell_id, _) = copy
    (results / "cells" / f"{cell_id}.parquet").unlink()
    claim = results / "cells" / ".claims" / f"{cell_id}.json"
    claim.parent.mkdir(exist_ok=True)
    claim.write_text(json.dumps({"host": "elsewhere", "pid": 4242, "token": "t", "executor": "local"}))
    next_year = time.time() + 365 * 24 * 3600
    os.utime(claim, (next_year, next_year))
    with pytest.warns(ClaimWarning, match="heartbeat is [0-9]+ s in the future.*treated as stale"):
        assert _status_line(suite, results, capsys).endswith("2 cells: 1 done, 1 pending")
    calls = count_training()
    with pytest.warns(ClaimWarning, match="in the future"):
        assert cli.main(["run", str(suite), "--results", str(results), *RUN]) == 0
    assert "running in another process" not in capsys.readouterr().out
    assert len(calls) == ROUNDS_PER_CELL


@pytest.mark.parametrize("owner", ['{"host": "h", "pid": "abc", "token": "t"}', "[1, 2, 3]", "null",
                                   '{"host": "h", "pid": 100000000000000000000, "token": "t"}'])
def test_claim_that_is_not_a_claim_is_stale_in_status_and_run(
        owner: str, copy: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    suite, results, (cell_id, _) = copy
    (results / "cells" / f"{cell_id}.parquet").unlink()
    claim = results / "cells" / ".claims" / f"{cell_id}.json"
    claim.parent.mkdir(exist_ok=True)
    claim.write_text(owner)
    with pytest.warns(ClaimWarning, match=f"claim {claim} holds nothing"):
        assert _status_line(suite, results, capsys).endswith("2 cells: 1 done, 1 pending")
    with pytest.warns(ClaimWarning, match="treated as stale"):
        assert cli.main(["run", str(suite), "--results", str(results), *RUN]) == 0
    assert _status_line(suite, results, capsys).endswith("2 cells: 2 done")


def _cast(path: Path, column: str, values: Callable[[list[Any]], list[Any]]) -> None:
    """Rewrite one column of the cell file with other values, keeping alb's metadata."""
    table = pq.read_table(path)
    i = table.schema.get_field_index(column)
    table = table.set_column(i, column, pa.array(values(table.column(column).to_pylist())))
    pq.write_table(table, path)


WRONG_TYPES = {"accuracy as text": ("accuracy", lambda v: [f"{a:.3f}" for a in v]),
               "n_labeled as text": ("n_labeled", lambda v: [f"{n} labels" for n in v]),
               "round as floats": ("round", lambda v: [float(r) for r in v]),
               "selected as text": ("selected", lambda v: [json.dumps(s) for s in v])}


@pytest.mark.parametrize("wrong", WRONG_TYPES)
def test_cell_file_with_wrong_column_types_is_damaged(wrong: str, copy: tuple[Path, Path, list[str]],
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite, results, (damaged_id, good_id) = copy
    column, values = WRONG_TYPES[wrong]
    _cast(results / "cells" / f"{damaged_id}.parquet", column, values)
    with pytest.warns(DamagedFileWarning, match=f"{damaged_id}.parquet cannot be used \\(its column {column} "
                                                "holds .*, not .*\\); moved to"):
        assert _status_line(suite, results, capsys).endswith("2 cells: 1 done, 1 pending")
    assert cli.main(["report", str(results), "--out", str(tmp_path / "report")]) == 0
    _cast(results / "cells" / f"{good_id}.parquet", column, values)  # report loading quarantines it too
    with pytest.warns(DamagedFileWarning, match=f"{good_id}.parquet cannot be used \\(its column {column}"):
        assert load_results(results).empty


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Call it with a folder to make every write under it fail as on a read-only mount (EROFS). Tests run as
    root, which chmod does not stop, and bind mounts or chattr are not available here: so the calls that
    write (mkdir, rename, replace, unlink, open for writing) are patched to fail the way the kernel does."""
    def start(folder: Path) -> None:
        inside = str(folder.resolve())

        def blocked(path: Any) -> bool:
            return os.path.realpath(os.fspath(path)).startswith(inside)

        def fail(path: Any) -> OSError:
            return OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))

        def patch(name: str, writes: Callable[..., bool]) -> None:
            real = getattr(os, name)

            def replacement(*args: Any, **kwargs: Any) -> Any:
                if writes(*args, **kwargs) and blocked(args[0]):
                    raise fail(args[0])
                return real(*args, **kwargs)

            monkeypatch.setattr(os, name, replacement)

        patch("mkdir", lambda path, *a, **k: not os.path.isdir(path))  # an existing folder: EEXIST, as usual
        for name in ("rename", "replace", "unlink", "rmdir"):
            patch(name, lambda *a, **k: True)
        write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
        patch("open", lambda path, flags, *a, **k: bool(flags & write_flags))

    return start


def test_reading_commands_work_on_a_read_only_results_folder_with_a_damaged_cell(
        copy: tuple[Path, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        read_only: Callable[[Path], None]) -> None:
    suite, results, (damaged_id, good_id) = copy
    damaged = results / "cells" / f"{damaged_id}.parquet"
    _truncated(damaged, results / "cells" / f"{good_id}.parquet")
    read_only(results)
    left = f"{damaged_id}.parquet cannot be used .*left in place .*Read-only file system"
    with pytest.warns(DamagedFileWarning, match=left):
        assert _status_line(suite, results, capsys).endswith("2 cells: 1 done, 1 pending")
    with pytest.warns(DamagedFileWarning, match=left):
        assert cli.main(["report", str(results), "--out", str(tmp_path / "report")]) == 0
    with pytest.warns(DamagedFileWarning, match=left):
        assert cli.main(["check", str(suite), "--results", str(results),
                         "--save-baseline", str(tmp_path / "baseline.json")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "only 1 of 2 cells" in err and "Read-only" not in err  # the damaged cell is simply not counted
    assert damaged.is_file() and not (results / "cells" / QUARANTINE_DIR).exists()


def test_cell_file_whose_rows_name_another_cell_is_damaged(copy: tuple[Path, Path, list[str]],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the results-folder fuzz test: rows naming another id (here the id JSON-quoted) next to valid
    metadata must not be loaded as a cell of an id nobody asked for."""
    suite, results, (damaged_id, _) = copy
    _cast(results / "cells" / f"{damaged_id}.parquet", "cell_id", lambda v: [json.dumps(c) for c in v])
    with pytest.warns(DamagedFileWarning, match=f"{damaged_id}.parquet cannot be used \\(its rows name cell"):
        assert _status_line(suite, results, capsys).endswith("2 cells: 1 done, 1 pending")
    assert f"\"{damaged_id}\"" not in set(load_results(results)["cell_id"])
