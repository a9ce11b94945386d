"""The Slurm executor: one job array through submitit, one array task per pending cell.

``alb run --executor slurm`` submits and returns (follow with ``alb status``), or waits with ``--wait``.
A task that times out or is preempted is requeued by submitit (:meth:`SlurmCellTask.checkpoint`) and
resumes its cell from the last finished round. ``cluster: local`` in the executor config runs the same
code path with submitit's local executor (subprocesses on this machine), for tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from benchmark.errors import AlbError
from benchmark.executors.common import (
    CellReport,
    CellTask,
    DriverProgress,
    RunSettings,
    announce_driver,
    cell_tasks,
    pending_cells,
    retire_driver,
    run_cell_task,
)
from benchmark.runner import SuiteOutcome
from benchmark.store import SuiteStore
from benchmark.suite import Suite

_TIME = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$")  # D-HH:MM:SS, HH:MM:SS, MM:SS


def minutes(value: int | str) -> int:
    """Slurm time limits: minutes, or [D-][HH:]MM:SS."""
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    match = _TIME.match(str(value).strip())
    if not match:
        raise ValueError(f"expected minutes or [D-]HH:MM:SS, got '{value}'")
    days, hours, mins, secs = (int(g or 0) for g in match.groups())
    return days * 1440 + hours * 60 + mins + (1 if secs else 0)


class SlurmConfig(BaseModel):
    """``--executor-config FILE`` (YAML); flags given on the command line win."""

    model_config = ConfigDict(extra="forbid")

    cluster: Literal["slurm", "local"] = "slurm"
    partition: str | None = None
    time: int = Field(default=60, gt=0, description="minutes per array task (or [D-]HH:MM:SS)")
    cpus_per_cell: int = Field(default=1, gt=0)
    gpus_per_cell: int = Field(default=0, ge=0)
    mem_gb: float | None = Field(default=None, gt=0)
    array_parallelism: int | None = Field(default=None, gt=0, description="array tasks running at once")
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: list[str] = Field(default_factory=list, description="shell lines before each task (module load ...)")
    additional: dict[str, str | int] = Field(default_factory=dict, description="more #SBATCH options")
    logs: Path | None = Field(default=None, description="submitit's folder (default RESULTS/<suite>/.slurm)")

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> int:
        return minutes(value)


def load_executor_config(path: Path | None) -> SlurmConfig:
    if path is None:
        return SlurmConfig()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise AlbError(f"cannot read the executor config {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise AlbError(f"executor config {path}: expected a mapping of settings, got {type(raw).__name__}")
    try:
        return SlurmConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        known = ", ".join(SlurmConfig.model_fields)
        raise AlbError(f"executor config {path}: {problems} (settings: {known})") from None


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise AlbError("--executor slurm needs submitit: pip install 'alb[slurm]' "
                       "(or pip install 'submitit>=1.5')") from None
    return submitit


class SlurmCellTask:
    """What an array task runs; ``checkpoint`` makes submitit requeue it on timeout or preemption."""

    def __call__(self, settings: RunSettings, task: CellTask | str) -> CellReport:
        import submitit

        return run_cell_task(settings, task, f"slurm job {submitit.JobEnvironment().job_id}")

    def checkpoint(self, settings: RunSettings, task: CellTask | str) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, settings, task)  # the cell resumes on its own


def _executor(submitit: Any, config: SlurmConfig, folder: Path, name: str) -> Any:
    executor = submitit.AutoExecutor(folder=folder, cluster=config.cluster)
    params: dict[str, Any] = {"name": name, "timeout_min": config.time, "cpus_per_task": config.cpus_per_cell,
                              "gpus_per_node": config.gpus_per_cell, "tasks_per_node": 1, "nodes": 1}
    if config.mem_gb is not None:
        params["mem_gb"] = config.mem_gb
    if config.cluster == "slurm":
        slurm = {"partition": config.partition, "array_parallelism": config.array_parallelism,
                 "account": config.account, "qos": config.qos, "constraint": config.constraint,
                 "setup": config.setup or None, "additional_parameters": config.additional or None}
        params.update({f"slurm_{k}": v for k, v in slurm.items() if v is not None})
    else:
        params["local_setup"] = config.setup
    executor.update_parameters(**params)
    return executor


def run_slurm(suite: Suite, store: SuiteStore, settings: RunSettings, config: SlurmConfig, wait: bool,
              reporter_factory: Callable[..., Any]) -> SuiteOutcome | None:
    """Submit the pending cells as one array; None when submitted without waiting."""
    submitit = _import_submitit()
    todo = pending_cells(suite, store, settings.force)
    settings = replace(settings, threads=settings.threads or config.cpus_per_cell,
                       driver_token=announce_driver(store))
    folder = (config.logs or store.dir / ".slurm").resolve()
    executor = _executor(submitit, config, folder, f"alb-{suite.name}")
    jobs = executor.map_array(SlurmCellTask(), [settings] * len(todo), cell_tasks(suite, store, todo))
    cell_of = {job.job_id: cell.id for job, cell in zip(jobs, todo, strict=True)}
    array_id = jobs[0].job_id.split("_")[0]
    store.log_event("slurm_submitted", job_id=array_id, cells=len(todo))
    print(f"submitted {len(todo)} cell(s) of suite '{suite.name}' as job array {array_id} "
          f"({config.cluster}; logs in {folder})")
    if not wait:
        print(f"follow it with: alb status {suite.path} --results {settings.results}"
              + (f"   (squeue -j {array_id})" if config.cluster == "slurm" else ""))
        return None
    try:
        with DriverProgress(suite, store, len(suite.cells) - len(todo), reporter_factory) as progress:
            for job in submitit.helpers.as_completed(jobs, poll_frequency=2):
                try:
                    progress.record(job.result())
                except Exception as exc:  # the task itself crashed or was cancelled
                    progress.failed(cell_of[job.job_id], f"job {job.job_id} failed: {type(exc).__name__}: {exc}",
                                    write_log=True)
    finally:
        retire_driver(store, settings.driver_token)
    return progress.outcome
