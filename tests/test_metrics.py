"""alb's accuracy and macro-F1 (benchmark/ops/metrics.py) equal torchmetrics' to the last bit."""

from __future__ import annotations

import pytest
import torch

from benchmark.ops.metrics import accuracy, macro_f1

torchmetrics_classification = pytest.importorskip("torchmetrics.functional.classification")


@pytest.mark.parametrize("seed", range(20))
def test_accuracy_and_macro_f1_equal_torchmetrics(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    num_classes = int(torch.randint(2, 12, (1,), generator=g))
    n = int(torch.randint(1, 500, (1,), generator=g))
    # some classes absent from the target, some never predicted, some in neither
    used = torch.randperm(num_classes, generator=g)[: max(1, num_classes - 2)]
    target = used[torch.randint(0, used.numel(), (n,), generator=g)]
    preds = torch.where(torch.rand(n, generator=g) < 0.7, target,
                        torch.randint(0, num_classes - 1, (n,), generator=g))
    expected_acc = float(torchmetrics_classification.multiclass_accuracy(preds, target, num_classes, average="micro"))
    expected_f1 = float(torchmetrics_classification.multiclass_f1_score(preds, target, num_classes, average="macro"))
    assert accuracy(preds, target) == expected_acc
    assert macro_f1(preds, target, num_classes) == expected_f1


def test_known_values() -> None:
    target = torch.tensor([0, 0, 1, 1])
    preds = torch.tensor([0, 1, 1, 1])
    assert accuracy(preds, target) == pytest.approx(0.75)
    # class 0: 2*1/(2+0+1) = 2/3; class 1: 2*2/(4+1+0) = 4/5; class 2 absent and never predicted: left out
    assert macro_f1(preds, target, 3) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="one shape"):
        accuracy(torch.zeros(3), torch.zeros(4))
