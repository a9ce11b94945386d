"""Kill a real `alb run` with SIGKILL mid-cell, rerun, and get exactly the uninterrupted rows."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from conftest import REPO, alb_command, alb_env, run_alb, write_suite

from benchmark.store import load_results

SUITE = """\
name: resume
defaults:
  dataset: digits
  backbone: small_cnn
  budget: {initial: 20, query: 20, rounds: 5}
  training: {epochs: 15, batch_size: 10, start: warm}
matrix:
  strategy: [entropy, hclc]
"""


def _events(folder: Path) -> list[dict[str, Any]]:
    path = folder / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _comparable(folder: Path) -> list[dict[str, Any]]:
    frame = load_results(folder).drop(columns=["train_seconds", "query_seconds", "finished_at"])
    frame["selected"] = frame["selected"].map(list)
    return frame.sort_values(["cell_id", "round"]).to_dict("records")


def test_sigkill_mid_cell_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "resume", SUITE)
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    proc = subprocess.Popen(alb_command("run", str(suite), "--results", str(killed)), cwd=REPO,
                            env=alb_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # wait until the first cell has finished two rounds, then kill without warning
    while time.monotonic() < deadline:
        done_rounds = [e for e in _events(killed / "resume") if e["event"] == "round_finished"]
        if len(done_rounds) >= 2:
            break
        assert proc.poll() is None, "alb run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list((killed / "resume").glob("*.parquet")), "the cell finished before the kill"
    assert list((killed / "resume" / ".work").glob("*.pt")), "no per-round progress was saved"

    rerun = run_alb("run", str(suite), "--results", str(killed))
    assert rerun.returncode == 0, rerun.stderr
    assert run_alb("run", str(suite), "--results", str(clean)).returncode == 0

    events = _events(killed / "resume")
    resumed = [e for e in events if e["event"] == "cell_resumed"]
    assert resumed and resumed[0]["round"] >= 2, "the rerun restarted instead of resuming"
    assert any(e["event"] == "claim_taken_over" for e in events), "the dead run's claim was not taken over"
    rounds_done = Counter((e["cell_id"], e["round"]) for e in events if e["event"] == "round_finished")
    assert max(rounds_done.values()) == 1, "a finished round was trained again"
    assert not list((killed / "resume" / ".work").glob("*.pt")), "progress files were not cleaned up"

    assert _comparable(killed) == _comparable(clean)
