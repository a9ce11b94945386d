"""Detection as a task: the embedded set, mAP, per-image scoring, validation, and resume after SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import REPO, alb_command, alb_env, run_alb, write_suite

from benchmark.detection import digits_boxes as db
from benchmark.detection.metrics import detection_map
from benchmark.detection.scoring import image_scores
from benchmark.errors import ConfigError
from benchmark.store import load_results
from benchmark.strategies.uncertainty import (
    entropy_scores,
    high_confidence_scores,
    least_confidence_scores,
    margin_scores,
)

# ---------------------------------------------------------------- mAP


def test_map_equals_a_hand_computed_value() -> None:
    # one class, two objects; three detections by score: hit, miss, hit -> precision 1, 1/2, 2/3 at recall
    # 1/2, 1/2, 1. COCO's 101-point envelope: precision 1 at recalls 0..0.50 (51 points), 2/3 at 0.51..1.00
    # (50 points). Boxes match exactly, so every IoU threshold gives the same AP: map == map_50.
    objects = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    preds = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [40, 40, 50, 50], [20, 20, 30, 30]]),
              "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([1, 1, 1])}]
    result = detection_map(preds, [{"boxes": objects, "labels": torch.tensor([1, 1])}])
    expected = (51 * 1.0 + 50 * (2 / 3)) / 101
    assert result["map_50"] == pytest.approx(expected, abs=1e-6)
    assert result["map"] == pytest.approx(expected, abs=1e-6)


def test_map_ignores_difficult_objects_and_averages_classes() -> None:
    # class 1 found perfectly; class 2's only object is difficult and its detection counts for nothing;
    # class 3: one object, missed (the detection is elsewhere) -> AP 0. Mean over the classes with objects.
    targets = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]]),
                "labels": torch.tensor([1, 2, 3]), "difficult": torch.tensor([False, True, False])}]
    preds = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [0, 40, 10, 50]]),
              "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([1, 2, 3])}]
    assert detection_map(preds, targets)["map_50"] == pytest.approx(0.5, abs=1e-6)


# ---------------------------------------------------------------- per-image scoring

BOXES = [np.array([[0.1, 0.9, 0.0], [0.4, 0.3, 0.3]]),  # image 0: a confident box and an unsure one
         np.array([[0.2, 0.2, 0.6]]),                     # image 1: one box
         np.empty((0, 3))]                                  # image 2: no box above the threshold


@pytest.mark.parametrize(("rule", "expected"), [
    ("mean", [(0.1 + 0.6) / 2, 0.4, 0.0]),
    ("max", [0.6, 0.4, 0.0]),
    ("sum", [0.7, 0.4, 0.0]),
])
def test_each_aggregation_rule_on_least_confidence(rule: str, expected: list[float]) -> None:
    scores = image_scores(BOXES, least_confidence_scores, rule, "background", 3)
    assert scores == pytest.approx(expected)


def test_empty_image_rules() -> None:
    background = image_scores(BOXES[2:], least_confidence_scores, "mean", "background", 3)
    uncertain = image_scores(BOXES[2:], least_confidence_scores, "mean", "uncertain", 3)
    assert background == pytest.approx([0.0]) and uncertain == pytest.approx([2 / 3])
    assert image_scores(BOXES[2:], entropy_scores, "max", "uncertain", 3) == pytest.approx([np.log(3)])
    assert image_scores(BOXES[2:], margin_scores, "sum", "background", 3) == pytest.approx([-1.0])


def test_mean_keeps_lc_the_reverse_of_hc_per_image() -> None:
    rng = np.random.default_rng(0)
    boxes = [rng.dirichlet(np.ones(4), size=int(k)) for k in rng.integers(0, 6, size=30)]
    lc = image_scores(boxes, least_confidence_scores, "mean", "background", 4)
    hc = image_scores(boxes, high_confidence_scores, "mean", "background", 4)
    assert lc == pytest.approx(1 - hc)
    assert image_scores(boxes, least_confidence_scores, "max", "background", 4) != pytest.approx(1 - hc)


# ---------------------------------------------------------------- the embedded detection set


def test_embedded_detection_set_is_deterministic() -> None:
    a, b = db.build_split("test", 40), db.build_split("test", 40)
    assert np.array_equal(a[0], b[0])
    assert all(np.array_equal(x, y) for x, y in zip(a[1] + a[2], b[1] + b[2], strict=True))


def test_embedded_boxes_match_their_digits() -> None:
    digits, labels = db.digit_splits()["train"]
    placements = db.place_digits(len(digits), 60, db.SEEDS["train"])
    images, boxes, classes = db.build_split("train", 60)
    overlapping = 0
    for image, box, cls, placed in zip(images[:, 0], boxes, classes, placements, strict=True):
        assert len(box) == len(placed) >= 1
        for (x1, y1, x2, y2), c, p in zip(box.astype(int), cls, placed, strict=True):
            digit = db.scaled(digits[p.digit], p.scale)
            alone = np.zeros_like(image)
            alone[p.top:p.top + digit.shape[0], p.left:p.left + digit.shape[1]] = digit
            rows, cols = np.flatnonzero(alone.any(axis=1)), np.flatnonzero(alone.any(axis=0))
            assert (x1, y1, x2, y2) == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)  # the tight ink box
            assert c == labels[p.digit] + 1  # class = digit + 1 (0: background)
            assert np.all(image >= alone)  # pasted by maximum: the digit's ink is all there
        overlapping += any(db.box_iou(tuple(p), tuple(q)) > 0 for i, p in enumerate(box) for q in box[i + 1:])
    assert overlapping > 0, "some canvases must hold overlapping digits"


def test_embedded_splits_use_disjoint_digits() -> None:
    from benchmark.data import dataset_info

    info = dataset_info("digits_detection")
    assert info["task"] == "detection" and info["n_train"] == db.N_TRAIN and info["n_test"] == db.N_TEST


def test_coco_json_dataset_reads_facts_and_images(tmp_path: Path) -> None:
    from PIL import Image

    from benchmark.data import dataset_info
    from benchmark.data.loading import load_dataset

    for i in range(5):
        Image.new("RGB", (40, 20), (10 * i, 0, 0)).save(tmp_path / f"{i}.png")
    annotations = {"images": [{"id": i, "file_name": f"{i}.png"} for i in range(5)],
                   "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
                   "annotations": [{"image_id": i, "category_id": 7, "bbox": [4, 2, 10, 5]} for i in range(5)]}
    (tmp_path / "ann.json").write_text(json.dumps(annotations))
    spec = f"coco_json:{tmp_path}:{tmp_path / 'ann.json'}"
    info = dataset_info(spec)
    assert (info["task"], info["num_classes"], info["n_train"] + info["n_test"]) == ("detection", 2, 5)
    data = load_dataset(spec, tmp_path)
    assert data.class_names == ("dog", "cat") and tuple(data.train_x.shape[1:]) == (3, 300, 300)
    # [4, 2, 10, 5] on a 40x20 image, scaled to 300x300; category 7 is the second by id
    assert data.train_boxes[0].tolist() == [[30.0, 30.0, 105.0, 105.0]] and data.train_labels[0].tolist() == [2]
    # the content of the annotations and of every listed image is the dataset's identity (issue 20.2)
    from benchmark import inputs

    before = inputs.dataset_digest(spec)
    Image.new("RGB", (40, 20), (0, 200, 0)).save(tmp_path / "3.png")  # same name, new pixels
    inputs._folders.clear()  # a new process
    assert inputs.dataset_digest(spec) != before
    (tmp_path / "bad.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ConfigError, match="COCO-format"):
        dataset_info(f"coco_json:{tmp_path}:{tmp_path / 'bad.json'}")


# ---------------------------------------------------------------- validation


def _cell(**overrides: Any) -> Any:
    from benchmark.config import CellConfig

    base: dict[str, Any] = {"dataset": "digits_detection", "backbone": "small_ssd", "strategy": "least_confidence",
                            "budget": {"initial": 10, "query": 10, "rounds": 1}}
    return CellConfig.model_validate({**base, **overrides})


def test_detection_cells_resolve_their_settings_and_reject_misfits() -> None:
    cell = _cell()
    assert cell.task == "detection" and cell.detection.aggregation == "mean"
    assert cell.canonical()["detection"]["empty_image"] == "background"
    assert "detection" not in _cell(dataset="digits", backbone="small_cnn").canonical()
    for bad, words in (({"strategy": "coreset"}, "cannot select for detection"),
                       ({"backbone": "small_cnn"}, "is a classification model"),
                       ({"dataset": "digits"}, "is a detection model"),
                       ({"backbone": "ssd300_vgg16"}, "needs RGB images"),
                       ({"training": {"augmentation": "strong"}}, "not available for detection"),
                       ({"training": {"aux": "discriminator"}}, "not available for detection"),
                       ({"strategy": "lplgrad"}, "cannot select for detection"),
                       ({"dataset": "digits", "backbone": "small_cnn", "detection": {}}, "detection datasets only")):
        with pytest.raises((ValueError, ConfigError), match=words):
            _cell(**bad)


def test_seed000_voc_suite_dry_run_offline(tmp_path: Path) -> None:
    result = run_alb("run", "suites/seed000_voc_detection.yaml", "--dry-run", "--results", str(tmp_path),
                     "--data-dir", str(tmp_path / "nodata"))
    assert result.returncode == 0, result.stderr
    assert "9 cells" in result.stdout or "9" in result.stdout


# ---------------------------------------------------------------- resume after SIGKILL

SUITE = """\
name: detresume
defaults:
  dataset: digits_detection
  backbone: small_ssd
  strategy: least_confidence
  budget: {initial: 8, query: 8, rounds: 2}
  training: {epochs: 2, batch_size: 8, optimizer: {name: adam, lr: 0.002}, start: warm}
  detection: {expand_max: 1.5}
"""


def _comparable(folder: Path) -> list[dict[str, Any]]:
    frame = load_results(folder).drop(columns=["train_seconds", "query_seconds", "finished_at"])
    frame["selected"] = frame["selected"].map(list)
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.sort_values(["cell_id", "round"]).to_dict("records")


def test_detection_cell_resumes_after_sigkill_to_identical_rows(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "detresume", SUITE)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    # the uninterrupted run, alongside the one that will be killed (one thread each: 2 cores)
    reference = subprocess.Popen(alb_command("run", str(suite), "--results", str(clean), "--threads", "1"),
                                 cwd=REPO, env=alb_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc = subprocess.Popen(alb_command("run", str(suite), "--results", str(killed), "--threads", "1"), cwd=REPO,
                            env=alb_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = killed / "detresume" / "events.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        lines = events.read_text().splitlines() if events.exists() else []
        if sum(json.loads(line)["event"] == "round_finished" for line in lines) >= 1:
            break
        assert proc.poll() is None, "alb run ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list((killed / "cells").glob("*.parquet")), "the cell finished before the kill"
    rerun = run_alb("run", str(suite), "--results", str(killed), "--threads", "1")
    assert rerun.returncode == 0, rerun.stderr
    assert reference.wait(timeout=240) == 0
    resumed = [json.loads(line) for line in events.read_text().splitlines()]
    assert any(e["event"] == "cell_resumed" and e["round"] >= 1 for e in resumed)
    rows = _comparable(killed)
    assert rows == _comparable(clean)
    assert len(rows) == 3 and all(0 <= r["map_50"] <= 1 and 0 <= r["map"] <= r["map_50"] for r in rows)


# ---------------------------------------------------------------- learning loss (LL4AL on the SSD)


def test_per_image_multibox_losses_average_to_torchvisions_loss() -> None:
    from benchmark.detection.loss_prediction import ssd_image_losses
    from benchmark.detection.models import small_ssd

    torch.manual_seed(0)
    model = small_ssd(11, 1, 64, [0.5], [0.25]).train()
    images = [torch.rand(1, 64, 64) for _ in range(4)]
    boxes = [[[5.0, 5.0, 25.0, 25.0]], [[5.0, 5.0, 25.0, 25.0], [30.0, 30.0, 50.0, 54.0]], [[10.0, 12.0, 30.0, 40.0]],
             []]  # the last image has no object
    targets = [{"boxes": torch.tensor(b).reshape(-1, 4), "labels": torch.arange(1, len(b) + 1)} for b in boxes]
    reference = sum(model(images, targets).values())
    per_image, maps = ssd_image_losses(model, images, targets)
    assert torch.allclose(per_image.mean(), reference, rtol=1e-5)
    assert per_image[3] == 0 and (per_image[:3] > 0).all()  # no positive anchor, no mined negative
    assert [tuple(m.shape[1:]) for m in maps] == [(32, 8, 8), (64, 4, 4), (64, 2, 2), (64, 1, 1)]  # what the head reads


def test_learning_loss_selects_detection_images_by_predicted_loss() -> None:
    from benchmark.detection.pool import DetectionPool
    from benchmark.strategies.base import SelectionContext
    from benchmark.strategies.learning_loss import LearningLoss

    unlabeled = np.array([3, 5, 8, 9])
    pool = DetectionPool(lambda: [], "mean", "background", 11, lambda: np.array([0.2, 1.5, -0.3, 0.9]))
    ctx = SelectionContext(unlabeled, np.array([0]), np.random.default_rng(0), detections=pool)
    assert LearningLoss().select(ctx, 2).tolist() == [5, 9]
    without = SelectionContext(unlabeled, np.array([0]), np.random.default_rng(0),
                               detections=DetectionPool(lambda: [], "mean", "background", 11))
    with pytest.raises(RuntimeError, match=r"training\.aux: loss_prediction"):
        LearningLoss().select(without, 2)


def test_learning_loss_detection_cell_runs_end_to_end(tmp_path: Path) -> None:
    from benchmark.detection.learner import DetectionCellData, DetectionLearnerFactory
    from benchmark.training.execution import Execution

    cell = _cell(strategy="learning_loss", training={"epochs": 2, "batch_size": 8})
    assert cell.training.aux == "loss_prediction" and cell.training.aux_detach_epoch == 1
    assert _cell().training.aux == "none" and _cell(training={"aux": "loss_prediction"}).training.aux_detach_epoch
    suite = write_suite(tmp_path, "detll", SUITE.replace("least_confidence", "learning_loss").replace(
        "name: detresume", "name: detll"))
    result = run_alb("run", str(suite), "--results", str(tmp_path / "out"), "--threads", "1")
    assert result.returncode == 0, result.stderr
    rows = load_results(tmp_path / "out").sort_values("round")
    assert len(rows) == 3 and all(len(s) == 8 for s in rows["selected"])
    # the learner's predicted losses decide the selection: the top ones of a trained module
    data = DetectionCellData.load(cell, tmp_path / "nodata", Execution.for_device("cpu"))
    learner = DetectionLearnerFactory(cell, data, tmp_path).build(0)
    learner.train(np.arange(10), np.empty(0, np.int64), np.empty(0, np.int64), 0, lambda *_: None)
    unlabeled = data.unlabeled(np.arange(10))[:40]
    pool = learner.pool(unlabeled, np.arange(10))
    losses = pool.predicted_losses()
    assert losses.shape == (40,) and np.isfinite(losses).all() and np.ptp(losses) > 0
    from benchmark.strategies.base import SelectionContext
    from benchmark.strategies.learning_loss import LearningLoss

    chosen = LearningLoss().select(SelectionContext(unlabeled, np.arange(10), np.random.default_rng(0),
                                                    detections=pool), 5)
    assert sorted(chosen.tolist()) == sorted(unlabeled[np.argsort(-losses)[:5]].tolist())
    assert set(learner.weights()["aux"]) == set(learner.aux.module.state_dict())  # warm starts keep the module
