"""Declared assumptions (validation, list --details, report, check) and the dry run's cost arithmetic."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_SUITE

from benchmark import cli
from benchmark.config import CellConfig
from benchmark.cost import Cost, cell_cost, cost_lines, pretraining_cost, suite_cost
from benchmark.errors import ConfigError
from benchmark.suite import load_suite

BASE = """\
defaults:
  dataset: digits
  backbone: small_cnn
  budget: {initial: '1%', query: 10, rounds: 2}
  training: {epochs: 2, batch_size: 16}
matrix:
  strategy: [random, entropy]
"""


def _suite_file(tmp_path: Path, assumptions: str, base: str = BASE, name: str = "suite") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(base) + "assumptions:\n" + textwrap.indent(textwrap.dedent(assumptions), "  "))
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    return str(info.value)


def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# --------------------------------------------------------------------------- validation


def test_valid_assumptions_apply_to_the_cells_that_resolve_to_their_value(tmp_path: Path) -> None:
    suite = load_suite(_suite_file(tmp_path, """\
        - {setting: training.schedule.name, value: constant, why: the paper names no schedule, source: seed 000 l.189}
        - {setting: budget.initial, value: '1%', why: a percentage of the pool, source: seed 003 l.1}
        - {setting: strategy, value: entropy, why: only entropy, source: here}
        - {setting: training.optimizer, value: {name: sgd}, why: a subtree, source: here}
        - {setting: seed, why: no value given, source: here}
        """))
    every = {c.id for c in suite.cells}
    entropy = {c.id for c in suite.cells if c.config.strategy == "entropy"}
    assert [set(a.cells) for a in suite.assumptions] == [every, every, entropy, every, every]
    assert suite.assumptions[0].text() == ("training.schedule.name = constant — the paper names no schedule "
                                           "(source: seed 000 l.189)")
    assert suite.assumptions[4].short() == "seed=0"  # no value: the suite's resolved values are shown


def test_unknown_setting_is_an_error_with_line_and_did_you_mean(tmp_path: Path) -> None:
    path = _suite_file(tmp_path, "- {setting: training.shedule.name, value: cosine, why: a, source: b}\n")
    message = _error(path)
    assert f"{path}:{_line(path, 'shedule')}" in message
    assert "unknown key 'training.shedule.name'" in message and "Did you mean 'training.schedule.name'" in message


def test_empty_why_and_unknown_field_are_errors(tmp_path: Path) -> None:
    path = _suite_file(tmp_path, """\
        - {setting: seed, value: 0, why: '  ', source: b}
        - {setting: seed, value: 0, why: a, source: b, reason: c}
        - {setting: seed, value: 0, why: a}
        """)
    message = _error(path)
    assert f"{path}:{_line(path, 'why: ')}: key 'assumptions[0].why': must be a non-empty text" in message
    assert "unknown key 'assumptions[1].reason'. Allowed keys here: setting, source, value, why." in message
    assert "missing required key 'assumptions[2].source'" in message


def test_a_value_that_matches_no_cell_is_an_error_naming_the_suites_values(tmp_path: Path) -> None:
    path = _suite_file(tmp_path, """\
        - {setting: training.schedule.name, value: cosine, why: a, source: b}
        - {setting: budget.initial, value: 13, why: 1% of 1347 is 13, source: b}
        - {setting: budget.initial, value: '2%', why: not what the suite sets, source: b}
        """)
    message = _error(path)
    assert (f"{path}:{_line(path, 'cosine')}: assumptions[0]: assumption training.schedule.name = cosine matches no "
            "cell; the suite sets training.schedule.name to: constant") in message
    assert "assumptions[1]" not in message  # '1%' of digits' 1347 images resolves to 13
    assert "assumptions[2]: assumption budget.initial = 2% matches no cell; the suite sets budget.initial to: 13" \
        in message


# --------------------------------------------------------------------------- display


ASSUMED_TINY = TINY_SUITE + """\
assumptions:
  - {setting: training.schedule.name, value: constant, why: 'no schedule named', source: seed 000 l.189}
  - {setting: strategy, value: entropy, why: 'the paper_s *strategy*', source: seed 001 l.5}
"""


def test_list_suites_details_shows_the_assumptions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "tiny.yaml").write_text(ASSUMED_TINY)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["list", "suites", "--details"]) == 0
    out = capsys.readouterr().out
    assert "A1 assumed: training.schedule.name = constant — no schedule named (source: seed 000 l.189)" in out
    assert "A2 assumed: strategy = entropy" in out


@pytest.fixture(scope="module")
def assumed_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("assumed")
    suite = root / "tiny.yaml"
    suite.write_text(ASSUMED_TINY)
    results = root / "results"
    assert cli.main(["run", str(suite), "--results", str(results), "--quiet"]) == 0
    return suite, results


def test_the_runner_writes_the_suites_assumptions_beside_its_results(assumed_results: tuple[Path, Path]) -> None:
    suite, results = assumed_results
    record = json.loads((results / "tiny" / "suite.json").read_text())
    assert record["suite"] == "tiny" and len(record["cells"]) == 4
    assert [a["setting"] for a in record["assumptions"]] == ["training.schedule.name", "strategy"]
    entropy = {c.id for c in load_suite(suite).cells if c.config.strategy == "entropy"}
    assert set(record["assumptions"][1]["cells"]) == entropy


def test_report_tables_list_the_assumptions_in_every_format(assumed_results: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    from benchmark.report.build import build_report

    _, results = assumed_results
    build_report([results], tmp_path)
    markdown = (tmp_path / "tables.md").read_text()
    assert ("- assumed (suite tiny): training.schedule.name = constant — no schedule named "
            "(source: seed 000 l.189)") in markdown
    assert r"strategy = entropy — the paper\_s \*strategy\* (source: seed 001 l.5) \[only: entropy\]" in markdown
    latex = (tmp_path / "tables.tex").read_text()
    assert r"the paper\_s *strategy* (source: seed 001 l.5) [only: entropy]" in latex
    html = (tmp_path / "tables.html").read_text()
    assert "assumed (suite tiny): training.schedule.name = constant — no schedule named" in html


def test_check_marks_the_comparisons_whose_cells_use_an_assumption(assumed_results: tuple[Path, Path],
                                                                   tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    suite, results = assumed_results
    baseline = tmp_path / "baseline.json"
    assert cli.main(["check", str(suite), "--results", str(results), "--save-baseline", str(baseline)]) == 0
    capsys.readouterr()
    assert cli.main(["check", str(suite), "--results", str(results), "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "tiny/" in line]
    assert len(rows) == 6 and all("assumed" not in r for r in rows)
    assert all(r.rstrip(" │|").endswith("A1 A2") for r in rows if "/entropy/" in r)
    assert all(r.rstrip(" │|").endswith("A1") for r in rows if "/random/" in r)
    assert "A2  strategy = entropy — the paper_s *strategy* (source: seed 001 l.5)" in out


# --------------------------------------------------------------------------- cost arithmetic


def _cell(**overrides: Any) -> CellConfig:
    training = {"epochs": 2, "batch_size": 16, **overrides.pop("training", {})}
    return CellConfig.model_validate({"dataset": "digits", "backbone": "small_cnn", "strategy": "entropy",
                                      "budget": {"initial": 10, "query": 10, "rounds": 2}, "training": training,
                                      **overrides})


POOL, TEST = 1347, 450  # digits


def test_cost_of_plain_training_and_scoring_a_pool_subset() -> None:
    cost = cell_cost(_cell(pool_subset=100), POOL, TEST)
    # rounds r = 0, 1, 2 with 10, 20, 30 labels, 2 epochs each; random initial set: no pass; two query
    # rounds score min(U, 100) = 100 candidates; one test pass per round
    assert cost == Cost(cells=1, rounds=3, train_images=2 * (10 + 20 + 30), pool_images=2 * 100,
                        other_forward=3 * 450)


def test_cost_of_mc_dropout_passes_and_a_scored_initial_set() -> None:
    bald = cell_cost(_cell(strategy="bald", strategy_params={"passes": 5}), POOL, TEST)
    assert bald.pool_images == 5 * (1337 + 1327)  # U after rounds 0 and 1, 5 passes each
    default = cell_cost(_cell(strategy="bald"), POOL, TEST)
    assert default.pool_images == 20 * (1337 + 1327)
    hclc = cell_cost(_cell(strategy="hclc"), POOL, TEST)
    assert hclc.pool_images == 1347 + 1337 + 1327  # HC scores the whole pool for the initial set


def test_cost_of_label_propagation() -> None:
    cost = cell_cost(_cell(strategy="random", training={"semi": "label_propagation"}), POOL, TEST)
    # batch 16: 8 labeled + 8 pseudo-labeled; a SEMI epoch draws ceil(U / 2) pseudo-labels
    batches = [-(-((1347 - n + 1) // 2) // 8) for n in (10, 20, 30)]  # ceil(ceil(U/2) / 8)
    assert batches == [84, 83, 83]
    assert cost.train_images == 2 * (10 + 20 + 30) + 2 * 16 * sum(batches)
    assert cost.other_forward == 3 * 450 + 2 * 3 * 1347  # per SEMI epoch: features of L u U


def test_cost_of_paired_pool_epochs_and_frozen_heads() -> None:
    jls = cell_cost(_cell(strategy="jls", training={"epoch_length": "pool"}), POOL, TEST)
    steps = [-(-(1347 - n) // 16) for n in (10, 20, 30)]  # ceil(max(L, U) / 16) full batches
    assert jls.train_images == 2 * 2 * 16 * sum(steps)  # 2 epochs, each labeled image paired with an unlabeled one
    linear = cell_cost(_cell(training={"head": "linear"}), POOL, TEST)
    assert (linear.train_images, linear.other_forward) == (0, 10 + 20 + 30 + 3 * 450)


def test_pretraining_is_counted_once_per_distinct_pretraining() -> None:
    a = _cell(init="simsiam", pretraining={"epochs": 3})
    b = _cell(init="simsiam", pretraining={"epochs": 3}, strategy="margin")
    c = _cell(init="simsiam", pretraining={"epochs": 3}, seed=1)
    assert pretraining_cost(a, POOL) == Cost(pretrain_images=3 * 1347 * 2)  # two views
    total, by_strategy = suite_cost([a, b, c])
    assert total.pretrain_images == 2 * 3 * 1347 * 2  # a and b share it, c has its own seed
    assert by_strategy["margin"].pretrain_images == 0
    rotation = _cell(init="rotation", pretraining={"epochs": 1})
    assert pretraining_cost(rotation, POOL).pretrain_images == 4 * 1347


def test_time_estimate_and_summary_lines() -> None:
    cost = Cost(train_images=300, pool_images=900)
    assert cost.seconds(100) == pytest.approx(3 + 900 / 300)  # forward-only images at 3x the rate
    lines = cost_lines(cost, cost + cost, {"a": cost, "b": Cost()}, 100)
    assert any("estimated time at 100 img/s" in line and "6 s" in line and "(12 s)" in line for line in lines)
    assert not any("estimated time" in line for line in cost_lines(cost, cost, {}, None))


def test_cost_constants_match_the_code_they_describe() -> None:
    from benchmark import cost
    from benchmark.strategies import bayesian
    from benchmark.training import semi

    assert cost.DEFAULT_MC_PASSES == bayesian.DEFAULT_PASSES
    assert (cost.SEMI_LABELED_PER_BATCH, cost.SEMI_EPOCH_FRACTION) == (semi.LABELED_PER_BATCH, semi.EPOCH_FRACTION)


def test_dry_run_prints_pending_cells_and_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    assert cli.main(["run", "--dry-run", str(suite), "--results", str(tmp_path / "r"), "--throughput", "50"]) == 0
    out = capsys.readouterr().out
    assert "4 cells (0 done, 4 pending)" in out
    # 4 cells x 2 epochs x (10 + 20 + 30) labels
    assert "training images (fwd+bwd)" in out and "480  (480)" in out
    assert "estimated time at 50 img/s" in out
    assert cli.main(["run", str(suite), "--throughput", "50"]) == cli.EXIT_USAGE
