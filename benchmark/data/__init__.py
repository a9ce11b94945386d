"""Dataset registry.

Each entry carries static facts (pool and test sizes, classes, image shape and
the dataset's standard augmentation) so that suite files can be validated
without loading any data or importing torch.
"""

from __future__ import annotations

from benchmark.registry import Registry

DATASETS: Registry = Registry("dataset")

_TV = "benchmark.data.torchvision_sets"

# info keys: n_train, n_test, num_classes, channels, image_size, crop_padding, hflip
DATASETS.register(
    "digits", "benchmark.data.digits:load_digits_dataset",
    "scikit-learn's embedded 8x8 handwritten digits (1,797 images, 10 classes); offline",
    n_train=1347, n_test=450, num_classes=10, channels=1, image_size=8,
    crop_padding=1, hflip=False,
)
DATASETS.register(
    "mnist", f"{_TV}:load_mnist", "MNIST 28x28 handwritten digits (torchvision download)",
    n_train=60000, n_test=10000, num_classes=10, channels=1, image_size=28,
    crop_padding=2, hflip=False,
)
DATASETS.register(
    "fashion_mnist", f"{_TV}:load_fashion_mnist",
    "Fashion-MNIST 28x28 clothing images (torchvision download)",
    n_train=60000, n_test=10000, num_classes=10, channels=1, image_size=28,
    crop_padding=2, hflip=True,
)
DATASETS.register(
    "cifar10", f"{_TV}:load_cifar10", "CIFAR-10 32x32 colour images, 10 classes",
    n_train=50000, n_test=10000, num_classes=10, channels=3, image_size=32,
    crop_padding=4, hflip=True,
)
DATASETS.register(
    "cifar100", f"{_TV}:load_cifar100", "CIFAR-100 32x32 colour images, 100 classes",
    n_train=50000, n_test=10000, num_classes=100, channels=3, image_size=32,
    crop_padding=4, hflip=True,
)
DATASETS.register(
    "svhn", f"{_TV}:load_svhn", "SVHN 32x32 house numbers (train split, no 'extra')",
    n_train=73257, n_test=26032, num_classes=10, channels=3, image_size=32,
    crop_padding=4, hflip=False,
)

DATASETS.plan(["tiny_imagenet", "caltech101", "stl10", "image_folder", "npz"],
              "planned: the remaining datasets of the papers")
