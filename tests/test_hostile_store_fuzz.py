"""Fuzzing a results folder (issue 20): whatever a writer plants in ``cells/`` and ``cells/.claims/`` (garbage,
parquet files with wrong columns or types, FIFOs, folders, links out of the folder, to FIFOs, to nothing or to
themselves, claims with any JSON and any heartbeat), `alb status` and the loading behind `alb report` and
`alb check` finish (never wait on a FIFO), fail at most with alb's one-line errors, count only valid cells, and
write nothing outside the results folder."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import finishes_within, write_suite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_store import RUN, SUITE

from benchmark import cli
from benchmark.errors import AlbError
from benchmark.store import load_results, load_suite_cells
from benchmark.suite import load_suite

SECONDS = 60  # far beyond what a status of two cells takes; only a hang gets near it


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """(suite file, results folder with its two cells finished, the cell ids), run once for the module."""
    root = tmp_path_factory.mktemp("fuzz")
    suite = write_suite(root, "hostile", SUITE)
    results = root / "results"
    assert cli.main(["run", str(suite), "--results", str(results), *RUN]) == 0
    return suite, results, [c.id for c in load_suite(suite).cells]


# -- what can be planted at one path ---------------------------------------------------------------------------

def _fifo(path: Path, outside: Path) -> None:
    os.mkfifo(path)


def _folder(path: Path, outside: Path) -> None:
    path.mkdir()


def _link_outside(path: Path, outside: Path) -> None:
    path.symlink_to(outside / "victim")


def _link_to_fifo(path: Path, outside: Path) -> None:
    path.symlink_to(outside / "fifo")


def _dangling_link(path: Path, outside: Path) -> None:
    path.symlink_to(outside / "nothing-here")


def _link_loop(path: Path, outside: Path) -> None:
    path.symlink_to(path.name)


SPECIAL = {"fifo": _fifo, "folder": _folder, "link outside": _link_outside, "link to a fifo": _link_to_fifo,
           "dangling link": _dangling_link, "link loop": _link_loop}


def _parquet_variant(good: Path) -> st.SearchStrategy[Callable[[Path], None]]:
    """Writers of a cell parquet made from a good one: cut short, a column dropped or retyped, rows dropped."""
    table = pq.read_table(good)

    def truncated(fraction: float) -> Callable[[Path], None]:
        return lambda path: path.write_bytes(good.read_bytes()[: int(len(good.read_bytes()) * fraction)])

    def retyped(column: str, to: pa.DataType) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            i = table.schema.get_field_index(column)
            values = [json.dumps(v) if to == pa.string() else None for v in table.column(column).to_pylist()]
            pq.write_table(table.set_column(i, column, pa.array(values, type=to)), path)
        return write

    def sliced(rows: int) -> Callable[[Path], None]:
        return lambda path: pq.write_table(table.slice(0, rows), path)

    columns = st.sampled_from(["accuracy", "n_labeled", "round", "selected", "suite", "cell_id", "macro_f1",
                               "train_loss", "n_pseudo_labeled"])
    return st.one_of(st.floats(0, 0.99).map(truncated),
                     st.builds(retyped, columns, st.sampled_from([pa.string(), pa.null()])),
                     st.integers(0, table.num_rows - 1).map(sliced),
                     st.sampled_from(table.column_names).map(lambda c: lambda path: pq.write_table(
                         table.drop_columns([c]), path)))


def _cell_plant(good: Path, other: Path) -> st.SearchStrategy[Callable[[Path, Path], None]]:
    bytes_ = st.binary(max_size=300).map(lambda data: lambda path, outside: path.write_bytes(data))
    return st.one_of(st.sampled_from(list(SPECIAL.values())), bytes_,
                     st.just(lambda path, outside: shutil.copyfile(other, path)),
                     _parquet_variant(good).map(lambda write: lambda path, outside: write(path)))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                max_size=3), max_leaves=8)
OWNERS = st.fixed_dictionaries(
    {"host": st.sampled_from([socket.gethostname(), "elsewhere"]) | JSON,
     "pid": st.sampled_from([os.getpid(), 1, 0, -1, 10**20, 2**31]) | JSON,
     "token": st.text(max_size=5) | JSON},
    optional={"executor": st.sampled_from(["local", "ray"]) | JSON})


def _claim_plant() -> st.SearchStrategy[Callable[[Path, Path], None]]:
    def json_claim(owner: Any, offset: float) -> Callable[[Path, Path], None]:
        def write(path: Path, outside: Path) -> None:
            path.write_text(json.dumps(owner))
            when = time.time() + offset
            os.utime(path, (when, when))
        return write

    heartbeat = st.sampled_from([0.0, -3600.0, 30.0, 3600.0, 365 * 24 * 3600.0, -1e9]) | st.floats(-1e9, 1e9)
    raw = st.binary(max_size=200).map(lambda data: lambda path, outside: path.write_bytes(data))
    return st.one_of(st.sampled_from(list(SPECIAL.values())), raw, st.builds(json_claim, OWNERS | JSON, heartbeat))


# -- the property ---------------------------------------------------------------------------------------------

def _outside_snapshot(outside: Path) -> dict[str, bytes | str]:
    return {p.name: (p.read_bytes() if p.is_file() else "fifo" if p.is_fifo() else "other")
            for p in outside.iterdir()}


def _status(suite: Path, results: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = cli.main(["status", str(suite), "--results", str(results)])
    return code, err.getvalue()


def _loads_or_clear_error(load: Callable[[], Any]) -> Any:
    """The frame ``load()`` gives, or None when it stops with one of alb's errors (anything else fails)."""
    try:
        return load()
    except AlbError:
        return None


def _check_frame(frame: Any, cell_ids: list[str]) -> None:
    """Only valid cells are loaded: numbers where a report aggregates numbers, whole cells of known ids."""
    if frame is None or frame.empty:
        return
    assert set(frame["cell_id"]) <= set(cell_ids)
    assert frame["accuracy"].astype(float).notna().all()
    assert frame["n_labeled"].astype(int).ge(0).all() and frame["round"].astype(int).ge(0).all()


@st.composite
def _folders(draw: st.DrawFn, good: Path, other: Path) -> dict[str, Callable[[Path, Path], None]]:
    """{path relative to the results folder: what to plant there}."""
    plants: dict[str, Callable[[Path, Path], None]] = {}
    ids = [good.stem, other.stem, "0123456789abcdef", "notes"]
    for name in draw(st.lists(st.sampled_from(ids), unique=True, max_size=4)):
        plants[f"cells/{name}.parquet"] = draw(_cell_plant(good, other))
    for name in draw(st.lists(st.sampled_from(ids[:3]), unique=True, max_size=3)):
        plants[f"cells/.claims/{name}.json"] = draw(_claim_plant())
    if draw(st.booleans()):
        plants[f"hostile/{draw(st.sampled_from(ids))}.parquet"] = draw(_cell_plant(good, other))  # earlier layout
    return plants


def _plant(results: Path, outside: Path, plants: dict[str, Callable[[Path, Path], None]]) -> None:
    (outside / "victim").write_text("mine\n")
    os.mkfifo(outside / "fifo")
    (results / "cells" / ".claims").mkdir(exist_ok=True)
    for relative, plant in plants.items():
        path = results / relative
        if os.path.lexists(path):
            path.unlink()
        plant(path, outside)


def test_no_planted_file_hangs_status_or_loading_or_escapes_the_results_folder(
        finished: tuple[Path, Path, list[str]]) -> None:
    suite, original, cell_ids = finished
    good, other = (original / "cells" / f"{i}.parquet" for i in cell_ids)

    @settings(max_examples=int(os.environ.get("ALB_FUZZ_EXAMPLES", "30")), deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(plants=_folders(good, other))
    def check(plants: dict[str, Callable[[Path, Path], None]]) -> None:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results, outside = Path(tmp) / "results", Path(tmp) / "outside"
            shutil.copytree(original, results)
            outside.mkdir()
            _plant(results, outside, plants)
            before = _outside_snapshot(outside)
            folders = [results, outside]

            code, err = finishes_within(SECONDS, lambda: _status(suite, results), folders)
            assert code in (0, cli.EXIT_USAGE) and "Traceback" not in err, err
            assert code == 0 or err.splitlines()[-1].startswith("alb: error: "), err
            for load in (lambda: load_results(results), lambda: load_suite_cells(results, "hostile", cell_ids)):
                _check_frame(finishes_within(SECONDS, lambda load=load: _loads_or_clear_error(load), folders),
                             cell_ids)
            assert _outside_snapshot(outside) == before

    check()
