"""Published numbers that are not the paper's own AL results: seed 001 Table 3's start-mid-end accuracy ranges
(reported by other papers) and seed 004's full-training upper bounds (Fig. 3 caption)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from benchmark.published import PublishedNumber, all_numbers, resolve_references
from benchmark.report.references import compare, from_published

SEEDS_DIR = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def _by_id() -> dict[str, PublishedNumber]:
    return {n.id: n for n in all_numbers()}


def test_seed001_table3_ranges() -> None:
    table3 = resolve_references(["seed001/table3"])
    assert len(table3) == 18
    assert all(n.kind == "reported_by_others" and n.metric == "accuracy_range" and n.mean is None
               and n.n_labeled is None and not n.setting for n in table3)
    numbers = _by_id()
    assert numbers["seed001-t3-coreset-cifar10-coreset"].start_mid_end == (60, 81, 90)
    assert numbers["seed001-t3-coreset-svhn-random"].start_mid_end == (68, 89, 96)
    assert numbers["seed001-t3-learning_loss-cifar10-learning_loss"].start_mid_end == (52, 84, 90.5)
    assert numbers["seed001-t3-waal-fashion_mnist-waal"].backbone == "lenet"
    # every method row comes with its random baseline
    assert sum(n.strategy == "random" for n in table3) == 9


def test_seed004_full_training_upper_bounds() -> None:
    numbers = _by_id()
    expected = {"svhn": 96.97, "cifar10": 94.84, "cifar100": 76.43}
    for dataset, value in expected.items():
        n = numbers[f"seed004-fig3-{dataset}-full"]
        assert (n.kind, n.metric, n.strategy, n.mean, n.backbone) == ("full_training", "accuracy", "full", value,
                                                                      "cnn13")
    if SEEDS_DIR.is_dir():
        (path,) = SEEDS_DIR.glob("004_*.txt")
        caption = path.read_text(encoding="utf-8").splitlines()[211]  # l.212
        assert caption.startswith("Fig. 3.") and all(f"{v}%" in caption for v in expected.values())


def _entry(**change: Any) -> dict[str, Any]:
    base = {"id": "x", "table": "t", "table_id": "seed001/t", "dataset": "cifar10", "backbone": "vgg16_cifar",
            "strategy": "random", "n_labeled": 10, "metric": "accuracy_range", "unit": "percent",
            "kind": "reported_by_others", "start_mid_end": (1, 2, 3), "printed": "1-2-3"}
    return {**base, **change}


def test_schema_keeps_ranges_and_points_apart() -> None:
    assert PublishedNumber(**_entry()).as_fraction() is None
    with pytest.raises(ValidationError, match="accuracy_range needs start_mid_end"):
        PublishedNumber(**_entry(mean=2.0))
    with pytest.raises(ValidationError, match="accuracy_range needs start_mid_end"):
        PublishedNumber(**_entry(start_mid_end=None))
    with pytest.raises(ValidationError, match="needs a mean"):
        PublishedNumber(**_entry(metric="accuracy", kind="measured"))
    with pytest.raises(ValidationError, match="reported_by_others"):
        PublishedNumber(**_entry(metric="accuracy", start_mid_end=None, mean=2.0))


def test_a_range_is_never_compared_as_a_point_accuracy() -> None:
    (reference,) = from_published(resolve_references(["seed001-t3-coreset-cifar10-coreset"]))
    assert reference.mean is None and reference.metric == "accuracy_range"
    frame = pd.DataFrame([{"dataset": "cifar10", "backbone": "vgg16_cifar", "strategy": "coreset",
                           "accuracy": 0.9, "n_labeled": 100, "seed": 0, "round": 0}])
    (verdict,) = compare(reference, frame, abs_tol=0.01, k=2.0)
    assert verdict.status == "not comparable" and "range" in verdict.reason and verdict.difference is None


def test_full_training_bound_is_not_an_al_result() -> None:
    (reference,) = from_published(resolve_references(["seed004-fig3-cifar10-full"]))
    assert reference.mean == pytest.approx(0.9484)
    (verdict,) = compare(reference, pd.DataFrame(), abs_tol=0.01, k=2.0)
    assert verdict.status == "not comparable" and "'full'" in verdict.reason
