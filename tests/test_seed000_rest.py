"""Issue 18, the rest of seed 000: HLH, the candidate-model baseline (time saved), annotation time, the
DinoV2 and hybrid-table suites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, assert_valid_selection, run_alb, write_suite

from benchmark.errors import ConfigError
from benchmark.strategies import STRATEGIES
from benchmark.strategies.base import SelectionContext
from benchmark.strategies.uncertainty import high_confidence_scores, hybrid_lc_hc_select, least_confidence_scores
from benchmark.suite import load_suite

# max p per row: 1.0, 0.40, 0.50, 0.38, 0.90, 0.70 -> LC order 3, 1, 2, 5, 4, 0; HC order 0, 4, 5, 2, 1, 3
PROBS = np.array([[1.00, 0.00, 0.00], [0.40, 0.30, 0.30], [0.50, 0.50, 0.00],
                  [0.38, 0.38, 0.24], [0.90, 0.05, 0.05], [0.70, 0.20, 0.10]])
POOL = np.array([10, 11, 12, 13, 14, 15])


@pytest.mark.parametrize(("budget", "fraction", "expected"), [
    (4, 0.5, [13, 11, 10, 14]),      # 2 LC (rows 3, 1), then 2 HC (rows 0, 4)
    (4, 0.25, [13, 10, 14, 15]),     # floor(0.25 x 4) = 1 LC, 3 HC
    (5, 0.5, [13, 11, 10, 14, 15]),  # floor(2.5) = 2 LC, the other 3 HC
    (6, 0.5, [13, 11, 12, 10, 14, 15]),  # the whole pool: HC never repeats an LC pick
])
def test_hlh_picks_the_declared_split_of_lc_and_hc(budget: int, fraction: float, expected: list[int]) -> None:
    picked = hybrid_lc_hc_select(POOL, PROBS, budget, fraction)
    assert picked.tolist() == expected
    n_lc = int(np.floor(fraction * budget))
    lc_best = POOL[np.argsort(-least_confidence_scores(PROBS), kind="stable")[:n_lc]]
    assert set(picked[:n_lc]) == set(lc_best)
    rest = np.setdiff1d(POOL, lc_best)
    hc_rest = rest[np.argsort(-high_confidence_scores(PROBS[np.isin(POOL, rest)]), kind="stable")]
    assert picked[n_lc:].tolist() == hc_rest[:budget - n_lc].tolist()


def test_hlh_is_registered_and_selects_through_its_class() -> None:
    info = STRATEGIES.info("hlh")
    assert info.kind == "plain" and info.needs == ("probs",) and info.version == 1
    ctx = SelectionContext(POOL, np.empty(0, np.int64), np.random.default_rng(0), lambda: PROBS)
    picked = STRATEGIES.get("hlh")(lc_fraction=0.5).select(ctx, 4)
    assert_valid_selection(picked, POOL, np.empty(0, np.int64), 4)
    assert picked.tolist() == [13, 11, 10, 14]


def test_hlh_lc_fraction_is_checked(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "bad", """\
        name: bad
        defaults: {dataset: digits, backbone: tiny_cnn, budget: {initial: 10, query: 10, rounds: 1}}
        matrix: {strategy: [hlh]}
        include: [{strategy: hlh, strategy_params: {lc_fraction: 1.5}}]
        """)
    with pytest.raises(ConfigError, match="lc_fraction"):
        load_suite(suite)


CANDIDATE_SUITE = """\
name: candidate
defaults:
  dataset: digits
  backbone: tiny_cnn
  strategy: least_confidence
  initial_strategy: least_confidence
  budget: {initial: 20, query: 10, rounds: 1}
  training: {epochs: 1, batch_size: 16, optimizer: {name: sgd, lr: 0.05}}
matrix:
  candidate: [null, {subset: 8, epochs: 2}]
"""


def test_candidate_config_is_checked(tmp_path: Path) -> None:
    for candidate, message in (("{subset: 20}", "smaller than budget.initial"),
                               ("{subset: 5}", "does not read a model")):
        text = CANDIDATE_SUITE.replace("[null, {subset: 8, epochs: 2}]", f"[{candidate}]")
        if "5}" in candidate:
            text = text.replace("initial_strategy: least_confidence", "initial_strategy: random")
        with pytest.raises(ConfigError, match=message):
            load_suite(write_suite(tmp_path, "c", text))


def test_candidate_baseline_trains_a_candidate_and_records_its_seconds(
        tmp_path: Path, count_training: object, one_thread: None) -> None:
    from benchmark.runner import run_suite
    from benchmark.store import SuiteStore, load_results

    suite = load_suite(write_suite(tmp_path, "candidate", CANDIDATE_SUITE))
    plain, with_candidate = sorted(suite.cells, key=lambda c: c.config.candidate is not None)
    assert plain.id != with_candidate.id  # the candidate is part of the cell's identity
    assert "candidate" not in plain.config.canonical()  # ids of cells without one are unchanged
    assert with_candidate.config.candidate is not None and with_candidate.config.candidate.epochs == 2
    trainings = count_training()  # type: ignore[operator]
    store = SuiteStore(tmp_path / "results", suite.name)
    outcome = run_suite(suite, store, "cpu", tmp_path / "data")
    assert outcome.done == 2 and outcome.failed == 0
    assert len(trainings) == 2 * 2 + 1  # two rounds per cell, plus the one candidate
    rows = load_results(tmp_path / "results")
    cand = rows[rows["cell_id"] == with_candidate.id].sort_values("round")
    assert cand["candidate_seconds"].iloc[0] > 0 and (cand["candidate_seconds"].iloc[1:] == 0).all()
    assert cand["n_labeled"].tolist() == [20, 30]
    assert len(set(cand["selected"].iloc[0])) == 20
    assert rows[rows["cell_id"] == plain.id]["candidate_seconds"].isna().all()


def _synthetic_frame() -> pd.DataFrame:
    """Two seeds of LC on tiny_imagenet, each with and without a candidate, two rounds each."""
    rows = []
    for seed in (1, 2):
        for cand in (None, 30.0 * seed):
            cell = f"{'c' if cand else 'p'}{seed}"
            for r, (n, acc) in enumerate(((1000, 0.2), (3000, 0.4))):
                rows.append({"suite": "s", "cell_id": cell, "dataset": "tiny_imagenet", "backbone": "resnet18_cifar",
                             "strategy": "least_confidence", "initial_strategy": "least_confidence", "seed": seed,
                             "round": r, "n_labeled": n, "accuracy": acc, "train_seconds": 100.0,
                             "query_seconds": 10.0, "selected": [], "device": "cpu",
                             "budget.initial": 1000, "budget.query": 2000, "budget.rounds": 1,
                             "candidate_seconds": (cand if r == 0 else 0.0) if cand else np.nan,
                             "candidate.subset": 500 if cand else np.nan, "candidate.epochs": 5 if cand else np.nan})
    from benchmark.report.frame import with_labels

    return with_labels(pd.DataFrame(rows))


def test_time_saved_and_annotation_hours_come_from_the_rows() -> None:
    from benchmark.published import all_numbers
    from benchmark.report.costs import cell_seconds, time_saved
    from benchmark.report.time_tables import annotation_table, time_saved_table

    frame = _synthetic_frame()
    saved = time_saved(frame).set_index("cell_id")
    assert saved.index.tolist() == ["c1", "c2"]
    assert saved.loc["c2", "candidate_seconds"] == 60.0
    assert saved.loc["c2", "total_seconds"] == 2 * 110.0 + 60.0
    assert saved.loc["c2", "candidate_fraction"] == pytest.approx(60.0 / 280.0)
    assert saved.loc["c1", "plain_seconds"] == 220.0  # its twin without a candidate
    assert np.isnan(cell_seconds(frame).loc["p1", "candidate_seconds"])

    numbers = all_numbers()
    table = time_saved_table(frame, numbers)[0]
    row = table.rows[0]
    assert row[2] == "45.0 ± 21.2"  # candidate seconds 30 and 60
    assert row[4] == f"{100 * np.mean([30 / 250, 60 / 280]):.1f} ± {100 * np.std([30 / 250, 60 / 280], ddof=1):.1f}"
    assert row[7] == "1.20"  # published time saved, seed 000 l.75
    assert row[8] == f"{1.20 / (29.87 + 1.20):.1%}"  # the paper prints its run time for TinyImageNet
    assert any("RTX 4080" in note for note in table.notes)

    tables = annotation_table(frame, numbers, {"tiny_imagenet": 36.0})
    plain_row = next(r for r in tables[0].rows if "candidate" not in r[0])
    assert plain_row[2] == "3000" and plain_row[3] == "30.00"  # 3,000 labels x 36 s = 30 h
    assert plain_row[4] == "0.061 ± 0.000"  # 220 s of train + query, both seeds
    assert plain_row[5] == "29.87"
    default = annotation_table(frame, numbers)[0]
    assert "10 s/label" in default.headers[3]  # the declared cost of tiny_imagenet


def test_report_writes_the_time_page_and_annotation_figure(tmp_path: Path) -> None:
    from benchmark.report.plots import annotation_curves

    figures = annotation_curves(_synthetic_frame(), tmp_path)
    assert figures and (tmp_path / Path(figures[0].png).name).is_file()


@pytest.mark.parametrize("name", ["seed000_hybrid", "seed000_time_saved"])
def test_new_seed000_suites_validate(name: str, tmp_path: Path) -> None:
    result = run_alb("run", str(REPO / "suites" / f"{name}.yaml"), "--dry-run", "--results", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "cells" in result.stdout


def test_hybrid_suite_links_its_published_numbers() -> None:
    from benchmark.published import resolve_references

    suite = load_suite(REPO / "suites" / "seed000_hybrid.yaml")
    refs = resolve_references(suite.references)
    assert {r.strategy for r in refs} == {"lchc", "hlh", "rhc", "rlc"}
    hlh = {c.config.backbone for c in suite.cells if c.config.strategy == "hlh"}
    assert hlh == {r.backbone for r in refs if r.strategy == "hlh"}
    assert {c.config.initial_strategy for c in suite.cells if c.config.strategy == "hlh"} == {"hlh"}


def test_dinov2_suite_validates_on_a_user_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "test"):
        for name in ("car", "tree"):
            folder = tmp_path / "data" / "labelme1250k" / split / name
            folder.mkdir(parents=True)
            for i in range(10):
                Image.new("RGB", (40, 40), (20 * i, 0, 100)).save(folder / f"{i}.png")
    result = run_alb("run", str(REPO / "suites" / "seed000_dinov2.yaml"), "--dry-run", "--results",
                     str(tmp_path / "r"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "init=imagenet" in result.stdout and "init=scratch" in result.stdout
    missing = run_alb("run", str(REPO / "suites" / "seed000_dinov2.yaml"), "--dry-run", cwd=tmp_path / "data")
    assert missing.returncode != 0 and "train/<class>" in missing.stderr and "Traceback" not in missing.stderr
