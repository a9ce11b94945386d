"""Claim files: one live owner per cell, stale claims are taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import finishes_within

from benchmark.claims import CLOCK_SKEW_SECONDS, InvalidClaimError, is_stale, read_claim, try_claim
from benchmark.errors import ClaimWarning


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


def _other_hosts_claim(path: Path, **fields: object) -> None:
    path.write_text(json.dumps({"host": "other-machine", "pid": 1, "token": "t", **fields}))


def test_heartbeat_in_the_future_beyond_the_clock_skew_allowance_is_stale_and_said(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    _other_hosts_claim(path)
    soon = time.time() + CLOCK_SKEW_SECONDS / 2  # another host's clock a little ahead: still a live claim
    os.utime(path, (soon, soon))
    assert not is_stale(path, stale_after=60)
    next_year = time.time() + 365 * 24 * 3600
    os.utime(path, (next_year, next_year))
    with pytest.warns(ClaimWarning, match=f"claim {path} holds nothing: its heartbeat is 3153[0-9]{{4}} s in the "
                                          "future.*treated as stale"):
        claim, took_over = try_claim(tmp_path, "cell", stale_after=60)
    assert claim is not None and took_over
    claim.release()


BAD_CLAIMS = {"pid text": '{"host": "h", "pid": "abc", "token": "t"}',
              "a list": "[1, 2, 3]", "null": "null",
              "pid 10^20": '{"host": "h", "pid": 100000000000000000000, "token": "t"}',
              "pid 0": '{"host": "h", "pid": 0, "token": "t"}',
              "pid -1": '{"host": "h", "pid": -1, "token": "t"}',
              "pid true": '{"host": "h", "pid": true, "token": "t"}',
              "no host": '{"pid": 12, "token": "t"}',
              "token a number": '{"host": "h", "pid": 12, "token": 5}',
              "not JSON": "{\"host\": ", "not UTF-8": b"\xff\xfe\x00".decode("latin-1"),
              "deeply nested": "[" * 30_000 + "]" * 30_000}


@pytest.mark.parametrize("text", BAD_CLAIMS.values(), ids=BAD_CLAIMS)
def test_a_claim_that_is_not_a_claim_is_stale_with_a_warning(text: str, tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.warns(ClaimWarning, match=f"claim {path} holds nothing: it"):
        assert is_stale(path)
    with pytest.raises(InvalidClaimError):
        read_claim(path)
    with pytest.warns(ClaimWarning):
        claim, took_over = try_claim(tmp_path, "cell")
    assert claim is not None and took_over
    path.write_bytes(text.encode("latin-1"))  # planted again while held: release leaves it alone
    claim.release()
    assert path.read_bytes() == text.encode("latin-1")


def test_a_fifo_claim_is_never_opened_for_reading_and_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    os.mkfifo(path)
    with pytest.warns(ClaimWarning, match=r"it is a FIFO \(named pipe\), not a regular file"):
        assert finishes_within(30, lambda: is_stale(path), [tmp_path])
    with pytest.warns(ClaimWarning):
        claim, took_over = finishes_within(30, lambda: try_claim(tmp_path, "cell"), [tmp_path])
    assert claim is not None and took_over and path.is_file()
    claim.release()


def test_a_held_claim_beats_its_own_file_never_a_links_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.claims as claims

    monkeypatch.setattr(claims, "HEARTBEAT_SECONDS", 0.05)
    victim = tmp_path / "victim"
    victim.write_text("mine")
    old = time.time() - 3600
    os.utime(victim, (old, old))
    claim, _ = try_claim(tmp_path / "claims", "cell")
    assert claim is not None
    claim.path.unlink()
    claim.path.symlink_to(victim)  # planted in place of the claim while it is held
    time.sleep(0.3)
    claim.release()
    assert victim.stat().st_mtime == pytest.approx(old, abs=1)
