"""Claim files: one live owner per cell, stale claims are taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchmark.claims import is_stale, try_claim


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_claim_on_a_live_cell_is_refused_until_released(tmp_path: Path) -> None:
    first, _ = try_claim(tmp_path, "cell")
    assert first is not None
    second, _ = try_claim(tmp_path, "cell")
    assert second is None
    first.release()
    third, took_over = try_claim(tmp_path, "cell")
    assert third is not None and not took_over
    third.release()
    assert not (tmp_path / "cell.json").exists()


def test_claim_of_a_dead_process_on_this_host_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "token": "old"}))
    assert is_stale(path)
    claim, took_over = try_claim(tmp_path, "cell")
    assert claim is not None and took_over
    assert json.loads(path.read_text())["pid"] == os.getpid()
    claim.release()


def test_claim_from_another_host_is_stale_only_after_its_heartbeat_stops(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    path.write_text(json.dumps({"host": "other-machine", "pid": 1, "token": "t"}))
    assert not is_stale(path, stale_after=60)
    assert try_claim(tmp_path, "cell", stale_after=60)[0] is None
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert is_stale(path, stale_after=60)
    claim, took_over = try_claim(tmp_path, "cell", stale_after=60)
    assert claim is not None and took_over
    claim.release()


def test_release_does_not_delete_a_claim_someone_else_took_over(tmp_path: Path) -> None:
    claim, _ = try_claim(tmp_path, "cell")
    assert claim is not None
    path = tmp_path / "cell.json"
    path.write_text(json.dumps({"host": "other", "pid": 1, "token": "new-owner"}))
    claim.release()
    assert json.loads(path.read_text())["token"] == "new-owner"


_RACE = """
import sys
from pathlib import Path
from benchmark.claims import try_claim
sys.stdin.readline()  # the start signal
won = []
for i in range(int(sys.argv[2])):
    claim, _ = try_claim(Path(sys.argv[1]), f"cell{i}")
    if claim is not None:
        won.append(i)
print(" ".join(map(str, won)), flush=True)
sys.stdin.readline()  # alive, holding its claims, until every process has tried every cell
"""


def test_racing_processes_claim_every_cell_exactly_once(tmp_path: Path) -> None:
    cells = 30
    procs = [subprocess.Popen([sys.executable, "-c", _RACE, str(tmp_path), str(cells)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        won = [int(i) for p in procs if p.stdout is not None for i in p.stdout.readline().split()]
        assert sorted(won) == list(range(cells)), "a cell claimed twice or never"
    finally:
        for p in procs:
            p.communicate("done\n", timeout=60)
    assert all(p.returncode == 0 for p in procs)
