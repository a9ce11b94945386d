"""Two `alb run` processes on one suite split the cells and never run one twice."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

from conftest import REPO, TINY_SUITE, alb_command, alb_env, write_suite


def test_two_concurrent_runs_never_duplicate_a_cell(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "tiny", TINY_SUITE.replace("seed: [0, 1]", "seed: [0, 1, 2]"))
    results = tmp_path / "results"
    procs = [subprocess.Popen(alb_command("run", str(suite), "--results", str(results)), cwd=REPO,
                              env=alb_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    events = [json.loads(line) for line in (results / "tiny" / "events.jsonl").read_text().splitlines()]
    started_by: dict[str, list[int]] = defaultdict(list)
    for event in events:
        if event["event"] == "cell_started":
            started_by[event["cell_id"]].append(event["pid"])
    assert len(started_by) == 6
    assert all(len(pids) == 1 for pids in started_by.values()), started_by
    rounds = [(e["cell_id"], e["round"]) for e in events if e["event"] == "round_finished"]
    assert len(rounds) == len(set(rounds)) == 6 * 3
    assert len(list((results / "cells").glob("*.parquet"))) == 6
