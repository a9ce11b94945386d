"""Data cards: where every registered dataset's files come from, how alb checks them, and what to cite.

A card lists the remote files of a dataset as they lie in the data directory (``--data-dir``), each with its
published checksum where one exists. The checksums are the md5 sums torchvision's dataset classes check
(``CHECKSUM_SOURCE`` names the attribute; ``tests/test_data_fetch.py`` compares them with the installed
torchvision). A file without a published checksum says so; alb never invents one.

Torch-free: ``alb data list`` and the checks before ``alb run`` read only this table and the file system.
"""

from __future__ import annotations

from dataclasses import dataclass

NOT_VERIFIED = "not verified: no published checksum"


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file. ``path`` is relative to the data directory (also relative to a mirror's base URL);
    ``checksum`` is ``md5:<hex>`` or ``sha256:<hex>`` (a hex prefix when only a prefix is published) or None;
    ``extract`` is how it is unpacked ('tar', 'zip', 'gunzip', 'zip+tgz' for a zip of .tar.gz files, or None
    when it is read as it is); ``ready`` are the paths (relative to the data directory) that exist once it is
    unpacked."""

    path: str
    url: str
    checksum: str | None
    checksum_source: str
    extract: str | None = None
    ready: tuple[str, ...] = ()

    @property
    def targets(self) -> tuple[str, ...]:
        """What must exist for this file to count as present: its unpacked paths, else the file itself."""
        return self.ready or (self.path,)


@dataclass(frozen=True)
class DataCard:
    name: str
    title: str
    homepage: str
    license: str
    citation: str
    splits: str  # the splits as alb uses them
    files: tuple[RemoteFile, ...] = ()


_TV = "torchvision 0.29 torchvision/datasets/"


def _mnist_like(folder: str, base: str, sums: tuple[str, str, str, str], cls: str) -> tuple[RemoteFile, ...]:
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return tuple(RemoteFile(f"{folder}/raw/{n}.gz", f"{base}{n}.gz", f"md5:{md5}",
                            f"{_TV}mnist.py {cls}.resources", "gunzip", (f"{folder}/raw/{n}",))
                 for n, md5 in zip(names, sums, strict=True))


CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))

_VOC = "https://thor.robots.ox.ac.uk/pascal/VOC/"


def _voc_file(folder: str, name: str, year: str, md5: str, key: str, image_sets: tuple[str, ...]) -> RemoteFile:
    """A VOC tar unpacked into its own folder (VOC 2007's two tars both hold VOCdevkit/VOC2007)."""
    devkit = f"{folder}/VOCdevkit/VOC{year}"
    return RemoteFile(f"{folder}/{name}", f"{_VOC}voc{year}/{name}", f"md5:{md5}",
                      f"{_TV}voc.py DATASET_YEAR_DICT['{key}']", "tar",
                      (f"{devkit}/Annotations", f"{devkit}/JPEGImages",
                       *(f"{devkit}/ImageSets/Main/{s}.txt" for s in image_sets)))


CARDS: dict[str, DataCard] = {card.name: card for card in (
    DataCard("digits", "scikit-learn's optical recognition of handwritten digits (8x8)",
             "https://archive.ics.uci.edu/dataset/80", "CC BY 4.0 (UCI); embedded in scikit-learn",
             "Alpaydin & Kaynak, Optical Recognition of Handwritten Digits, UCI ML Repository, 1998",
             "pool: 1,347 (fixed stratified split of 1,797); test: 450"),
    DataCard("mnist", "MNIST", "https://yann.lecun.com/exdb/mnist/", "CC BY-SA 3.0 (as stated by the authors)",
             "LeCun, Bottou, Bengio & Haffner, Gradient-based learning applied to document recognition, "
             "Proc. IEEE 1998", "pool: 60,000 train; test: 10,000 test",
             _mnist_like("MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/",
                         ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                          "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"), "MNIST")),
    DataCard("fashion_mnist", "Fashion-MNIST", "https://github.com/zalandoresearch/fashion-mnist", "MIT",
             "Xiao, Rasul & Vollgraf, Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning "
             "Algorithms, arXiv:1708.07747, 2017", "pool: 60,000 train; test: 10,000 test",
             _mnist_like("FashionMNIST", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                         ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                          "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
                         "FashionMNIST")),
    DataCard("cifar10", "CIFAR-10", "https://www.cs.toronto.edu/~kriz/cifar.html",
             "no explicit license; free for research (the authors' page)",
             "Krizhevsky, Learning Multiple Layers of Features from Tiny Images, tech. report, U. Toronto, 2009",
             "pool: 50,000 train (data_batch_1..5); test: 10,000 (test_batch)",
             (RemoteFile("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                         "md5:c58f30108f718f92721af3b95e74349a", f"{_TV}cifar.py CIFAR10.tgz_md5", "tar",
                         tuple(f"cifar-10-batches-py/{n}" for n in (*CIFAR_BATCHES, "test_batch"))),)),
    DataCard("cifar100", "CIFAR-100", "https://www.cs.toronto.edu/~kriz/cifar.html",
             "no explicit license; free for research (the authors' page)",
             "Krizhevsky, Learning Multiple Layers of Features from Tiny Images, tech. report, U. Toronto, 2009",
             "pool: 50,000 train; test: 10,000 test (100 fine labels)",
             (RemoteFile("cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                         "md5:eb9058c3a382ffc7106e4002c42a8d85", f"{_TV}cifar.py CIFAR100.tgz_md5", "tar",
                         ("cifar-100-python/train", "cifar-100-python/test")),)),
    DataCard("svhn", "SVHN (cropped digits)", "http://ufldl.stanford.edu/housenumbers/",
             "non-commercial use only (the authors' page)",
             "Netzer et al., Reading Digits in Natural Images with Unsupervised Feature Learning, "
             "NIPS Workshop on Deep Learning 2011", "pool: 73,257 train (no 'extra'); test: 26,032 test",
             (RemoteFile("train_32x32.mat", "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
                         "md5:e26dedcc434d2e4c54c9b2d4a06d8373", f"{_TV}svhn.py SVHN.split_list['train']"),
              RemoteFile("test_32x32.mat", "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
                         "md5:eb5a983be6a315427106f1b164d9cef3", f"{_TV}svhn.py SVHN.split_list['test']"))),
    DataCard("stl10", "STL-10", "https://cs.stanford.edu/~acoates/stl10/", "no explicit license; research use",
             "Coates, Ng & Lee, An Analysis of Single-Layer Networks in Unsupervised Feature Learning, AISTATS 2011",
             "pool: 5,000 labelled train; test: 8,000 test (the 100,000 unlabelled images are not used)",
             (RemoteFile("stl10_binary.tar.gz", "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
                         "md5:91f7769df0f17e558f3565bffb0c7dfb", f"{_TV}stl10.py STL10.tgz_md5", "tar",
                         tuple(f"stl10_binary/{n}" for n in ("train_X.bin", "train_y.bin", "test_X.bin",
                                                             "test_y.bin"))),)),
    DataCard("caltech101", "Caltech-101", "https://data.caltech.edu/records/mzrjq-6wc02", "CC BY 4.0",
             "Fei-Fei, Fergus & Perona, Learning generative visual models from few training examples, "
             "CVPR Workshop on Generative-Model Based Vision 2004",
             "pool: 5,800; test: 2,877 (fixed stratified split of 8,677 images, 101 categories, 64x64)",
             (RemoteFile("caltech101/caltech-101.zip",
                         "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
                         "md5:3138e1922a9193bfa496528edbbc45d0", f"{_TV}caltech.py Caltech101.download()",
                         "zip+tgz", ("caltech101/101_ObjectCategories",)),)),
    DataCard("tiny_imagenet", "Tiny ImageNet (200 classes, 64x64)", "http://cs231n.stanford.edu/",
             "ImageNet terms of access: non-commercial research and education",
             "Le & Yang, Tiny ImageNet Visual Recognition Challenge, CS231N 2015",
             "pool: 100,000 train (500 per class); test: 10,000 labelled val",
             (RemoteFile("tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip", None,
                         NOT_VERIFIED, "zip",
                         ("tiny-imagenet-200/train", "tiny-imagenet-200/val/val_annotations.txt")),)),
    DataCard("voc2007", "PASCAL Visual Object Classes 2007 (detection)", "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",
             "images from Flickr under their own terms; annotations for research use (the challenge's page)",
             "Everingham et al., The PASCAL Visual Object Classes (VOC) Challenge, IJCV 88(2), 2010",
             "pool: 5,011 trainval; test: 4,952 test (20 classes, boxes)",
             (_voc_file("voc2007-trainval", "VOCtrainval_06-Nov-2007.tar", "2007",
                        "c52e279531787c972589f7e41ab4ae64", "2007", ("trainval",)),
              _voc_file("voc2007-test", "VOCtest_06-Nov-2007.tar", "2007",
                        "b6e924de25625d8de591ea690078ad9f", "2007-test", ("test",)))),
    DataCard("voc2012", "PASCAL Visual Object Classes 2012 (detection)", "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
             "images from Flickr under their own terms; annotations for research use (the challenge's page)",
             "Everingham et al., The PASCAL Visual Object Classes (VOC) Challenge, IJCV 88(2), 2010",
             "pool: 5,717 train; test: 5,823 val (the test annotations are not public; 20 classes, boxes)",
             (_voc_file("voc2012", "VOCtrainval_11-May-2012.tar", "2012",
                        "6cd6e144f989b92b3379bac3b3de84fd", "2012", ("train", "val")),)),
)}

# init: imagenet weights alb can place in <data-dir>/weights/ itself (the names benchmark.models.imagenet looks
# for). torchvision publishes the first 8 hex digits of each file's sha256 in its name (torch.hub checks them).
WEIGHTS: dict[str, RemoteFile] = {
    "resnet18_cifar": RemoteFile("weights/resnet18_cifar-imagenet.pth",
                                 "https://download.pytorch.org/models/resnet18-f37072fd.pth", "sha256:f37072fd",
                                 "torchvision ResNet18_Weights.IMAGENET1K_V1 url (sha256 prefix in the name)"),
    "resnet34_cifar": RemoteFile("weights/resnet34_cifar-imagenet.pth",
                                 "https://download.pytorch.org/models/resnet34-b627a593.pth", "sha256:b627a593",
                                 "torchvision ResNet34_Weights.IMAGENET1K_V1 url (sha256 prefix in the name)"),
    # the detector's VGG-16 backbone (benchmark.detection.models.ssd300_vgg16 reads this file name)
    "ssd300_vgg16": RemoteFile("weights/ssd300_vgg16-imagenet.pth",
                               "https://download.pytorch.org/models/vgg16_features-amdegroot-88682ab5.pth",
                               "sha256:88682ab5",
                               "torchvision VGG16_Weights.IMAGENET1K_FEATURES url (sha256 prefix in the name)"),
}
# Weights from the Hugging Face Hub (fetched by huggingface_hub, which caches them): repository and files.
HUB_WEIGHTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "vit_small": ("timm/vit_small_patch16_224.augreg_in21k_ft_in1k", ("model.safetensors",)),
    "swin": ("timm/swin_tiny_patch4_window7_224.ms_in1k", ("model.safetensors",)),
    "dinov2_small": ("facebook/dinov2-small", ("config.json", "model.safetensors")),
}


def card(name: str) -> DataCard | None:
    return CARDS.get(name)
