"""Results on disk.

Every finished cell is stored once, under its id, whichever suite computed it; a suite is a view over the
ids it lists. Layout of a results folder (``RESULTS/``)::

    cells/<cell_id>.parquet        finished cell: one row per round, config in the metadata
    cells/<cell_id>.failed.log     the traceback of the last failed attempt
    cells/.work/<cell_id>.pt       progress of an unfinished cell (rows, labeled set, weights)
    cells/.claims/<cell_id>.json   which process runs the cell now (see claims.py)
    cells/.quarantine/<name>.<time>  damaged files moved aside (see below), kept for inspection
    <suite>/suite.json             the suite's cell ids and assumptions (benchmark/assumptions.py)
    <suite>/events.jsonl           what every alb process did for the suite, one JSON line per event
    <suite>/.drivers/<token>       drivers handing cells to tasks (benchmark/executors/common.py)

A cell finished by any suite is done for every suite that lists it. The parquet's ``suite`` column names
the suite that computed it; loading a suite's folder reads the cells of its ``suite.json`` from ``cells/``,
sets ``suite`` to the suite loaded and keeps the computing suite as ``computed_by``. Folders of earlier
versions (cells in ``RESULTS/<suite>/<cell_id>.parquet``) are read as they are, never moved: such a file
counts as done for its suite and is loaded with it (a cell in ``cells/`` is preferred).

Every file is written to a temporary name in the same folder and renamed into
place, so a crash never leaves a partial file behind. Files damaged anyway (a
disk error, a copy cut short, a hand edit) are never counted: a cell file is
checked whenever it is found (the parquet footer, the schema, alb's metadata and
the ``round`` and ``accuracy`` columns: one row per round 0..rounds) and read
in full when loaded; one that fails is moved to the ``.quarantine/`` folder beside
it with a warning, and its cell counts as not done, so ``alb run`` recomputes it.

Anyone who can write to a shared results folder can plant files in it. alb opens only regular files (a FIFO
or device is never opened, so never waited on), and follows symbolic links only for the results folder itself,
``cells/`` and cell files it reads: a link where it writes (a suite's folder, ``events.jsonl``, ``.claims``,
``.work``, ``.quarantine``, ``.drivers``) is a ResultsLayoutError, so nothing is written outside the folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import re
import socket
import stat
import subprocess
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from benchmark import __version__

# the roles of result columns are declared in benchmark/columns.py; these names are re-exported
from benchmark.columns import IDENTITY_COLUMNS as IDENTITY_COLUMNS
from benchmark.columns import LOADED_COLUMNS as LOADED_COLUMNS
from benchmark.columns import PROVENANCE_COLUMNS as PROVENANCE_COLUMNS
from benchmark.columns import ROUND_COLUMNS as ROUND_COLUMNS
from benchmark.config import flatten
from benchmark.errors import AlbError, DamagedFileWarning, NotRegularFileError, ResultsLayoutError
from benchmark.files import atomic_write as atomic_write  # re-exported (its home: below every writer)

RESULT_SUFFIX = ".parquet"
METADATA_KEY = b"alb"
# frame.attrs key of a loaded frame: the flattened configuration keys of its cells, from the files' metadata
CONFIG_COLUMNS_ATTR = "alb_config_columns"
# the test metric of a cell, one per task: accuracy (classification) or mAP@0.5 (detection, with COCO's ``map``)
METRIC_COLUMNS = ("accuracy", "map_50")
METRIC_NAMES = {"accuracy": "accuracy", "map_50": "mAP@0.5"}


def headline_metric(row: Mapping[str, Any]) -> tuple[str, float]:
    """(column, value) of a result row's test metric: accuracy, or mAP@0.5 for detection."""
    for column in METRIC_COLUMNS:
        if row.get(column) is not None:
            return column, float(row[column])
    raise KeyError(f"a result row has none of the metric columns {', '.join(METRIC_COLUMNS)}")
# what every cell file alb ever wrote holds and a report needs
REQUIRED_COLUMNS = (*IDENTITY_COLUMNS, "round", "n_labeled", "selected")  # and one of METRIC_COLUMNS
QUARANTINE_DIR = ".quarantine"
EVENTS_FILE = "events.jsonl"
CELLS_DIR = "cells"  # RESULTS/cells/: every finished cell of every suite, by id
SUITE_RECORD = "suite.json"  # written by benchmark/assumptions.py
CELL_ID_PATTERN = re.compile(r"[0-9a-f]{16}")  # config.py: the first 16 hex digits of a sha256
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


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


def path_kind(mode: int) -> str:
    """What a path that is not a regular file is, from its ``st_mode``: 'a folder', 'a FIFO (named pipe)', ..."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISLNK, "a symbolic link"))
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for binary reading when it is a regular file (a link to one is followed); anything else
    raises NotRegularFileError naming it. Never blocks: a FIFO or device is refused before it is opened, and
    the open itself is non-blocking in case one was put in the file's place in between."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(path, path_kind(st.st_mode), st)
    try:
        fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket put there since the stat
            st = os.stat(path)
            raise NotRegularFileError(path, path_kind(st.st_mode), st) from exc
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFileError(path, path_kind(st.st_mode), st)
    if _O_NONBLOCK:
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def cell_file_problem(path: Path, cell_id: str | None = None) -> str | None:
    """Why ``path`` is not a finished cell file (of ``cell_id``, default: its name), or None when it is one.

    Cheap: reads the parquet footer (schema and its column types, alb's metadata, row count) and the ``round``,
    metric and ``cell_id`` columns; a FIFO or device is never opened. A file that cannot be read for lack of
    permission is not judged: PermissionError propagates."""
    try:
        with open_regular(path) as fh:
            return parquet_problem(fh, cell_id or path.name.removesuffix(RESULT_SUFFIX))
    except NotRegularFileError as exc:
        return f"it is {exc.kind}, not a regular file"


def parquet_problem(fh: BinaryIO, expected_id: str) -> str | None:
    """:func:`cell_file_problem` of an open file (left open, at any position)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(fh) as parquet:
            schema = parquet.schema_arrow
            missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
            metric = next((c for c in METRIC_COLUMNS if c in schema.names), None)
            if metric is None:
                missing.append(" or ".join(METRIC_COLUMNS))
            if missing:
                return f"it lacks the column(s) {', '.join(missing)}"
            wrong = column_type_problem(schema)
            if wrong:
                return wrong
            meta = json.loads((schema.metadata or {}).get(METADATA_KEY, b"null"))
            if not isinstance(meta, dict):
                return "it has no alb metadata"
            if meta.get("cell_id") != expected_id:
                return f"its metadata names cell {meta.get('cell_id')!r}, not {expected_id!r}"
            config = meta.get("config")
            budget = config.get("budget") if isinstance(config, dict) else None
            rounds = budget.get("rounds") if isinstance(budget, dict) else None
            if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
                return "its metadata has no budget.rounds"
            if parquet.metadata.num_rows != rounds + 1:
                return f"it has {parquet.metadata.num_rows} rows, the cell has {rounds + 1} rounds"
            columns = parquet.read(columns=["round", metric, "cell_id"])
    except (PermissionError, FileNotFoundError):
        raise
    except (pa.ArrowException, OSError, ValueError, AttributeError, TypeError, RecursionError) as exc:
        return f"it cannot be read ({type(exc).__name__}: {exc})"
    if columns.column("round").to_pylist() != list(range(rounds + 1)):
        return f"its rounds are not 0..{rounds}"
    if columns.column(metric).null_count:
        return f"a round has no {metric}"
    named = set(columns.column("cell_id").to_pylist())
    if named != {expected_id}:  # the rows must say the cell their file's name and metadata say
        return f"its rows name cell(s) {sorted(map(str, named))[:3]}, not {expected_id!r}"
    return None


def _is_text(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _is_number(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def _is_integers(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(t))


def _is_integer_list(t: Any) -> bool:
    import pyarrow as pa

    return bool((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type))


# the type each result column must have (a report aggregates them); optional ones may also be all null
_REQUIRED_TYPES = {"suite": ("text", _is_text), "cell_id": ("text", _is_text), "round": ("integers", _is_integers),
                   "n_labeled": ("integers", _is_integers), "accuracy": ("numbers", _is_number),
                   "map_50": ("numbers", _is_number), "map": ("numbers", _is_number),
                   "selected": ("lists of integers", _is_integer_list)}
_OPTIONAL_TYPES = {"n_pseudo_labeled": ("integers", _is_integers), "macro_f1": ("numbers", _is_number),
                   "train_loss": ("numbers", _is_number), "train_seconds": ("numbers", _is_number),
                   "query_seconds": ("numbers", _is_number)}


def column_type_problem(schema: Any) -> str | None:
    """Which result column of the arrow ``schema`` has the wrong type (strings in ``accuracy``, ...), or None."""
    import pyarrow as pa

    for name, (what, fits) in (_REQUIRED_TYPES | _OPTIONAL_TYPES).items():
        if name not in schema.names:
            continue
        t = schema.field(name).type
        if not fits(t) and not (name in _OPTIONAL_TYPES and pa.types.is_null(t)):
            return f"its column {name} holds {t}, not {what}"
    return None


def quarantine(path: Path, why: str, suite_dir: Path | None = None,
               expected: os.stat_result | None = None) -> Path | None:
    """Move the damaged ``path`` to ``<suite_dir>/.quarantine/<name>.<UTC time>`` (suite_dir: its folder) with
    a warning naming both; returns where it went, or None when it is gone or was replaced since ``expected``
    (its stat when it was judged: another process may have just written a good file in its place).

    When it cannot be moved (a read-only results folder, no permission, a symbolic link where the quarantine
    folder belongs: alb never moves files through a link) it is left in place with a warning: still never
    counted, so reading commands work on read-only results."""
    folder = (suite_dir or path.parent) / QUARANTINE_DIR
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = folder / f"{path.name}.{stamp}"
    try:
        if expected is not None and _identity(path.stat()) != _identity(expected):
            return None
        _move_into(path, folder, target.name)
    except FileNotFoundError:
        return None  # another process moved it first
    except OSError as exc:
        reason = exc.strerror or str(exc)
        warnings.warn(f"{path} cannot be used ({why}); ignored and left in place (cannot move it to {folder}: "
                      f"{reason})", DamagedFileWarning, stacklevel=2)
        return None
    warnings.warn(f"{path} cannot be used ({why}); moved to {target}", DamagedFileWarning, stacklevel=2)
    return target


def _move_into(path: Path, folder: Path, name: str) -> None:
    """Rename ``path`` to ``folder/name``, creating ``folder``; never through a symbolic link in its place (the
    move goes through a descriptor opened without following links, so a link put there meanwhile fails too)."""
    if folder.is_symlink():
        raise OSError(errno.ELOOP, "it is a symbolic link; alb never moves files through a link", str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    if os.rename not in os.supports_dir_fd:  # Windows: no descriptor-relative rename
        os.rename(path, folder / name)
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.rename(path, name, dst_dir_fd=fd)
    finally:
        os.close(fd)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class SuiteStore:
    """Paths and reads/writes of one suite: its cells in the shared ``RESULTS/cells/``, its own files (events,
    suite.json, drivers) in ``RESULTS/<suite>/``."""

    def __init__(self, results_dir: str | Path, suite_name: str) -> None:
        if suite_name == CELLS_DIR:
            raise ResultsLayoutError(f"a suite cannot be named '{CELLS_DIR}': {Path(results_dir) / CELLS_DIR} "
                                     "holds the cells of every suite; rename the suite")
        self.root = Path(results_dir)
        self.dir = self.root / suite_name
        self.cells_dir = self.root / CELLS_DIR
        self.suite_name = suite_name
        self.check_layout()

    def check_layout(self) -> None:
        """A clear error, before any work, when a folder of the layout is a file, ``events.jsonl`` is not a
        regular file, or a path alb writes to is a symbolic link (only the results folder and ``cells/`` are
        followed: a link anywhere else could make alb write outside the results folder)."""
        hints = {self.root: "pass another --results or move the file away",
                 self.dir: "move the file away or pass another --results",
                 self.cells_dir: "move the file away (alb keeps the finished cells of every suite there)",
                 self.claims_dir: "move it away (it only holds claims of running cells)",
                 self.cells_dir / ".work": "move it away (it only holds checkpoints of unfinished cells)",
                 self.quarantine_dir: "move it away (it holds damaged files moved aside)",
                 self.dir / QUARANTINE_DIR: "move it away (it holds damaged files moved aside)"}
        for folder, hint in hints.items():
            if folder.exists() and not folder.is_dir():
                raise ResultsLayoutError(f"{folder} is a file where alb needs a folder; {hint}")
        for path in (self.dir, self.claims_dir, self.cells_dir / ".work", self.quarantine_dir,
                     self.dir / QUARANTINE_DIR, self.dir / ".drivers", self.dir / EVENTS_FILE):
            if path.is_symlink():
                raise ResultsLayoutError(
                    f"{path} is a symbolic link (to {os.readlink(path)}); alb never writes through a link inside a "
                    "results folder (it follows links only for the results folder itself and its cells/ folder): "
                    "replace the link with what it points to, or remove it")
        events = self.dir / EVENTS_FILE
        if events.exists() and not events.is_file():
            raise ResultsLayoutError(f"{events} is {path_kind(events.stat().st_mode)} where alb appends its events "
                                     "log (a regular file); move it away")

    def result_path(self, cell_id: str) -> Path:
        """Where the cell's result is written (``RESULTS/cells/<id>.parquet``)."""
        return self.cells_dir / f"{cell_id}{RESULT_SUFFIX}"

    def legacy_result_path(self, cell_id: str) -> Path:
        """Where alb before the shared cell store kept the suite's result (``RESULTS/<suite>/<id>.parquet``)."""
        return self.dir / f"{cell_id}{RESULT_SUFFIX}"

    def failed_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.failed.log"

    def progress_path(self, cell_id: str) -> Path:
        return self.cells_dir / ".work" / f"{cell_id}.pt"

    def adopt_legacy_progress(self, cell_id: str) -> None:
        """Move an unfinished cell's checkpoint from the earlier per-suite layout (``RESULTS/<suite>/.work/``)
        to ``RESULTS/cells/.work/`` so the cell resumes; call it only while holding the cell's claim."""
        legacy, current = self.dir / ".work" / f"{cell_id}.pt", self.progress_path(cell_id)
        if legacy.is_file() and not os.path.lexists(current):
            current.parent.mkdir(parents=True, exist_ok=True)
            os.replace(legacy, current)
            self.log_event("checkpoint_adopted", cell_id=cell_id, path=str(legacy))

    @property
    def claims_dir(self) -> Path:
        return self.cells_dir / ".claims"

    @property
    def quarantine_dir(self) -> Path:
        return self.cells_dir / QUARANTINE_DIR

    def is_done(self, cell_id: str) -> bool:
        """Whether a valid result of the cell exists (see :meth:`done_path`)."""
        return self.done_path(cell_id) is not None

    def done_path(self, cell_id: str) -> Path | None:
        """The cell's result file, in ``cells/`` or else (an earlier layout) in the suite's folder, that passes
        :func:`cell_file_problem`, or None; a damaged one is moved to the quarantine beside it (warned, logged)
        so the cell runs again."""
        for path in (self.result_path(cell_id), self.legacy_result_path(cell_id)):
            if self._valid(path, cell_id):
                return path
        return None

    def cell_file(self, cell_id: str) -> Path:
        """The file that holds (or will hold) the cell's result, unchecked: for naming it in messages."""
        legacy = self.legacy_result_path(cell_id)
        new = self.result_path(cell_id)
        return legacy if not os.path.lexists(new) and os.path.lexists(legacy) else new

    def _valid(self, path: Path, cell_id: str) -> bool:
        if not os.path.lexists(path):
            return False
        try:
            before: os.stat_result | None = path.stat()
            why = cell_file_problem(path, cell_id)
        except FileNotFoundError:  # gone, or a link to nothing: not done (a result written later replaces it)
            return False
        except PermissionError:
            raise
        except OSError as exc:  # a loop of symbolic links, an I/O error: damaged like an unreadable file
            before, why = None, f"it cannot be opened ({exc.strerror or exc})"
        if why is None:
            return True
        moved = quarantine(path, why, path.parent, expected=before)
        if moved is not None:
            # the move itself is what matters; the log is a courtesy
            with contextlib.suppress(OSError, AlbError):
                self.log_event("file_quarantined", cell_id=cell_id, path=str(path), moved_to=str(moved),
                               reason=why)
        return False

    def log_event(self, event: str, **fields: Any) -> None:
        """Append one line; O_APPEND writes of one short line do not interleave. Never through a symbolic link
        and never blocking on a FIFO: anything but a regular file there is a ResultsLayoutError."""
        self.dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"time": now_iso(), "pid": os.getpid(), "event": event, **fields}) + "\n"
        path = self.dir / EVENTS_FILE
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | _O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO) or path.is_symlink():  # a link, or a FIFO nobody reads
                self.check_layout()
            raise
        try:
            kind = os.fstat(fd).st_mode
            if not stat.S_ISREG(kind):
                raise NotRegularFileError(path, path_kind(kind))
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def write_result(self, cell_id: str, config: dict[str, Any], axes: list[str],
                     rows: list[dict[str, Any]], meta: dict[str, str]) -> Path:
        """One parquet per cell: config columns + the versions of its components (version.strategy, ...;
        benchmark/versions.py) + the digests of its by-path inputs (input.dataset, input.init;
        benchmark/inputs.py) + per-round rows + provenance columns (their roles: benchmark/columns.py); the
        resolved ``config`` in the metadata says which columns are the configuration."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from benchmark.inputs import input_columns
        from benchmark.versions import plugin_columns, version_columns

        config_columns = {k: (json.dumps(v) if isinstance(v, list | dict) else v)
                          for k, v in flatten(config).items()}
        config_columns.update(version_columns(config))
        config_columns.update(input_columns(config))
        config_columns.update(plugin_columns(config))
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
        """Forget a cell's result, failure and progress in ``cells/`` (``alb run --force``; a result of an earlier
        layout in the suite's folder is left alone: the new one takes its place when loading); a folder in a
        file's place is moved to quarantine."""
        for path in (self.result_path(cell_id), self.failed_path(cell_id), self.progress_path(cell_id)):
            if path.is_dir() and not path.is_symlink():
                quarantine(path, "it is a folder, not a file", self.cells_dir)
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def read_cell_metadata(path: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    with open_regular(path) as fh:
        return json.loads(pq.read_schema(fh).metadata[METADATA_KEY])


def result_files(dirs: Iterable[str | Path]) -> list[Path]:
    """Every ``*.parquet`` under ``dirs``, hidden folders (.work, .quarantine, ...) skipped; a path in ``dirs``
    that is a file is an error (a missing one has no results)."""
    files: list[Path] = []
    for d in dirs:
        if Path(d).exists() and not Path(d).is_dir():
            raise ResultsLayoutError(f"{d} is a file, not a results folder; pass the folder that --results "
                                     "pointed to")
        files.extend(p for p in sorted(Path(d).rglob(f"*{RESULT_SUFFIX}"))
                     if not any(part.startswith(".") for part in p.relative_to(d).parts))
    return files


def _is_alb_cell(path: Path) -> bool:
    """Named like a cell or carrying alb's metadata: ours to quarantine when damaged (anything else is a stray
    file someone put there, ignored with a warning but never moved)."""
    if CELL_ID_PATTERN.fullmatch(path.name.removesuffix(RESULT_SUFFIX)):
        return True
    import pyarrow.parquet as pq

    try:
        with open_regular(path) as fh:
            return METADATA_KEY in (pq.read_schema(fh).metadata or {})
    except Exception:  # unreadable, not a regular file, and not named like a cell: not ours
        return False


def _read_cell(path: Path) -> Any:
    """The cell file's rows as a pandas DataFrame, or None (a stray file warned about, a damaged cell
    quarantined). The file is opened once, checked and read through the same descriptor, and only when it
    is a regular file (a FIFO is never waited on)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not _is_alb_cell(path):
        warnings.warn(f"ignoring {path}: not an alb cell file (no alb metadata, not named like a cell)",
                      DamagedFileWarning, stacklevel=3)
        return None
    before = None
    try:
        with open_regular(path) as fh:
            before = os.fstat(fh.fileno())
            why = parquet_problem(fh, path.name.removesuffix(RESULT_SUFFIX))
            if why is None:
                fh.seek(0)
                table = pq.read_table(fh)
                frame = table.to_pandas()
                frame.attrs[CONFIG_COLUMNS_ATTR] = _config_columns(table.schema.metadata or {})
                return frame
    except FileNotFoundError:
        return None
    except PermissionError:
        raise
    except NotRegularFileError as exc:
        before, why = exc.st, f"it is {exc.kind}, not a regular file"
    except (pa.ArrowException, OSError) as exc:  # footer fine, but a data page is damaged
        why = f"it cannot be read ({type(exc).__name__}: {exc})"
    quarantine(path, why, expected=before)
    return None


def _config_columns(metadata: dict[bytes, bytes]) -> list[str]:
    """The flattened configuration keys of a cell file, from the ``config`` of its alb metadata (every file alb
    wrote has one: parquet_problem refuses a file without it)."""
    config = json.loads(metadata.get(METADATA_KEY, b"{}")).get("config")
    return sorted(flatten(config)) if isinstance(config, dict) else []


def _concat(frames: list[Any]) -> Any:
    """One frame of the cells' frames; ``attrs[CONFIG_COLUMNS_ATTR]``: the configuration keys of them all
    (benchmark/columns.py: what the report derives protocols from)."""
    import pandas as pd

    if not frames:
        return pd.DataFrame()
    keys = sorted({k for f in frames for k in f.attrs.get(CONFIG_COLUMNS_ATTR, ())})
    for f in frames:
        f.attrs = {}  # pandas keeps attrs through concat only when they are equal
    frame = pd.concat(frames, ignore_index=True, sort=False)
    frame.attrs[CONFIG_COLUMNS_ATTR] = keys
    return frame


def load_results(*dirs: str | Path) -> Any:
    """One pandas DataFrame with the rows of every finished cell under ``dirs``; damaged cell files are
    quarantined and stray parquet files ignored, each with a warning.

    A suite's folder (one with a ``suite.json``) is a view: the cells its record lists, read from the
    ``cells/`` folder beside it, plus any cell files of an earlier layout in the folder itself, all with
    ``suite`` set to that suite (``computed_by``: the suite that computed the cell). A folder holding
    several suites gives each suite's view (a cell two suites share appears once per suite, as it did when
    each suite kept its own copy), then every other cell file under it with its own suite."""
    frames: list[Any] = []
    for d in dirs or ("results",):
        frames.extend(_folder_frames(Path(d)))
    return _concat(frames)


def load_suite_cells(results_dir: str | Path, suite_name: str, cell_ids: Iterable[str]) -> Any:
    """The rows of the finished cells among ``cell_ids`` (a suite's cells, known from its file) in
    ``results_dir``, from ``cells/`` or an earlier layout's suite folder, with ``suite`` set to ``suite_name``."""
    root = Path(results_dir)
    return _concat(_view_frames(root / CELLS_DIR, root / suite_name, list(cell_ids), set(), legacy_extras=False))


def _folder_frames(folder: Path) -> list[Any]:
    if folder.exists() and not folder.is_dir():
        raise ResultsLayoutError(f"{folder} is a file, not a results folder; pass the folder that --results "
                                 "pointed to")
    seen: set[Path] = set()
    frames: list[Any] = []
    for record in _suite_records(folder):
        suite_dir = record.parent
        frames += _view_frames(suite_dir.parent / CELLS_DIR, suite_dir, _record_cell_ids(record), seen)
    for path in result_files([folder]):
        if path.absolute() not in seen:
            frame = _read_cell(path)
            if frame is not None:
                frames.append(_labelled(frame, None))
    return frames


def _suite_records(folder: Path) -> list[Path]:
    """Every suite's ``suite.json`` under ``folder`` (itself included), hidden folders skipped."""
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.rglob(SUITE_RECORD))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]


def _record_cell_ids(record: Path) -> list[str]:
    """The cell ids a ``suite.json`` lists; none when it cannot be read (its folder's own files still load)."""
    try:
        with open_regular(record) as fh:
            cells = json.loads(fh.read().decode("utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError, AlbError):
        return []
    return [c for c in cells if isinstance(c, str) and CELL_ID_PATTERN.fullmatch(c)] if isinstance(cells, list) \
        else []


def _view_frames(cells_dir: Path, suite_dir: Path, cell_ids: list[str], seen: set[Path],
                 legacy_extras: bool = True) -> list[Any]:
    """The frames of one suite's view: each listed cell from ``cells_dir`` or else from ``suite_dir`` (an earlier
    layout), then (``legacy_extras``) the other cell files of the earlier layout in ``suite_dir``; every path
    looked at is added to ``seen``."""
    frames: list[Any] = []
    suite_name = suite_dir.name
    for cell_id in dict.fromkeys(cell_ids):
        for path in (cells_dir / f"{cell_id}{RESULT_SUFFIX}", suite_dir / f"{cell_id}{RESULT_SUFFIX}"):
            if not os.path.lexists(path):
                continue
            seen.add(path.absolute())
            frame = _read_cell(path)
            if frame is not None:
                frames.append(_labelled(frame, suite_name))
                break
    legacy = sorted(suite_dir.glob(f"*{RESULT_SUFFIX}")) if suite_dir.is_dir() else []
    for path in legacy:
        if path.absolute() in seen:
            continue
        seen.add(path.absolute())
        if legacy_extras:
            frame = _read_cell(path)
            if frame is not None:
                frames.append(_labelled(frame, suite_name))
    return frames


def _labelled(frame: Any, suite_name: str | None) -> Any:
    """``computed_by`` from the file's ``suite`` column; ``suite`` set to the suite loaded (None: kept)."""
    frame["computed_by"] = frame["suite"]
    if suite_name is not None:
        frame["suite"] = suite_name
    return frame
