"""The backbones of the papers' CIFAR training protocols, written for 32x32 inputs as the papers' CIFAR
code writes them: 3x3 stems with stride 1 and no ImageNet max-pool (LeNet-5 is for 28x28 digits).

Every factory has the signature ``factory(num_classes, in_channels=3) -> Backbone``; ``features`` returns
the globally pooled penultimate embedding and ``tap_points`` the modules whose outputs are the feature maps
of each stage, shallow to deep (each called once per forward, its output never modified in place later).

Choices where the CIFAR variants differ:

* ``resnet56_cifar``: He et al. 2016, section 4.2: 6n+2 layers with n = 9, widths 16/32/64, and option-A
  shortcuts (parameter-free: stride-2 subsampling and zero-padding of the new channels), as in the
  paper's CIFAR experiments (0.85M parameters).
* ``vgg16_cifar``: VGG-16 with batch norm after every conv; the classifier is a single linear layer on
  the 512-d output of the last pool (as in the common CIFAR VGG code), no 4096-unit fully connected layers.
* ``mobilenetv2``: Sandler et al. 2018 with ReLU6 and residuals only where stride 1 and width unchanged
  (as in the paper); for CIFAR the stem conv has stride 1 (not 2) and the second stage (24 channels)
  stride 1 (not 2), so 32x32 inputs reach the last stages at 4x4.
* ``densenet121`` / ``densenet201``: Huang et al. 2017 DenseNet-BC, growth 32, bottleneck width 4*32,
  compression 0.5, with a 3x3 stem of 2*growth channels, stride 1 and no initial pool.
* ``cnn13``: the 13-layer ConvNet of Laine & Aila 2017 with batch norm (in place of their weight norm)
  and without the input Gaussian noise layer (an augmentation, not part of the backbone); its two
  dropout(0.5) layers are active in train mode, so two train-mode forwards of one batch differ.
* ``lenet``: LeNet-5 with ReLU and max-pooling; the second pool is adaptive (to 5x5), identical to a
  2x2 max-pool at 28x28, so larger inputs also work.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.models.base import Backbone
from benchmark.models.resnet_cifar import BasicBlock, ResNetCifar


def _pool_flatten(x: torch.Tensor) -> torch.Tensor:
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


# --------------------------------------------------------------------------- ResNet-34

def resnet34_cifar(num_classes: int, in_channels: int = 3) -> ResNetCifar:
    """ResNet-34 (BasicBlock, [3, 4, 6, 3], widths 64..512) with the CIFAR stem; embedding 512."""
    return ResNetCifar((3, 4, 6, 3), num_classes=num_classes, in_channels=in_channels)


# --------------------------------------------------------------------------- ResNet-56 (6n+2)

class OptionAShortcut(nn.Module):
    """He et al.'s option A: subsample by the stride and zero-pad the extra channels (no parameters)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride, self.pad = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x


class ResNet6n2(Backbone):
    """The CIFAR ResNet of He et al. 2016 (section 4.2): 3 stages of n blocks at 16/32/64 channels."""

    def __init__(self, n: int, num_classes: int, in_channels: int = 3,
                 widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        c_in = widths[0]
        for i, width in enumerate(widths):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(c_in, width, stride, shortcut=OptionAShortcut(c_in, width, stride)))
                c_in = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.embedding_dim = c_in
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return _pool_flatten(self.stages(self.stem(x)))

    def tap_points(self) -> list[nn.Module]:
        return [stage[-1] for stage in self.stages]  # the last block of each stage


def resnet56_cifar(num_classes: int, in_channels: int = 3) -> ResNet6n2:
    """ResNet-56 (n = 9), option-A shortcuts; embedding 64."""
    return ResNet6n2(9, num_classes=num_classes, in_channels=in_channels)


# --------------------------------------------------------------------------- VGG-16 (batch norm)

VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                                    512, 512, 512, "M")


class VGGCifar(Backbone):
    def __init__(self, cfg: tuple[int | str, ...], num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        self._pools: list[int] = []
        c_in = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                self._pools.append(len(layers) - 1)
            else:
                c_out = int(item)
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c_in = c_out
        self.body = nn.Sequential(*layers)
        self.embedding_dim = c_in
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return _pool_flatten(self.body(x))  # 1x1 after the fifth pool at 32x32: the pooling is a no-op there

    def tap_points(self) -> list[nn.Module]:
        return [self.body[i] for i in self._pools]  # the max-pool closing each of the five stages


def vgg16_cifar(num_classes: int, in_channels: int = 3) -> VGGCifar:
    """VGG-16 with batch norm, a single linear classifier on the 512-d output; embedding 512."""
    return VGGCifar(VGG16_CFG, num_classes=num_classes, in_channels=in_channels)


# --------------------------------------------------------------------------- Wide ResNet-28-2

class _WideBlock(nn.Module):
    """Pre-activation block (BN-ReLU-conv3x3, BN-ReLU-dropout-conv3x3) as in the WRN authors' code."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.equal = c_in == c_out and stride == 1
        self.shortcut: nn.Module = nn.Identity() if self.equal else nn.Conv2d(c_in, c_out, 1, stride=stride,
                                                                              bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv1(act)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        # a projection shortcut reads the pre-activated input, the identity the raw one
        return out + (x if self.equal else self.shortcut(act))


class WideResNet(Backbone):
    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        groups: list[nn.Module] = []
        c_in = widths[0]
        for i, width in enumerate(widths[1:]):
            blocks = []
            for j in range(n):
                blocks.append(_WideBlock(c_in, width, 2 if (i > 0 and j == 0) else 1, dropout))
                c_in = width
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.Sequential(*groups)
        self.bn = nn.BatchNorm2d(c_in)
        self.embedding_dim = c_in
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return _pool_flatten(F.relu(self.bn(self.groups(self.stem(x)))))

    def tap_points(self) -> list[nn.Module]:
        return list(self.groups)  # the output of each of the three groups


def wideresnet28_2(num_classes: int, in_channels: int = 3) -> WideResNet:
    """WRN-28-2, dropout 0; embedding 128."""
    return WideResNet(28, 2, num_classes=num_classes, in_channels=in_channels)


# --------------------------------------------------------------------------- MobileNetV2 (CIFAR)

def _conv_bn_relu6(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups,
                                   bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(_conv_bn_relu6(c_in, hidden, 1))
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


# (expansion t, channels c, repeats n, stride s) of the paper's table 2, with the CIFAR change of the
# second row's stride 2 -> 1
MOBILENETV2_CIFAR_CFG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                         (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2Cifar(Backbone):
    _TAPPED_STAGES = (1, 2, 4, 6)  # the last stage at each resolution: 32, 16, 8, 4 for a 32x32 input

    def __init__(self, num_classes: int, in_channels: int = 3, last_channels: int = 1280) -> None:
        super().__init__()
        self.stem = _conv_bn_relu6(in_channels, 32, 3, stride=1)  # stride 2 in the ImageNet model
        stages: list[nn.Module] = []
        c_in = 32
        for t, c, n, s in MOBILENETV2_CIFAR_CFG:
            blocks = []
            for j in range(n):
                blocks.append(_InvertedResidual(c_in, c, s if j == 0 else 1, t))
                c_in = c
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.last = _conv_bn_relu6(c_in, last_channels, 1)
        self.embedding_dim = last_channels
        self.head = nn.Linear(last_channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return _pool_flatten(self.last(self.stages(self.stem(x))))

    def tap_points(self) -> list[nn.Module]:
        return [self.stages[i] for i in self._TAPPED_STAGES]


def mobilenetv2(num_classes: int, in_channels: int = 3) -> MobileNetV2Cifar:
    """MobileNetV2 (width 1.0) for CIFAR; embedding 1280."""
    return MobileNetV2Cifar(num_classes=num_classes, in_channels=in_channels)


# --------------------------------------------------------------------------- DenseNet-BC (CIFAR)

class _DenseLayer(nn.Module):
    """Bottleneck layer BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k); its k new maps join the input's."""

    def __init__(self, c_in: int, growth: int, bottleneck: int = 4) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, bottleneck * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(bottleneck * growth)
        self.conv2 = nn.Conv2d(bottleneck * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], 1)


class _Transition(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(c_in)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNetCifar(Backbone):
    def __init__(self, block_config: tuple[int, ...], num_classes: int, in_channels: int = 3, growth: int = 32,
                 compression: float = 0.5) -> None:
        super().__init__()
        channels = 2 * growth
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        for i, n_layers in enumerate(block_config):
            layers = []
            for _ in range(n_layers):
                layers.append(_DenseLayer(channels, growth))
                channels += growth
            self.blocks.append(nn.Sequential(*layers))
            if i < len(block_config) - 1:
                reduced = int(channels * compression)
                self.transitions.append(_Transition(channels, reduced))
                channels = reduced
        self.bn = nn.BatchNorm2d(channels)
        self.embedding_dim = channels
        self.head = nn.Linear(channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stem(x)
        for i, block in enumerate(self.blocks):
            out = block(out)
            if i < len(self.transitions):
                out = self.transitions[i](out)
        return _pool_flatten(F.relu(self.bn(out)))

    def tap_points(self) -> list[nn.Module]:
        return list(self.blocks)  # each dense block's output


def densenet121(num_classes: int, in_channels: int = 3) -> DenseNetCifar:
    """DenseNet-121 (BC, k = 32, blocks 6-12-24-16) for CIFAR; embedding 1024."""
    return DenseNetCifar((6, 12, 24, 16), num_classes=num_classes, in_channels=in_channels)


def densenet201(num_classes: int, in_channels: int = 3) -> DenseNetCifar:
    """DenseNet-201 (BC, k = 32, blocks 6-12-48-32) for CIFAR; embedding 1920."""
    return DenseNetCifar((6, 12, 48, 32), num_classes=num_classes, in_channels=in_channels)


# --------------------------------------------------------------------------- 13-layer ConvNet

def _conv_bn_lrelu(c_in: int, c_out: int, kernel: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=False), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.1, inplace=True))


class CNN13(Backbone):
    """Laine & Aila 2017, table 5: 3x(128 conv3x3), pool, drop, 3x(256 conv3x3), pool, drop,
    512 conv3x3 valid, 256 conv1x1, 128 conv1x1, global average pool."""

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.block1 = nn.Sequential(_conv_bn_lrelu(in_channels, 128, 3, 1), _conv_bn_lrelu(128, 128, 3, 1),
                                    _conv_bn_lrelu(128, 128, 3, 1))
        self.pool1 = nn.Sequential(nn.MaxPool2d(2, 2), nn.Dropout(dropout))
        self.block2 = nn.Sequential(_conv_bn_lrelu(128, 256, 3, 1), _conv_bn_lrelu(256, 256, 3, 1),
                                    _conv_bn_lrelu(256, 256, 3, 1))
        self.pool2 = nn.Sequential(nn.MaxPool2d(2, 2), nn.Dropout(dropout))
        self.block3 = nn.Sequential(_conv_bn_lrelu(256, 512, 3, 0), _conv_bn_lrelu(512, 256, 1, 0),
                                    _conv_bn_lrelu(256, 128, 1, 0))
        self.embedding_dim = 128
        self.head = nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool1(self.block1(x))
        out = self.pool2(self.block2(out))
        return _pool_flatten(self.block3(out))

    def tap_points(self) -> list[nn.Module]:
        return [self.block1, self.block2, self.block3]  # 32x32, 16x16, 6x6 for a 32x32 input


def cnn13(num_classes: int, in_channels: int = 3) -> CNN13:
    """The 13-layer ConvNet of Temporal Ensembling / Mean Teacher; embedding 128."""
    return CNN13(num_classes=num_classes, in_channels=in_channels)


# --------------------------------------------------------------------------- LeNet-5

class LeNet5(Backbone):
    def __init__(self, num_classes: int, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(inplace=True),
                                   nn.MaxPool2d(2, 2))
        # identical to MaxPool2d(2) on the 10x10 maps of a 28x28 input
        self.conv2 = nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.AdaptiveMaxPool2d(5))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True),
                                nn.Linear(120, 84), nn.ReLU(inplace=True))
        self.embedding_dim = 84
        self.head = nn.Linear(84, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # conv_dropout: the MC-dropout site after the convolutional block (Gal et al. 2017)
        return self.fc(self.conv_dropout(self.conv2(self.conv1(x))))

    def tap_points(self) -> list[nn.Module]:
        return [self.conv1, self.conv2]  # 14x14 and 5x5 for a 28x28 input


def lenet(num_classes: int, in_channels: int = 3) -> LeNet5:
    """LeNet-5 for 28x28 inputs (conv 6@5x5 pad 2, pool, conv 16@5x5, pool, fc 120, fc 84); embedding 84."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels)
