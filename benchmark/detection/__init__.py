"""Object detection as an active-learning task: datasets with boxes, detectors, mAP, per-image scoring.

A dataset declares ``task: detection`` (benchmark.registry.DatasetInfo); its cells train a detector
(benchmark.detection.models) instead of a classifier, record mAP instead of accuracy, and score every
unlabeled image from the class probabilities of its detected boxes (benchmark.detection.scoring).
"""
