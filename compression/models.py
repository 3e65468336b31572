"""Base models and their partition points (paper Sec. 6.1 and 6.5).

Every model is built from ``torchvision.models`` with ``weights=None`` (nothing can be downloaded
here). Partition point ``b`` (1..4) splits the network into a *head* that runs on the UE and a *tail*
that runs on the edge server; ``tail(head(x))`` equals ``model(x)`` exactly in eval mode because both
halves reuse the very same module objects, in the same order, as the model's own ``forward``.

Points (chosen so the feature sizes at 3x224x224 match the authors' measured profile,
``marl_env/data/jetson_nano_profiles.json``):

* ResNet18: output of each of the 4 stages, i.e. after the second (last) residual block of
  ``layer1`` .. ``layer4`` (64x56x56, 128x28x28, 256x14x14, 512x7x7).
* VGG11: after the first four MaxPool layers (64x112x112, 128x56x56, 256x28x28, 512x14x14).
* MobileNetV2: after the last BN of the residual stage that ends before each of the first four
  down-sampling blocks, i.e. after ``features[1]``, ``[3]``, ``[6]``, ``[10]``
  (16x112x112, 24x56x56, 32x28x28, 64x14x14).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision import models as tvm

MODEL_NAMES: tuple[str, ...] = ("resnet18", "vgg11", "mobilenetv2")
POINTS: tuple[int, ...] = (1, 2, 3, 4)
PROFILE_INPUT_SHAPE: tuple[int, int, int] = (3, 224, 224)

_VGG11_POOL_INDEX = (2, 5, 10, 15)  # indices of the first four nn.MaxPool2d in vgg11().features
_MOBILENETV2_BLOCK_INDEX = (1, 3, 6, 10)


def check_model_name(name: str) -> str:
    """Return the canonical model name or raise ``ValueError`` naming the bad value."""
    key = name.lower().replace("_", "").replace("-", "")
    if key not in MODEL_NAMES:
        raise ValueError(f"--model: unknown model {name!r} (choose from {', '.join(MODEL_NAMES)})")
    return key


def check_point(point: int) -> int:
    """Validate a partition point index (1..4)."""
    if int(point) not in POINTS:
        raise ValueError(f"--points: unknown partition point {point!r} (choose from 1, 2, 3, 4)")
    return int(point)


def build_model(name: str, num_classes: int = 101) -> nn.Module:
    """A randomly initialised torchvision model (``weights=None``) with ``num_classes`` outputs."""
    builders: dict[str, Callable[..., nn.Module]] = {
        "resnet18": tvm.resnet18,
        "vgg11": tvm.vgg11,
        "mobilenetv2": tvm.mobilenet_v2,
    }
    return builders[check_model_name(name)](weights=None, num_classes=int(num_classes))


def split(model: nn.Module, point: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Split ``model`` at partition point ``point`` into ``(head, tail)``.

    The halves share parameters with ``model``; ``tail(head(x)) == model(x)`` exactly. Both halves
    take over ``model``'s train/eval mode.
    """
    head, tail = _split(model, check_point(point))
    head.train(model.training)
    tail.train(model.training)
    return head, tail


def _split(model: nn.Module, point: int) -> tuple[nn.Sequential, nn.Sequential]:
    if isinstance(model, tvm.ResNet):
        stages = [model.layer1, model.layer2, model.layer3, model.layer4]
        head = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, *stages[:point])
        tail = nn.Sequential(*stages[point:], model.avgpool, nn.Flatten(1), model.fc)
        return head, tail
    if isinstance(model, tvm.VGG):
        cut = _VGG11_POOL_INDEX[point - 1] + 1
        layers = list(model.features.children())
        head = nn.Sequential(*layers[:cut])
        tail = nn.Sequential(*layers[cut:], model.avgpool, nn.Flatten(1), model.classifier)
        return head, tail
    if isinstance(model, tvm.MobileNetV2):
        cut = _MOBILENETV2_BLOCK_INDEX[point - 1] + 1
        blocks = list(model.features.children())
        head = nn.Sequential(*blocks[:cut])
        tail = nn.Sequential(*blocks[cut:], nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(1), model.classifier)
        return head, tail
    raise ValueError(f"--model: cannot split a {type(model).__name__} (supported: {', '.join(MODEL_NAMES)})")


def model_name_of(model: nn.Module) -> str:
    """The canonical name of a model built by :func:`build_model`."""
    if isinstance(model, tvm.ResNet):
        return "resnet18"
    if isinstance(model, tvm.VGG):
        return "vgg11"
    if isinstance(model, tvm.MobileNetV2):
        return "mobilenetv2"
    raise ValueError(f"--model: unsupported model class {type(model).__name__}")


@torch.no_grad()
def feature_shape(model: nn.Module, point: int, input_shape: tuple[int, int, int] = PROFILE_INPUT_SHAPE,
                  ) -> tuple[int, int, int]:
    """Shape ``(ch, h, w)`` of the intermediate feature at ``point`` for one input of ``input_shape``."""
    head, _ = split(model, point)
    was_training = model.training
    model.eval()
    out = head(torch.zeros(1, *input_shape))
    model.train(was_training)
    return tuple(out.shape[1:])  # type: ignore[return-value]


def feature_channels(name: str, point: int) -> int:
    """Channel count at a point (independent of the input size)."""
    table = {
        "resnet18": (64, 128, 256, 512),
        "vgg11": (64, 128, 256, 512),
        "mobilenetv2": (16, 24, 32, 64),
    }
    return table[check_model_name(name)][check_point(point) - 1]
