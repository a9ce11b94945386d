"""Results on disk.

Layout of one suite's folder (``RESULTS/<suite>/``)::

    <cell_id>.parquet        finished cell: one row per round, config in the metadata
    <cell_id>.failed.log     the traceback of the last failed attempt
    events.jsonl             what every alb process did, one JSON line per event
    .work/<cell_id>.pt       progress of an unfinished cell (rows, labeled set, weights)
    .claims/<cell_id>.json   which process runs the cell now (see claims.py)

Every file is written to a temporary name in the same folder and renamed into
place, so a crash never leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from benchmark import __version__
from benchmark.config import flatten

RESULT_SUFFIX = ".parquet"
METADATA_KEY = b"alb"
# columns of a result row that are not part of the cell's configuration
ROUND_COLUMNS = ("round", "n_labeled", "n_pseudo_labeled", "accuracy", "macro_f1", "train_loss", "train_seconds",
                 "query_seconds", "selected", "finished_at")
PROVENANCE_COLUMNS = ("alb_version", "git_commit", "torch_version", "device", "torch_threads", "host",
                      "python", "precision", "channels_last", "compiled")
IDENTITY_COLUMNS = ("suite", "cell_id")


def atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` and rename ``tmp`` onto ``target``; on any failure remove ``tmp``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the source tree alb runs from, or '' outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def provenance(device: str) -> dict[str, str]:
    import torch

    return {"alb_version": __version__, "git_commit": git_commit(), "torch_version": torch.__version__,
            "device": device, "torch_threads": str(torch.get_num_threads()), "host": socket.gethostname(),
            "python": platform.python_version()}


class SuiteStore:
    """Paths and reads/writes for one suite's results folder."""

    def __init__(self, results_dir: str | Path, suite_name: str) -> None:
        self.root = Path(results_dir)
        self.dir = self.root / suite_name
        self.suite_name = suite_name

    def result_path(self, cell_id: str) -> Path:
        return self.dir / f"{cell_id}{RESULT_SUFFIX}"

    def failed_path(self, cell_id: str) -> Path:
        return self.dir / f"{cell_id}.failed.log"

    def progress_path(self, cell_id: str) -> Path:
        return self.dir / ".work" / f"{cell_id}.pt"

    @property
    def claims_dir(self) -> Path:
        return self.dir / ".claims"

    def is_done(self, cell_id: str) -> bool:
        return self.result_path(cell_id).is_file()

    def log_event(self, event: str, **fields: Any) -> None:
        """Append one line; O_APPEND writes of one short line do not interleave."""
        self.dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"time": now_iso(), "pid": os.getpid(), "event": event, **fields}) + "\n"
        fd = os.open(self.dir / "events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def write_result(self, cell_id: str, config: dict[str, Any], axes: list[str],
                     rows: list[dict[str, Any]], meta: dict[str, str]) -> Path:
        """One parquet per cell: config columns + the versions of its components (version.strategy, ...;
        benchmark/versions.py) + per-round rows + provenance columns."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from benchmark.versions import version_columns

        config_columns = {k: (json.dumps(v) if isinstance(v, list | dict) else v)
                          for k, v in flatten(config).items()}
        config_columns.update(version_columns(config))
        records = [{"suite": self.suite_name, "cell_id": cell_id, **config_columns, **row, **meta}
                   for row in rows]
        table = pa.Table.from_pylist(records)
        metadata = {METADATA_KEY: json.dumps({"cell_id": cell_id, "suite": self.suite_name,
                                              "config": config, "axes": axes}).encode()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
        target = self.result_path(cell_id)
        atomic_write(target, lambda tmp: pq.write_table(table, tmp))
        return target

    def write_failure(self, cell_id: str, text: str) -> None:
        atomic_write(self.failed_path(cell_id), lambda tmp: tmp.write_text(text))

    def clear(self, cell_id: str) -> None:
        """Forget a cell's result, failure and progress (``alb run --force``)."""
        for path in (self.result_path(cell_id), self.failed_path(cell_id), self.progress_path(cell_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def read_cell_metadata(path: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    return json.loads(pq.read_schema(path).metadata[METADATA_KEY])


def result_files(dirs: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        files.extend(p for p in sorted(Path(d).rglob(f"*{RESULT_SUFFIX}"))
                     if not any(part.startswith(".") for part in p.relative_to(d).parts))
    return files


def load_results(*dirs: str | Path) -> Any:
    """One pandas DataFrame with the rows of every finished cell under ``dirs``."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames = [pq.read_table(p).to_pandas() for p in result_files(dirs or ("results",))]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False)


