"""The MNIST models trained for the chip experiments, as plain torch modules.

* ``mnist_mlp``: 784-256-128-10 with ReLU, the fully connected MNIST network of the RPU
  study (Gokmen & Vlasov 2016), here with ReLU so that every layer input is unsigned.
* ``mnist_cnn7``: 6 convolutions + 1 dense layer with max-pooling, the shape of the NeuRRAM
  MNIST model (Wan et al. 2022, Table 1: 7-layer CNN, 23,170 parameters). The paper gives no
  layer widths; these (8, 8, 16, 16, 32, 32 channels, 3x3 kernels) are ours, chosen so the
  parameter count is the paper's 23,170. No batch norm: nothing to fold before mapping.

Only Linear, Conv2d, ReLU, MaxPool2d and Flatten appear, the modules the compiler accepts.
"""

from __future__ import annotations

from torch import nn

__all__ = ["mnist_mlp", "mnist_cnn7", "MODELS", "n_params"]


def mnist_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def mnist_cnn7() -> nn.Sequential:
    def conv(i, o, pad):
        return [nn.Conv2d(i, o, 3, padding=pad), nn.ReLU()]

    return nn.Sequential(
        *conv(1, 8, 0), *conv(8, 8, 0), nn.MaxPool2d(2),        # 28 -> 26 -> 24 -> 12
        *conv(8, 16, 0), *conv(16, 16, 0), nn.MaxPool2d(2),     # 12 -> 10 -> 8 -> 4
        *conv(16, 32, 1), *conv(32, 32, 1),                     # 4 -> 4 -> 4
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
    )


MODELS = {"mlp": mnist_mlp, "cnn7": mnist_cnn7}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
