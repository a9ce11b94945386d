"""Executors (benchmark/executors/): one cell, local workers, Ray tasks and a submitit job array all give the
rows and selections of one `alb run` process, run each cell once, and a killed task resumes its cell."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_SUITE, write_suite

from benchmark import cli
from benchmark.claims import try_claim
from benchmark.errors import AlbError
from benchmark.executors.common import RunSettings, run_cell_task, select_cell
from benchmark.executors.local import resolve_workers, threads_per_worker
from benchmark.executors.slurm import load_executor_config, minutes
from benchmark.status import status_lines
from benchmark.store import SuiteStore
from benchmark.suite import Suite, load_suite

CellRows = dict[str, tuple[list[float], list[list[int]]]]


@pytest.fixture(scope="module")
def suite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_suite(tmp_path_factory.mktemp("suite"), "tiny", TINY_SUITE)


@pytest.fixture(scope="module")
def suite(suite_path: Path) -> Suite:
    return load_suite(suite_path)


def alb_run(suite_path: Path, results: Path, *flags: str) -> int:
    """`alb run` in this process with one torch thread, restoring the test process's thread count."""
    import torch

    threads = torch.get_num_threads()
    try:
        return cli.main(["run", str(suite_path), "--results", str(results), "--threads", "1", "--quiet", *flags])
    finally:
        torch.set_num_threads(threads)


def cell_rows(results: Path) -> CellRows:
    """accuracy and selected per round, per cell id, from the parquet files (the shared cell store, and the
    suite's folder, where an earlier layout kept them)."""
    import pyarrow.parquet as pq

    rows: CellRows = {}
    for path in sorted([*(results / "cells").glob("*.parquet"), *(results / "tiny").glob("*.parquet")]):
        table = pq.read_table(path, columns=["cell_id", "round", "accuracy", "selected"]).to_pylist()
        table.sort(key=lambda r: r["round"])
        rows[table[0]["cell_id"]] = ([r["accuracy"] for r in table], [list(r["selected"]) for r in table])
    return rows


def events(results: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (results / "tiny" / "events.jsonl").read_text().splitlines()]


def started_by(results: Path) -> dict[str, list[dict[str, Any]]]:
    started: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events(results):
        if event["event"] == "cell_started":
            started[event["cell_id"]].append(event)
    return started


def assert_each_round_once(results: Path, cells: int, rounds: int = 3) -> None:
    finished = [(e["cell_id"], e["round"]) for e in events(results) if e["event"] == "round_finished"]
    assert len(finished) == len(set(finished)) == cells * rounds, finished


@pytest.fixture(scope="module")
def reference(suite_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CellRows]:
    """The suite run by one `alb run` process: what every executor must reproduce exactly."""
    results = tmp_path_factory.mktemp("reference")
    assert alb_run(suite_path, results) == 0
    rows = cell_rows(results)
    assert len(rows) == 4
    return results, rows


def test_cell_runs_exactly_that_cell(suite_path: Path, suite: Suite, reference: tuple[Path, CellRows],
                                     tmp_path: Path) -> None:
    cell = suite.cells[2]
    assert alb_run(suite_path, tmp_path, "--cell", cell.id[:6]) == 0
    rows = cell_rows(tmp_path)
    assert list(rows) == [cell.id]
    assert rows[cell.id] == reference[1][cell.id]
    assert [e["executor"] for e in started_by(tmp_path)[cell.id]] == ["local"]


def test_cell_unknown_or_ambiguous_is_a_clear_error(suite_path: Path, suite: Suite, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cell = suite.cells[0]
    assert select_cell(suite, cell.id) is cell
    typo = cell.id[:-1] + ("0" if cell.id[-1] != "0" else "1")
    assert alb_run(suite_path, tmp_path, "--cell", typo) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"no cell '{typo}'" in err and cell.id in err  # the close id is named
    with pytest.raises(AlbError, match="matches 4 cells"):
        select_cell(suite, "")
    assert not list(tmp_path.rglob("*.parquet"))


def test_executor_flags_are_checked(suite_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert alb_run(suite_path, tmp_path, "--workers", "2", "--executor", "ray") == cli.EXIT_USAGE
    assert "--workers belongs to --executor local" in capsys.readouterr().err
    assert alb_run(suite_path, tmp_path, "--cell", "ab", "--workers", "2") == cli.EXIT_USAGE
    assert "--cell runs one cell" in capsys.readouterr().err


def test_default_threads_never_oversubscribe() -> None:
    from benchmark.executors.common import cores

    for workers in range(1, cores() + 1):
        assert workers * threads_per_worker(workers, None) <= cores()
    assert threads_per_worker(2, 3) == 3


def test_auto_workers_one_per_core_on_cpu_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from benchmark.executors.common import cores

    cpu = RunSettings(tmp_path / "s.yaml", tmp_path, tmp_path, device="cpu")
    monkeypatch.delenv("ALB_WORKERS")
    assert resolve_workers(None, cpu, 18) == min(cores(), 18)
    assert resolve_workers("auto", cpu, 1) == 1  # one cell: this process, all threads
    assert resolve_workers(None, RunSettings(tmp_path / "s.yaml", tmp_path, tmp_path, device="cpu", threads=2),
                           18) == 1  # --threads: the user placed the threads, so one process
    assert resolve_workers(3, cpu, 18) == 3
    monkeypatch.setattr("benchmark.runner.pick_device", lambda requested: "cuda" if requested == "auto" else requested)
    gpu = RunSettings(tmp_path / "s.yaml", tmp_path, tmp_path, device="auto")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert resolve_workers(None, gpu, 18) == 1  # one GPU: this process
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,6")
    assert resolve_workers(None, gpu, 18) == 3  # one worker per GPU
    assert resolve_workers(None, gpu, 2) == 2
    assert resolve_workers(None, RunSettings(tmp_path / "s.yaml", tmp_path, tmp_path, device="cuda:1"), 18) == 1
    monkeypatch.setenv("ALB_WORKERS", "4")
    assert resolve_workers(None, cpu, 18) == 4
    monkeypatch.setenv("ALB_WORKERS", "many")
    with pytest.raises(AlbError, match=r"\$ALB_WORKERS must be a whole number"):
        resolve_workers(None, cpu, 18)


def test_workers_are_pinned_one_gpu_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """On several GPUs the k-th worker sees only GPU k (round robin when there are more workers)."""
    import multiprocessing

    from benchmark.executors.local import _pin_gpu, visible_gpus

    monkeypatch.setattr("benchmark.runner.pick_device", lambda requested: "cuda" if requested == "auto" else requested)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    gpus = visible_gpus("auto")
    assert gpus == ["3", "5"] and visible_gpus("cuda:1") == []
    slot = multiprocessing.get_context("spawn").Value("i", 0)
    seen = []
    for _ in range(3):
        _pin_gpu(slot, gpus)
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["3", "5", "3"]


def _visible_once_both_run(barrier: Any) -> str:
    barrier.wait(timeout=120)  # holds this worker until the other one runs the second task
    return os.environ["CUDA_VISIBLE_DEVICES"]


def test_pinning_reaches_spawned_workers() -> None:
    """The initializer and its shared counter survive the spawn start method: two workers, two GPUs."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from benchmark.executors.local import _pin_gpu

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, \
            ProcessPoolExecutor(2, mp_context=context, initializer=_pin_gpu,
                                initargs=(context.Value("i", 0), ["3", "5"])) as pool:
        barrier = manager.Barrier(2)
        seen = [f.result() for f in [pool.submit(_visible_once_both_run, barrier) for _ in range(2)]]
    assert sorted(seen) == ["3", "5"]


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_workers_flag_is_a_usage_error(suite_path: Path, tmp_path: Path, value: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        alb_run(suite_path, tmp_path, "--workers", value)
    assert exc.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_workers_give_the_rows_of_one_process(suite_path: Path, reference: tuple[Path, CellRows],
                                              tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert alb_run(suite_path, tmp_path, "--workers", "2") == 0
    assert cell_rows(tmp_path) == reference[1]
    started = started_by(tmp_path)
    assert len(started) == 4 and all(len(s) == 1 for s in started.values()), started
    assert {s[0]["executor"] for s in started.values()} == {"local worker"}
    assert os.getpid() not in {s[0]["pid"] for s in started.values()}  # ran in the workers
    assert_each_round_once(tmp_path, 4)
    err = capfd.readouterr().err
    assert err.count("] done ") == 4  # progress lines from the driver


def test_status_names_executor_and_host(suite_path: Path, suite: Suite, tmp_path: Path) -> None:
    store = SuiteStore(tmp_path, suite.name)
    claim, _ = try_claim(store.claims_dir, suite.cells[1].id, executor="ray")
    assert claim is not None
    with claim:
        lines = status_lines(suite, store)
    running = next(line for line in lines if suite.cells[1].id in line)
    assert "running" in running and f"[ray on {socket.gethostname()} pid {os.getpid()}]" in running
    assert all("[" not in line for line in lines if suite.cells[1].id not in line)


def test_task_refuses_results_it_cannot_see(suite_path: Path, suite: Suite, tmp_path: Path) -> None:
    """A task whose results folder is not the driver's (no token file there) fails before running."""
    settings = RunSettings(suite_path, tmp_path, tmp_path / "data", driver_token="0" * 32)
    with pytest.raises(AlbError, match="shared by all nodes"):
        run_cell_task(settings, suite.cells[0].id, "ray")
    assert not list(tmp_path.rglob("*.parquet"))


def test_executor_config_is_validated(tmp_path: Path) -> None:
    assert minutes("90") == 90 and minutes("01:30:00") == 90 and minutes("1-00:00:30") == 1441
    good = tmp_path / "good.yaml"
    good.write_text("partition: gpu\ntime: '02:00:00'\ngpus_per_cell: 1\nsetup: [module load cuda]\n")
    config = load_executor_config(good)
    assert (config.partition, config.time, config.gpus_per_cell, config.cluster) == ("gpu", 120, 1, "slurm")
    bad = tmp_path / "bad.yaml"
    bad.write_text("partiton: gpu\ntime: soon\n")
    with pytest.raises(AlbError, match="partiton: Extra inputs") as info:
        load_executor_config(bad)
    assert "time: Value error" in str(info.value) and "settings: cluster, partition" in str(info.value)


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'alb[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_rows_of_one_process_and_resumes_a_killed_task(
        ray_session: Any, suite_path: Path, suite: Suite, reference: tuple[Path, CellRows], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    killed = suite.cells[0].id
    monkeypatch.setenv("ALB_FAULT_KILL_AFTER_ROUND", "1")  # forwarded to the tasks by the driver
    monkeypatch.setenv("ALB_FAULT_CELL", killed)
    assert alb_run(suite_path, tmp_path, "--executor", "ray", "--max-retries", "2") == 0
    assert cell_rows(tmp_path) == reference[1]
    # the killed task was retried and resumed after round 1: rounds 0 and 1 ran once, like every other round
    assert_each_round_once(tmp_path, 4)
    assert (tmp_path / "cells" / ".work" / f"{killed}.fault-injected").is_file()
    resumed = [(e["cell_id"], e["round"]) for e in events(tmp_path) if e["event"] == "cell_resumed"]
    assert resumed == [(killed, 2)]
    started = started_by(tmp_path)
    assert len(started[killed]) == 2 and started[killed][0]["pid"] != started[killed][1]["pid"]
    assert all(len(started[c.id]) == 1 for c in suite.cells[1:])
    assert {e["executor"] for s in started.values() for e in s} == {"ray"}


def test_submitit_array_gives_the_rows_of_one_process(suite_path: Path, suite: Suite,
                                                      reference: tuple[Path, CellRows], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The Slurm code path through submitit's local executor. Two cells are done already; the other two are
    submitted as an array without waiting, then again with --wait: every cell still runs exactly once."""
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'alb[slurm]')")
    (tmp_path / "tiny").mkdir()
    for cell in suite.cells[:2]:
        # in the suite's folder, where an earlier layout kept them: still done
        shutil.copy(reference[0] / "cells" / f"{cell.id}.parquet", tmp_path / "tiny")
    config = tmp_path / "cluster.yaml"
    config.write_text("cluster: local\ntime: 10\n")
    submit = ("--executor", "slurm", "--executor-config", str(config))
    assert alb_run(suite_path, tmp_path, *submit) == 0
    out = capsys.readouterr().out
    assert "submitted 2 cell(s) of suite 'tiny' as job array" in out and "follow it with: alb status" in out
    assert alb_run(suite_path, tmp_path, *submit, "--wait") == 0
    assert cell_rows(tmp_path) == reference[1]
    started = started_by(tmp_path)
    assert sorted(started) == sorted(c.id for c in suite.cells[2:])
    assert all(len(s) == 1 and s[0]["executor"].startswith("slurm job ") for s in started.values()), started
    logs = tmp_path / "tiny" / ".slurm"
    deadline = time.monotonic() + 120  # the first array's tasks end once they see their cells done
    while len(list(logs.glob("*_result.pkl"))) < 4 and time.monotonic() < deadline:
        time.sleep(1)
    assert len(list(logs.glob("*_result.pkl"))) == 4


def test_pending_cells_costliest_first(tmp_path: Path) -> None:
    """Workers get the longest cells first (suite order among equals), so no long cell runs alone at the end."""
    from benchmark.executors.common import pending_cells

    tiny_defaults = TINY_SUITE.split("matrix:")[0].replace("name: tiny", "name: mixed")
    path = write_suite(tmp_path, "mixed", tiny_defaults + "matrix:\n  training.epochs: [1, 5, 3]\n"
                                                          "  strategy: [random, entropy]\n")
    mixed = load_suite(path)
    order = pending_cells(mixed, SuiteStore(tmp_path, mixed.name), force=False)
    # more epochs cost more; entropy scores the pool on top of the training random does
    pairs = [(c.config.training.epochs, c.config.strategy) for c in order]
    assert pairs[0] == (5, "entropy") and pairs[-1] == (1, "random")
    randoms = [c.config.training.epochs for c in order if c.config.strategy == "random"]
    assert randoms == [5, 3, 1]
    twins = load_suite(write_suite(tmp_path, "twins", TINY_SUITE))  # equal costs: suite order kept
    assert [c.id for c in pending_cells(twins, SuiteStore(tmp_path, "tiny"), force=False)] == \
        [c.id for c in sorted(twins.cells, key=lambda c: c.config.strategy != "entropy")]
