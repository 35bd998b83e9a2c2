"""Known answers about the paper's service pool, for tests that iterate over the zoo registry.

Tests run over ``profiler.zoo.available()``, so a model added to the zoo is tested without editing
them; the facts below are extra checks for the nine models the paper uses (Sec. V).
"""

from __future__ import annotations

from torch import nn

#: Split units of the paper's nine models: one unit per weight layer for LeNet and VGG; stem, one per
#: residual block and the head for ResNet (a residual block holds two live tensors, so it is one unit).
PAPER_UNITS = {"lenet7": 7, "lenet9": 9, "lenet12": 12, "resnet18": 10, "resnet34": 18, "resnet50": 18,
               "vgg13": 13, "vgg16": 16, "vgg19": 19}


def weight_layers(model: nn.Module) -> int:
    """Convolution and linear modules: a unit opens at one of them, so L is at most this many."""
    return sum(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) for m in model.modules())
