"""Who runs the cells of `alb run`: this process, local workers, Ray tasks or a Slurm job array.

Every executor runs each cell through :func:`benchmark.runner.run_suite` and writes through the same
store, so `alb status`, `alb report` and `alb check` read the results the same way. The modules import
Ray and submitit only when those executors are chosen.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.errors import AlbError
from benchmark.executors.common import RunSettings, cores, forwarded_env, select_cell
from benchmark.runner import SuiteOutcome
from benchmark.store import SuiteStore
from benchmark.suite import Suite

EXECUTORS = ("local", "ray", "slurm")
_ONLY_FOR = {"workers": "local", "address": "ray", "max_retries": "ray", "executor_config": "slurm",
             "partition": "slurm", "time": "slurm", "wait": "slurm"}
_DEFAULTS: dict[str, Any] = {"workers": None, "max_retries": 3, "wait": False}


def settings_from_args(args: argparse.Namespace, suite: Suite, data_dir: Path) -> RunSettings:
    return RunSettings(suite.path.resolve(), Path(args.results).resolve(), Path(data_dir).resolve(),
                       args.device, args.threads, args.precision, args.compile, args.force, env=forwarded_env())


def _check_flags(args: argparse.Namespace) -> None:
    for flag, executor in _ONLY_FOR.items():
        if getattr(args, flag) != _DEFAULTS.get(flag) and args.executor != executor:
            raise AlbError(f"--{flag.replace('_', '-')} belongs to --executor {executor}, "
                           f"not --executor {args.executor}")
    if args.executor == "local" and (args.gpus_per_cell is not None or args.cpus_per_cell is not None):
        raise AlbError("--gpus-per-cell / --cpus-per-cell are for --executor ray or slurm; locally use "
                       "--device and --threads")
    if args.cell is not None and (args.executor != "local" or args.workers not in (None, 1)):
        raise AlbError("--cell runs one cell in this process; it does not combine with --executor or --workers")


def check_device_and_threads(args: argparse.Namespace) -> None:
    """Refuse at once, before a cell is claimed, what would fail every cell: locally a device this machine does
    not have, or more threads per cell than its cores (on ray / slurm the nodes decide: only the syntax and
    range that the parser checks)."""
    from benchmark.runner import pick_device

    if args.executor != "local":
        return
    if args.threads is not None and args.threads > cores():
        raise AlbError(f"--threads {args.threads}: this machine has {cores()} cores; give at most {cores()} "
                       "(more threads than cores only slow a cell down)")
    if args.device.startswith("cuda"):  # auto and cpu always work: torch is not imported for them
        pick_device(args.device)


def run_with_executor(args: argparse.Namespace, suite: Suite, store: SuiteStore, data_dir: Path,
                      reporter_factory: Callable[..., Any]) -> SuiteOutcome | None:
    """Run the suite as the `alb run` flags say; None when the cells were submitted without waiting."""
    from benchmark.data.requirements import require_inputs
    from benchmark.executors.common import pending_cells
    from benchmark.executors.local import run_in_process, run_workers
    from benchmark.plugin_check import check_cells

    _check_flags(args)
    settings = settings_from_args(args, suite, data_dir)
    cells = [select_cell(suite, args.cell)] if args.cell is not None else pending_cells(suite, store, args.force)
    # what the cells to run need, checked once here (not by each task), or one error before any cell starts:
    # the plugins they run, and their data, fetched and verified
    check_cells(cells)
    require_inputs(cells, settings.data_dir, [str(args.suite)])
    if args.cell is not None:
        return run_in_process(suite, store, settings, reporter_factory, only=[cells[0].id])
    if args.executor == "local":
        return run_workers(suite, store, settings, args.workers, reporter_factory)
    if not any(args.force or not store.is_done(c.id) for c in suite.cells):
        return run_in_process(suite, store, settings, reporter_factory)  # nothing to hand out
    if args.executor == "ray":
        from benchmark.executors.ray_executor import RayOptions, run_ray

        options = RayOptions(args.address, args.cpus_per_cell or 1.0, args.gpus_per_cell or 0.0, args.max_retries)
        return run_ray(suite, store, settings, options, reporter_factory)
    from benchmark.executors.slurm import load_executor_config, minutes, run_slurm

    config = load_executor_config(args.executor_config)
    overrides: dict[str, Any] = {"partition": args.partition, "cpus_per_cell": args.cpus_per_cell,
                                 "gpus_per_cell": args.gpus_per_cell}
    if args.time is not None:
        try:
            overrides["time"] = minutes(args.time)
        except ValueError as exc:
            raise AlbError(f"--time: {exc}") from None
    if args.gpus_per_cell is not None and args.gpus_per_cell != int(args.gpus_per_cell):
        raise AlbError(f"--gpus-per-cell must be a whole number for slurm, got {args.gpus_per_cell}")
    config = config.model_copy(update={k: (int(v) if k == "gpus_per_cell" else v)
                                       for k, v in overrides.items() if v is not None})
    return run_slurm(suite, store, settings, config, args.wait, reporter_factory)
