"""What alb reads to list, validate and cache cells: names, summaries and static facts, no torch import."""

from benchmark.plugins import Declaration
from benchmark.registry import BackboneInfo, DatasetInfo, StrategyInfo

TOP2_RATIO = Declaration(
    "alb_example_plugin.strategy:Top2Ratio",
    "ratio of the two largest class probabilities p2 / p1, highest first",
    StrategyInfo("plain", needs=("probs",), version=1))

EXAMPLE_MLP = Declaration(
    "alb_example_plugin.backbone:ExampleMLP",
    "one hidden layer of 64 units over the flattened image",
    BackboneInfo(min_image_size=1, version=1))

DIGITS_INVERTED = Declaration(
    "alb_example_plugin.dataset:digits_inverted",
    "scikit-learn's digits with inverted intensities (1,347 pool / 450 test, 8x8)",
    DatasetInfo(n_train=1347, n_test=450, num_classes=10, channels=1, image_size=8, crop_padding=1,
                hflip=False, balanced=False, version=1))
