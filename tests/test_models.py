"""Tests of lightsam.models: output shapes, published parameter counts, timm, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightsam.models import MODELS, WideResNet, create_model


def _num_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def _logits(model: nn.Module, batch: int, channels: int, size: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.randn(batch, channels, size, size))


@pytest.mark.parametrize(
    ("name", "classes", "channels", "size", "parameters"),
    [
        # LeNet-5 on MNIST: 156 + 2,416 + 48,120 + 10,164 + 850 (the classic 61.7k).
        ("lenet5", 10, 1, 28, 61_706),
        ("lenet5", 10, 3, 32, 62_006),
        # CIFAR ResNet-18 as in the SAM papers: 11.17M for 10 classes.
        ("resnet18", 10, 3, 32, 11_173_962),
        ("resnet18", 100, 3, 32, 11_220_132),
        ("resnet18", 10, 1, 28, 11_172_810),
        # Zagoruyko & Komodakis report 11.0M (WRN-16-8) and 36.5M (WRN-28-10) parameters.
        ("wrn16_8", 10, 3, 32, 10_961_370),
        ("wrn28_10", 10, 3, 32, 36_479_194),
    ],
)
def test_forward_shape_and_parameter_count(
    name: str, classes: int, channels: int, size: int, parameters: int
):
    torch.manual_seed(0)
    model = create_model(name, num_classes=classes, in_channels=channels, image_size=size)
    assert _num_parameters(model) == parameters
    logits = _logits(model, 2, channels, size)
    assert logits.shape == (2, classes)
    assert torch.isfinite(logits).all()


def test_models_train_and_propagate_gradients():
    torch.manual_seed(0)
    for name in ("lenet5", "wrn16_8"):
        model = create_model(name, num_classes=10, in_channels=3, image_size=32)
        model.train()
        loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.arange(4))
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_wide_resnet_structure_and_arguments():
    model = create_model("wrn28_10", num_classes=10, in_channels=3, image_size=32)
    assert isinstance(model, WideResNet)
    assert len(model.blocks) == 12  # (28 - 4) / 6 = 4 blocks in each of 3 groups
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.0] * 12
    with pytest.raises(ValueError, match="6n \\+ 4"):
        WideResNet(depth=27, width=10, num_classes=10, in_channels=3)
    with pytest.raises(ValueError, match="dropout"):
        WideResNet(depth=16, width=8, num_classes=10, in_channels=3, dropout=1.0)


def test_timm_vit_takes_the_image_size():
    model = create_model("timm:vit_tiny_patch16_224", num_classes=10, in_channels=3, image_size=32)
    assert model.patch_embed.num_patches == 4  # a 2x2 grid of 16x16 patches
    assert _logits(model, 2, 3, 32).shape == (2, 10)


def test_timm_convnet_without_image_size_argument():
    model = create_model("timm:resnet10t", num_classes=7, in_channels=1, image_size=28)
    assert _logits(model, 2, 1, 28).shape == (2, 7)


def test_unknown_names_and_invalid_arguments():
    assert MODELS == ("lenet5", "resnet18", "wrn28_10", "wrn16_8")
    with pytest.raises(ValueError, match="lenet5, resnet18, wrn28_10, wrn16_8, or timm:<name>"):
        create_model("resnet50", num_classes=10, in_channels=3, image_size=32)
    with pytest.raises(ValueError, match="unknown timm model 'no_such_net'"):
        create_model("timm:no_such_net", num_classes=10, in_channels=3, image_size=32)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("lenet5", num_classes=0, in_channels=1, image_size=28)
    with pytest.raises(ValueError, match="image_size >= 16"):
        create_model("lenet5", num_classes=10, in_channels=1, image_size=12)
