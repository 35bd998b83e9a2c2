"""LeNet-7, LeNet-9 and LeNet-12: small LeNet-style CNNs for 3×32×32 inputs and 10 classes.

The number in the name is the number of *weight layers* (convolutions plus fully connected layers),
which is also the number of split units L the profiler finds (each weight layer and the ReLU /
max-pool that follow it form one unit). All three share one shape:

* convolution stages: each stage is a run of 3×3 convolutions (padding 1, stride 1, bias) each
  followed by ReLU, closed by a 2×2 max-pool (stride 2) that halves height and width;
* a classifier: flatten, fully connected hidden layers each followed by ReLU, and a last linear layer
  to 10 logits.

=========  ======================================  ================  ===========================
model      convolution stages (output channels)    hidden FC widths  weight layers (conv + FC)
=========  ======================================  ================  ===========================
lenet7     (32, 32) → pool, (64, 64) → pool         256, 128          4 + 3 = 7   (flatten 4096)
lenet9     (32, 32), (64, 64), (128, 128)           256, 128          6 + 3 = 9   (flatten 2048)
lenet12    (32, 32, 32), (64, 64, 64),              256, 128          9 + 3 = 12  (flatten 2048)
           (128, 128, 128)
=========  ======================================  ================  ===========================
"""

from __future__ import annotations

from torch import nn

NUM_CLASSES = 10
INPUT_SHAPE = (3, 32, 32)


class LeNet(nn.Module):
    """A LeNet-style CNN: convolution stages with ReLU and 2×2 max-pool, then an MLP classifier.

    Args:
        stages: output channels of the 3×3 convolutions, one tuple per stage; each stage ends with
            a 2×2 max-pool, so a 32×32 input leaves the features at ``32 / 2**len(stages)`` pixels.
        hidden: widths of the hidden fully connected layers (each followed by ReLU).
        in_channels, image_size, num_classes: input channels, input height = width, output logits.
    """

    def __init__(self, stages: tuple[tuple[int, ...], ...], hidden: tuple[int, ...],
                 in_channels: int = INPUT_SHAPE[0], image_size: int = INPUT_SHAPE[1],
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for stage in stages:
            for width in stage:
                layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(stages)
        widths = (channels * side * side, *hidden)
        head: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths, widths[1:]):
            head += [nn.Linear(w_in, w_out), nn.ReLU(inplace=True)]
        head.append(nn.Linear(widths[-1], num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        return self.classifier(self.features(x))


def lenet7() -> LeNet:
    """LeNet-7: conv 32, 32 | pool | conv 64, 64 | pool | FC 4096→256→128→10 (4 conv + 3 FC)."""
    return LeNet(stages=((32, 32), (64, 64)), hidden=(256, 128))


def lenet9() -> LeNet:
    """LeNet-9: conv 32, 32 | pool | 64, 64 | pool | 128, 128 | pool | FC 2048→256→128→10 (6 conv + 3 FC)."""
    return LeNet(stages=((32, 32), (64, 64), (128, 128)), hidden=(256, 128))


def lenet12() -> LeNet:
    """LeNet-12: three stages of three convs (32, 64, 128 channels), FC 2048→256→128→10 (9 conv + 3 FC)."""
    return LeNet(stages=((32, 32, 32), (64, 64, 64), (128, 128, 128)), hidden=(256, 128))
