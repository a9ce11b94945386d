"""An exclusive lock between processes (and threads) on a lock file, by the ``filelock`` package: ``flock`` on
POSIX, ``msvcrt.locking`` on Windows, released by the operating system when its holder dies, so a killed
process never leaves a lock behind. Used by the cell claims and the pre-training cache."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold ``path`` locked exclusively, waiting as long as another holder keeps it (its folder is created if
    missing). Not re-entrant across calls: a thread that nests two calls on one path waits for itself."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield
