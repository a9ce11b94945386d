"""benchmark.ops.locks: mutual exclusion between threads and processes, and no lock outlives a killed holder."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmark.ops.locks import exclusive_lock


def test_threads_never_overlap_inside_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "sub" / "x.lock"  # the folder is created
    inside, overlaps = [0], [0]

    def work() -> None:
        for _ in range(20):
            with exclusive_lock(lock):
                inside[0] += 1
                overlaps[0] += inside[0] > 1
                time.sleep(0.001)
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 0


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from benchmark.ops.locks import "
         "exclusive_lock\nwith exclusive_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
         str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        got = threading.Event()

        def take() -> None:
            with exclusive_lock(lock):
                got.set()

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        assert not got.wait(0.5), "the lock was taken while another process held it"
        holder.kill()
        assert got.wait(10), "the lock of a killed process was not released"
    finally:
        holder.kill()
        holder.wait()
