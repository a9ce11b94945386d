"""The local executor: the cells of a suite in this process, or spread over N worker processes.

Workers are spawned processes that each run one cell at a time through the same task function as the
cluster executors (:func:`benchmark.executors.common.run_cell_task`); claims keep any cell from running
twice, also next to other ``alb run`` processes on the same results folder.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

from benchmark.errors import AlbError
from benchmark.executors.common import (
    DriverProgress,
    RunSettings,
    announce_driver,
    cell_tasks,
    cores,
    pending_cells,
    retire_driver,
    run_cell_task,
)
from benchmark.runner import SuiteOutcome, run_suite
from benchmark.store import SuiteStore
from benchmark.suite import Suite


def threads_per_worker(workers: int, threads: int | None) -> int:
    """--threads when given, else cores/N: N workers never oversubscribe the CPU by default."""
    if threads is not None:
        return threads
    return max(1, cores() // workers)


def visible_gpus(device: str) -> list[str]:
    """The GPUs local workers can be spread over: those this process sees (``$CUDA_VISIBLE_DEVICES`` or
    all) when ``device`` resolves to plain ``cuda``; none on the CPU or for one chosen GPU (``cuda:1``),
    which the workers then share."""
    from benchmark.runner import pick_device

    if pick_device(device) != "cuda":
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def resolve_workers(requested: int | str | None, settings: RunSettings, pending: int) -> int:
    """The number of worker processes: ``requested`` (--workers), else $ALB_WORKERS, else ``auto``.

    auto, with at least two pending cells: on the CPU without --threads, one 1-thread worker per core
    (tiny CPU models train ~1.5x faster per core on one thread each than on all threads in one process,
    and N workers x cores/N threads never oversubscribe); on a machine with several GPUs, one worker
    per GPU (:func:`visible_gpus`); otherwise (one GPU, ``cuda:K``, --threads) this process alone.
    Never more workers than pending cells."""
    if requested is None:
        requested = os.environ.get("ALB_WORKERS", "auto").strip()
        if requested != "auto" and not (requested.isdigit() and int(requested) >= 1):
            raise AlbError(f"$ALB_WORKERS must be a whole number of workers (at least 1) or 'auto', got "
                           f"'{requested}'; unset it or fix it")
    if requested != "auto":
        return int(requested)
    if pending < 2:
        return 1
    from benchmark.runner import pick_device

    if pick_device(settings.device) == "cpu":
        return 1 if settings.threads is not None else min(cores(), pending)
    return max(1, min(len(visible_gpus(settings.device)), pending))


def _pin_gpu(slot: Any, gpus: list[str]) -> None:
    """Worker initializer: this worker sees one GPU, ``gpus[k mod len(gpus)]`` for the k-th worker
    started, as ``cuda`` (set before the worker touches CUDA, which reads the variable once)."""
    with slot.get_lock():
        k = slot.value
        slot.value += 1
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus[k % len(gpus)]


def run_in_process(suite: Suite, store: SuiteStore, settings: RunSettings, reporter_factory: Callable[..., Any],
                   only: list[str] | None = None) -> SuiteOutcome:
    """Today's `alb run`: the cells (or those of ``only``) one after the other in this process."""
    return run_suite(suite, store, settings.device, settings.data_dir, force=settings.force,
                     threads=settings.threads, precision=settings.precision, compile=settings.compile,
                     reporter_factory=reporter_factory, only=only)


def run_workers(suite: Suite, store: SuiteStore, settings: RunSettings, requested: int | str | None,
                reporter_factory: Callable[..., Any]) -> SuiteOutcome:
    """Every pending cell as one task of a pool of worker processes (:func:`resolve_workers`)."""
    if isinstance(requested, int) and requested < 1:
        raise AlbError(f"--workers must be at least 1, got {requested}")
    todo = pending_cells(suite, store, settings.force)
    workers = resolve_workers(requested, settings, len(todo))
    if workers == 1 or not todo:
        return run_in_process(suite, store, settings, reporter_factory)
    threads = threads_per_worker(workers, settings.threads)
    if workers * threads > cores():
        print(f"alb: warning: {workers} workers x {threads} threads > {cores()} cores: the CPU is oversubscribed",
              file=sys.stderr)
    settings = replace(settings, threads=threads, driver_token=announce_driver(store))
    context = multiprocessing.get_context("spawn")
    gpus = visible_gpus(settings.device)
    pinning: dict[str, Any] = ({"initializer": _pin_gpu, "initargs": (context.Value("i", 0), gpus)}
                               if len(gpus) > 1 else {})
    try:
        with DriverProgress(suite, store, len(suite.cells) - len(todo), reporter_factory) as progress, \
                ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context, **pinning) as pool:
            futures: dict[Future[Any], str] = {
                pool.submit(run_cell_task, settings, task, "local worker", False): task.cell_id
                for task in cell_tasks(suite, store, todo)}
            for future in as_completed(futures):
                try:
                    progress.record(future.result())
                except BrokenProcessPool as exc:
                    progress.failed(futures[future], f"a worker process died ({exc}); rerun to resume the cell",
                                    write_log=True)
                except Exception as exc:
                    progress.failed(futures[future], f"{type(exc).__name__}: {exc}", write_log=True)
    finally:
        retire_driver(store, settings.driver_token)
    return progress.outcome
