"""Model registry: the architectures of the sharpness-aware-minimisation literature, plus timm.

``create_model`` builds a fresh, randomly initialised model by name, so that experiment specs can
name architectures as strings. The fixed names are :data:`MODELS`; any timm architecture is
available as ``"timm:<name>"``.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

MODELS: tuple[str, ...] = ("lenet5", "resnet18", "wrn28_10", "wrn16_8")
TIMM_PREFIX = "timm:"


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) with the modern ReLU and max-pooling in place of tanh and
    trainable sub-sampling.

    conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> FC 120 -> FC 84 -> FC classes. The original
    network takes 32x32 inputs; 28x28 inputs (MNIST) are padded by 2 in the first convolution so
    that both reach the classic 16x5x5 feature map.
    """

    def __init__(self, *, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        padding = 2 if image_size == 28 else 0
        side = ((image_size + 2 * padding - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"lenet5 needs image_size >= 16, got {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """The post-activation residual block of ResNet-18/34 (He et al., 2016)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18 for small images, as in the SAM papers: a 3x3 stride-1 stem without max-pooling
    (the ImageNet stem would shrink 32x32 inputs to 8x8 at once), BasicBlocks [2, 2, 2, 2] of
    widths 64-128-256-512, global average pooling and a linear classifier."""

    def __init__(self, *, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        in_planes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)]
            in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class WideBlock(nn.Module):
    """The pre-activation block of Wide ResNets: BN-ReLU-conv3x3-dropout-BN-ReLU-conv3x3.

    When the shape changes, the 1x1 projection shortcut takes the pre-activated input, as in the
    reference implementation of Zagoruyko & Komodakis.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = torch.relu(self.bn1(x))
        out = self.conv1(activated)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + (x if self.shortcut is None else self.shortcut(activated))


class WideResNet(nn.Module):
    """WRN-depth-width (Zagoruyko & Komodakis, 2016): a 3x3 conv of 16 channels, three groups of
    ``(depth - 4) / 6`` :class:`WideBlock` of widths 16k, 32k, 64k (strides 1, 2, 2), then
    BN-ReLU, global average pooling and a linear classifier. Initialised as the reference code
    (He-normal convolutions, unit BN scale, zero biases)."""

    def __init__(
        self,
        *,
        depth: int,
        width: int,
        num_classes: int,
        in_channels: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1, got {depth}")
        if width < 1:
            raise ValueError(f"WideResNet width must be >= 1, got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        blocks_per_group = (depth - 4) // 6
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        in_planes = 16
        for planes, stride in ((16 * width, 1), (32 * width, 2), (64 * width, 2)):
            for index in range(blocks_per_group):
                blocks.append(WideBlock(in_planes, planes, stride if index == 0 else 1, dropout))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_planes)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(self.pool(out), 1))


def is_timm_model(name: str) -> bool:
    """Whether timm knows the architecture ``name`` (without the ``timm:`` prefix)."""
    return timm.is_model(name)


def _create_timm(name: str, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """A randomly initialised timm model; ``img_size`` is passed where the model takes it (ViTs
    and other models with positional embeddings), since convolutional nets reject it."""
    if not timm.is_model(name):
        raise ValueError(f"unknown timm model {name!r} (see timm.list_models())")
    kwargs = {"pretrained": False, "num_classes": num_classes, "in_chans": in_channels}
    try:
        return timm.create_model(name, img_size=image_size, **kwargs)
    except TypeError as error:
        if "img_size" not in str(error):
            raise
    return timm.create_model(name, **kwargs)


def create_model(name: str, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """A fresh model ``name`` (one of :data:`MODELS` or ``"timm:<name>"``) for the given data."""
    for argument, value in (
        ("num_classes", num_classes),
        ("in_channels", in_channels),
        ("image_size", image_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{argument} must be an int >= 1, got {value!r}")
    if name.startswith(TIMM_PREFIX):
        return _create_timm(
            name[len(TIMM_PREFIX) :],
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=image_size,
        )
    if name == "lenet5":
        return LeNet5(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    if name == "resnet18":
        return CifarResNet18(num_classes=num_classes, in_channels=in_channels)
    if name in ("wrn28_10", "wrn16_8"):
        depth, width = (int(part) for part in name[len("wrn") :].split("_"))
        return WideResNet(
            depth=depth, width=width, num_classes=num_classes, in_channels=in_channels
        )
    raise ValueError(
        f"unknown model {name!r}; valid names: {', '.join(MODELS)}, or {TIMM_PREFIX}<name> "
        f"for any timm model"
    )
