"""Result columns have declared roles; a protocol comes from the configuration and components alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmark.columns import column_role, protocol_columns
from benchmark.config import CellConfig
from benchmark.report.frame import with_labels
from benchmark.report.tables import leaderboard_tables
from benchmark.store import CONFIG_COLUMNS_ATTR, SuiteStore, load_results

CELL = {"dataset": "digits", "backbone": "small_cnn", "budget": {"initial": 10, "query": 10, "rounds": 2}}
KEYS = {"dataset", "backbone", "strategy", "seed", "budget", "budget.rounds", "strategy_params", "training",
        "training.epochs"}


@pytest.mark.parametrize(("column", "role"), [
    ("suite", "identity"), ("computed_by", "identity"), ("budget.rounds", "config"), ("strategy_params.k", "config"),
    ("version.backbone", "component"), ("input.dataset", "component"), ("plugin.strategy", "component"),
    ("host", "provenance"), ("accuracy", "metric"), ("round", "metric"), ("map_50", "metric"),
])
def test_every_column_has_one_role(column: str, role: str) -> None:
    assert column_role(column, KEYS) == role


def test_the_protocol_is_the_configuration_without_the_strategy_plus_the_training_components() -> None:
    cols = ["suite", "cell_id", "dataset", "backbone", "strategy", "seed", "budget.rounds", "strategy_params.k",
            "version.backbone", "version.strategy", "plugin.strategy", "plugin.backbone", "input.dataset",
            "accuracy", "map_50", "host", "training.epochs"]
    assert protocol_columns(cols, KEYS) == ["backbone", "budget.rounds", "dataset", "input.dataset",
                                            "plugin.backbone", "training.epochs", "version.backbone"]


def _write(results: Path, strategy: str, seed: int, extra: dict[str, Any] | None = None,
           config_extra: dict[str, Any] | None = None) -> None:
    cell = CellConfig.model_validate({**CELL, "strategy": strategy, "seed": seed})
    config = {**cell.canonical(), **(config_extra or {})}
    rows = [{"round": r, "n_labeled": 10 * (r + 1), "accuracy": 0.5 + 0.1 * r + 0.01 * seed + (0.05 if strategy ==
             "entropy" else 0.0), "selected": list(range(10)), "train_seconds": 1.0,
             "query_seconds": 0.1, **(extra or {})} for r in range(3)]
    SuiteStore(results, "s").write_result(cell.cell_id() if not config_extra else f"{seed:016x}", config,
                                          ["strategy", "seed"], rows, {"host": f"host{seed}"})


def _boards(results: Path) -> tuple[set[str], list[str]]:
    frame = with_labels(load_results(results))
    return {p.id for p in frame["protocol"]}, [t.title for t in leaderboard_tables(frame)]


def test_a_metric_added_to_some_cells_creates_no_protocol(tmp_path: Path) -> None:
    plain, extended = tmp_path / "plain", tmp_path / "extended"
    for strategy in ("random", "entropy"):
        for seed in (0, 1, 2):
            _write(plain, strategy, seed)
            # as a detection task will: some cells report one more metric per round
            _write(extended, strategy, seed, {"map_50": 0.3} if seed == 1 else None)
    assert "map_50" in load_results(extended).columns
    protocols, boards = _boards(plain)
    assert len(protocols) == 1 and len(boards) == 1
    assert _boards(extended) == (protocols, boards)


def test_a_setting_alb_no_longer_has_stays_part_of_the_protocol(tmp_path: Path) -> None:
    """The cell files' metadata says which columns are the configuration, also for keys the schema lost."""
    for seed, value in ((0, "a"), (1, "b")):
        _write(tmp_path, "random", seed, config_extra={"retired_setting": value})
    frame = load_results(tmp_path)
    assert "retired_setting" in frame.attrs[CONFIG_COLUMNS_ATTR]
    assert len({p.id for p in with_labels(frame)["protocol"]}) == 2
