"""Kill a real `alb run` with SIGKILL mid-cell, rerun, and get exactly the uninterrupted rows."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
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
    frame = frame.astype(object).where(frame.notna(), None)  # NaN != NaN: missing values compare as None
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
    assert not list((killed / "cells").glob("*.parquet")), "the cell finished before the kill"
    assert list((killed / "cells" / ".work").glob("*.pt")), "no per-round progress was saved"

    rerun = run_alb("run", str(suite), "--results", str(killed))
    assert rerun.returncode == 0, rerun.stderr
    assert run_alb("run", str(suite), "--results", str(clean)).returncode == 0

    events = _events(killed / "resume")
    resumed = [e for e in events if e["event"] == "cell_resumed"]
    assert resumed and resumed[0]["round"] >= 2, "the rerun restarted instead of resuming"
    assert any(e["event"] == "claim_taken_over" for e in events), "the dead run's claim was not taken over"
    rounds_done = Counter((e["cell_id"], e["round"]) for e in events if e["event"] == "round_finished")
    assert max(rounds_done.values()) == 1, "a finished round was trained again"
    assert not list((killed / "cells" / ".work").glob("*.pt")), "progress files were not cleaned up"

    assert _comparable(killed) == _comparable(clean)


CELL = """\
name: state
defaults:
  dataset: digits
  backbone: small_cnn
  budget: {initial: 10, query: 10, rounds: 2}
  training: {epochs: 2, batch_size: 10, start: warm, aux: loss_prediction}
matrix:
  strategy: [entropy]
"""


def _rows_without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in ("train_seconds", "query_seconds", "finished_at")}
            for row in rows]


class _StopAfterRound0(Exception):
    pass


class _Stop:
    def round_started(self, round_index: int, rounds: int) -> None: ...
    def epoch_finished(self, epoch: int, epochs: int, loss: float) -> None: ...

    def round_finished(self, row: dict[str, Any]) -> None:
        raise _StopAfterRound0


def test_cell_state_resumes_in_process_and_unusable_checkpoints_restart_with_a_warning(tmp_path: Path) -> None:
    """In-process: stop after round 0 (warm start, with the loss-prediction module's weights in the
    checkpoint) and resume; a checkpoint of another format version, another cell or garbage restarts the
    cell with a warning, never a crash. Every way gives the rows of an uninterrupted run."""
    import torch

    from benchmark.cell_state import CHECKPOINT_VERSION, CellState
    from benchmark.runner import CellContext, run_cell
    from benchmark.store import SuiteStore
    from benchmark.suite import load_suite

    torch.set_num_threads(1)
    cell = load_suite(write_suite(tmp_path, "state", CELL)).cells[0]

    def context(name: str) -> CellContext:
        return CellContext(SuiteStore(tmp_path / name, "state"), "cpu", tmp_path / "data")

    clean = _rows_without_timing(run_cell(cell, context("clean")))
    assert [row["round"] for row in clean] == [0, 1, 2]

    stopped = context("stopped")
    with pytest.raises(_StopAfterRound0):
        run_cell(cell, stopped, _Stop())  # type: ignore[arg-type]
    saved = CellState.load(stopped.store.progress_path(cell.id), cell.id)
    assert saved is not None and saved.next_round == 1 and saved.weights is not None and saved.weights["aux"]
    assert _rows_without_timing(run_cell(cell, stopped)) == clean
    assert any(e["event"] == "cell_resumed" for e in _events(stopped.store.dir))

    path = stopped.store.progress_path(cell.id)
    for unusable in ("other version", "other cell", "garbage"):
        if unusable == "other cell":
            saved.cell_id = "0123456789abcdef"
            saved.save(path)
        elif unusable == "garbage":
            path.write_bytes(b"not a checkpoint")
        else:
            torch.save({"version": CHECKPOINT_VERSION + 1, "cell_id": cell.id}, path)
        with pytest.warns(UserWarning, match="restarts from scratch"):
            assert _rows_without_timing(run_cell(cell, stopped)) == clean, unusable
