"""Claim files: at most one alb process runs a given cell at a time.

A claim is ``RESULTS/cells/.claims/<cell_id>.json`` (one per cell, whichever suite runs it)
holding the owner (host, pid, token); its
modification time is the heartbeat, refreshed by a background thread. A claim
is stale when its owner is a dead process on this host, or when its heartbeat is
older than ``stale_after`` seconds (owners on other machines sharing the disk).
A claim file that is not a valid claim (not a regular file, not JSON, no host/pid/token of the right
types), or whose heartbeat lies more than ``CLOCK_SKEW_SECONDS`` in the future, holds nothing: it is
stale, with a warning naming it, so a planted or damaged claim never blocks its cell.
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
import warnings
from pathlib import Path
from typing import Any

from benchmark.errors import ClaimWarning, NotRegularFileError, ResultsLayoutError
from benchmark.ops.locks import exclusive_lock
from benchmark.store import atomic_write, open_regular

HEARTBEAT_SECONDS = 15.0
STALE_AFTER_SECONDS = 120.0
# how far a heartbeat may lie in the future (clocks of hosts sharing the disk differ) before it is impossible
CLOCK_SKEW_SECONDS = 60.0
MAX_PID = 2**31 - 1  # pid_t is a signed 32-bit integer
MAX_CLAIM_BYTES = 64 * 1024  # a claim is one short JSON object


class InvalidClaimError(ValueError):
    """A claim file that is not a claim alb wrote; the message says why."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_claim(path: Path) -> tuple[dict[str, Any], os.stat_result]:
    """The owner a claim file records (host, pid, token, ...) and the file's stat (its mtime is the heartbeat).

    Raises FileNotFoundError when it is gone, OSError when it cannot be read, and InvalidClaimError (why) when
    it is not a claim: not a regular file (never opened then, so a FIFO never blocks), too large, not JSON,
    or without a host, a pid in 1..2^31-1 and a token of the right types."""
    try:
        with open_regular(path) as fh:
            st = os.fstat(fh.fileno())
            data = fh.read(MAX_CLAIM_BYTES + 1)
    except NotRegularFileError as exc:
        raise InvalidClaimError(f"it is {exc.kind}, not a regular file") from exc
    if len(data) > MAX_CLAIM_BYTES:
        raise InvalidClaimError(f"it is larger than {MAX_CLAIM_BYTES} bytes")
    try:
        owner = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidClaimError(f"it is not JSON ({exc})") from exc
    _check_owner(owner)
    return owner, st


def _check_owner(owner: object) -> None:
    if not isinstance(owner, dict):
        raise InvalidClaimError(f"it holds a JSON {type(owner).__name__}, not an object")
    pid = owner.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 1 <= pid <= MAX_PID:
        raise InvalidClaimError(f"its pid {pid!r} is not a process id (an integer in 1..{MAX_PID})")
    for key in ("host", "token"):
        if not isinstance(owner.get(key), str):
            raise InvalidClaimError(f"its {key} {owner.get(key)!r} is not a string")
    if not isinstance(owner.get("executor", ""), str):
        raise InvalidClaimError(f"its executor {owner.get('executor')!r} is not a string")


def stale_reason(path: Path, stale_after: float = STALE_AFTER_SECONDS) -> str | None:
    """Why the claim at ``path`` holds its cell no longer, or None while its owner may still be running it.

    An invalid claim or a heartbeat beyond the clock-skew allowance in the future is stale with a
    ClaimWarning naming the file: neither is something a live alb process writes."""
    try:
        owner, st = read_claim(path)
    except FileNotFoundError:
        return "it is gone"
    except InvalidClaimError as exc:
        return _warned(path, str(exc))
    except OSError as exc:  # unreadable: written atomically, so it is not ours to respect
        return _warned(path, f"it cannot be read ({exc.strerror or exc})")
    age = time.time() - st.st_mtime
    if age < -CLOCK_SKEW_SECONDS:
        return _warned(path, f"its heartbeat is {-age:.0f} s in the future, beyond the {CLOCK_SKEW_SECONDS:.0f} s "
                             "allowed for clock differences between hosts")
    if owner["host"] == socket.gethostname() and not _pid_alive(owner["pid"]):
        return f"its owner, pid {owner['pid']} on this host, has exited"
    if age > stale_after:
        return f"its heartbeat stopped {age:.0f} s ago"
    return None


def is_stale(path: Path, stale_after: float = STALE_AFTER_SECONDS) -> bool:
    return stale_reason(path, stale_after) is not None


def _warned(path: Path, why: str) -> str:
    warnings.warn(f"claim {path} holds nothing: {why}; treated as stale, so its cell can run",
                  ClaimWarning, stacklevel=3)
    return why


class Claim:
    """A held claim; refreshes its heartbeat until released."""

    def __init__(self, path: Path, token: str) -> None:
        self.path, self.token = path, token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError, NotImplementedError):  # never touches a link's target
                os.utime(self.path, follow_symlinks=False)

    def release(self) -> None:
        self._stop.set()
        with exclusive_lock(self.path.with_suffix(".lock")):
            try:
                owner, _ = read_claim(self.path)
            except (OSError, ValueError):  # InvalidClaimError is a ValueError
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
