"""mAP through torchmetrics' MeanAveragePrecision (never computed by hand here).

Backend: faster_coco_eval (the faster of torchmetrics' two COCO backends, installed from PyPI as
``faster-coco-eval``), falling back to pycocotools when only that is installed. Two numbers per evaluation:
``map_50`` (AP at IoU 0.5 averaged over classes, the VOC criterion, with COCO's 101-point interpolation rather
than VOC2007's 11-point one and COCO's cap of an image's 100 best detections) and ``map`` (COCO's AP averaged
over IoU 0.5:0.95). Objects flagged ``difficult`` are passed as crowd regions, so that detections on them count
neither as true nor as false positives, as VOC's evaluation ignores them.
"""

from __future__ import annotations

import importlib.util

import torch

from benchmark.errors import AlbError

BACKENDS = ("faster_coco_eval", "pycocotools")


def backend() -> str:
    """The fastest installed backend of MeanAveragePrecision."""
    for name in BACKENDS:
        if importlib.util.find_spec(name) is not None:
            return name
    raise AlbError("detection needs a COCO evaluation backend for torchmetrics' mAP: pip install faster-coco-eval "
                   "(or pycocotools)")


def detection_map(predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]
                  ) -> dict[str, float]:
    """{'map_50': ..., 'map': ...} of ``predictions`` (boxes xyxy, scores, labels) against ``targets`` (boxes,
    labels, optional ``difficult``), one dict per image; fractions in [0, 1]. A metric that has no ground
    truth to measure (-1 in torchmetrics) is 0."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend=backend())
    metric.warn_on_many_detections = False  # COCO's rule: an image's 100 best detections count, as everywhere
    def crowd(t: dict[str, torch.Tensor]) -> torch.Tensor:
        return t.get("difficult", torch.zeros(len(t["labels"]), dtype=torch.bool)).cpu().to(torch.int64)

    metric.update([{k: v.detach().cpu() for k, v in p.items()} for p in predictions],
                  [{"boxes": t["boxes"].cpu(), "labels": t["labels"].cpu(), "iscrowd": crowd(t)} for t in targets])
    result = metric.compute()
    return {key: max(0.0, float(result[key])) for key in ("map_50", "map")}
