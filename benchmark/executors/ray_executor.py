"""The Ray executor: every pending cell is one Ray task, retried when its worker dies.

A retried task reruns the cell, which resumes from the checkpoint of its last finished round
(RESULTS/cells/.work/). Without an address a local Ray instance is started on this machine's cores.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
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
from benchmark.runner import SuiteOutcome
from benchmark.store import SuiteStore
from benchmark.suite import Suite


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    max_retries: int = 3


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise AlbError("--executor ray needs Ray: pip install 'alb[ray]' (or pip install 'ray>=2.9')") from None
    return ray


def run_ray(suite: Suite, store: SuiteStore, settings: RunSettings, options: RayOptions,
            reporter_factory: Callable[..., Any]) -> SuiteOutcome:
    ray = _import_ray()
    todo = pending_cells(suite, store, settings.force)
    threads = settings.threads or max(1, math.floor(options.cpus_per_cell))
    settings = replace(settings, threads=threads, driver_token=announce_driver(store))
    started_here = not ray.is_initialized()
    if started_here:
        if options.address:
            ray.init(address=options.address)
        else:
            ray.init(num_cpus=cores(), include_dashboard=False)
    try:
        task = ray.remote(run_cell_task).options(num_cpus=options.cpus_per_cell, num_gpus=options.gpus_per_cell,
                                                 max_retries=options.max_retries, retry_exceptions=False)
        refs = {task.remote(settings, t, "ray"): t.cell_id for t in cell_tasks(suite, store, todo)}
        with DriverProgress(suite, store, len(suite.cells) - len(todo), reporter_factory) as progress:
            waiting = list(refs)
            while waiting:
                finished, waiting = ray.wait(waiting, num_returns=1)
                for ref in finished:
                    try:
                        progress.record(ray.get(ref))
                    except ray.exceptions.RayError as exc:  # the worker died more often than max_retries
                        progress.failed(refs[ref], f"Ray task failed after {options.max_retries} retries: "
                                                   f"{type(exc).__name__}: {exc}", write_log=True)
    finally:
        retire_driver(store, settings.driver_token)
        if started_here:
            ray.shutdown()
    return progress.outcome
