"""Claim files: at most one alb process runs a given cell at a time.

A claim is ``RESULTS/cells/.claims/<cell_id>.json`` (one per cell, whichever suite runs it)
holding the owner (host, pid, token); its
modification time is the heartbeat, refreshed by a background thread. A claim
is stale when its owner is a dead process on this host, or when its heartbeat is
older than ``stale_after`` seconds (owners on other machines sharing the disk).
Creating or taking over a claim happens under an exclusive lock on
``.claims/<cell_id>.lock`` (:func:`benchmark.ops.locks.exclusive_lock`) so two
processes never both win.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from benchmark.errors import ResultsLayoutError
from benchmark.ops.locks import exclusive_lock
from benchmark.store import atomic_write

HEARTBEAT_SECONDS = 15.0
STALE_AFTER_SECONDS = 120.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(path: Path, stale_after: float = STALE_AFTER_SECONDS) -> bool:
    try:
        owner = json.loads(path.read_text())
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return True  # unreadable claim: written atomically, so it is not ours to respect
    if owner.get("host") == socket.gethostname() and not _pid_alive(int(owner.get("pid", -1))):
        return True
    return age > stale_after


class Claim:
    """A held claim; refreshes its heartbeat until released."""

    def __init__(self, path: Path, token: str) -> None:
        self.path, self.token = path, token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        with exclusive_lock(self.path.with_suffix(".lock")):
            try:
                owner = json.loads(self.path.read_text())
            except (OSError, ValueError):
                return
            if owner.get("token") == self.token:
                self.path.unlink()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _check_not_a_folder(*paths: Path) -> None:
    """A folder where a claim or its lock file belongs (a hand-made mess) would fail deep in a write: say so."""
    for path in paths:
        if path.is_dir():
            raise ResultsLayoutError(f"{path} is a folder where alb keeps a claim file; remove it (no alb process "
                                     "may be running this suite then) and rerun")


def try_claim(claims_dir: Path, cell_id: str, stale_after: float = STALE_AFTER_SECONDS,
              executor: str = "local") -> tuple[Claim | None, bool]:
    """(claim, took_over_stale) or (None, False) when a live process holds the cell; ``executor`` (local,
    ray, slurm job ...) is recorded with the owner for `alb status`."""
    path = claims_dir / f"{cell_id}.json"
    _check_not_a_folder(path, path.with_suffix(".lock"))
    with exclusive_lock(path.with_suffix(".lock")):
        took_over = path.exists()
        if took_over and not is_stale(path, stale_after):
            return None, False
        token = uuid.uuid4().hex
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "token": token,
                 "since": time.time(), "executor": executor}
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(owner)))
    return Claim(path, token), took_over
