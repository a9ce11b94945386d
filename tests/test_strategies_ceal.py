"""CEAL: entropy selection plus pseudo-labels for certain samples in the next round's training only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.runner import CellContext, run_cell
from benchmark.store import SuiteStore
from benchmark.strategies.base import SelectionContext
from benchmark.strategies.ceal import CEAL, confident_pseudo_labels
from benchmark.strategies.uncertainty import EntropySampling
from benchmark.suite import parse_suite

PROBS = np.array([[0.999, 0.0005, 0.0005],   # certain: class 0
                  [0.34, 0.33, 0.33],         # uncertain
                  [0.0002, 0.0003, 0.9995],   # certain: class 2
                  [0.6, 0.3, 0.1]])


def test_confident_pseudo_labels_are_the_low_entropy_rows_with_their_argmax() -> None:
    positions, labels = confident_pseudo_labels(PROBS, threshold=0.02)
    assert positions.tolist() == [0, 2] and labels.tolist() == [0, 2]
    assert confident_pseudo_labels(PROBS, threshold=0.0)[0].tolist() == []


def test_ceal_selects_like_entropy_and_pseudo_labels_exclude_the_selection() -> None:
    unlabeled = np.array([10, 11, 12, 13])

    def ctx(round_index: int) -> SelectionContext:
        return SelectionContext(unlabeled, np.array([0]), np.random.default_rng(0), lambda: PROBS,
                                round_index=round_index)

    ceal = CEAL(threshold=0.02, decay=0.01)
    assert ceal.select(ctx(1), 2).tolist() == EntropySampling().select(ctx(1), 2).tolist()
    index, labels = ceal.pseudo_labels(ctx(1), selected=np.array([12]))
    assert index.tolist() == [10] and labels.tolist() == [0]
    assert ceal.pseudo_labels(ctx(5), selected=np.array([]))[0].tolist() == []  # epsilon decayed to 0


def test_pseudo_labels_join_the_next_rounds_training_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a threshold above log(10) pseudo-labels every unlabeled sample that was not just selected
    monkeypatch.setattr(CEAL.__init__, "__defaults__", (2.5, 0.0))
    suite = parse_suite({"defaults": {"dataset": "digits", "backbone": "small_cnn", "strategy": "ceal",
                                      "budget": {"initial": 12, "query": 15, "rounds": 2},
                                      "training": {"epochs": 1, "batch_size": 64}}}, tmp_path / "c.yaml")
    rows = run_cell(suite.cells[0], CellContext(SuiteStore(tmp_path, "c"), "cpu", tmp_path))
    pool = 1347
    assert [r["n_pseudo_labeled"] for r in rows] == [0, pool - 12 - 15, pool - 27 - 15]
    assert [r["n_labeled"] for r in rows] == [12, 27, 42]  # pseudo-labels never become labels
