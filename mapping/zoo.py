"""Reference networks of the NeuRRAM paper (Wan et al., Nature 2022, Table 1), in torch.

Why here: tests, benchmarks and demos compile the same networks; torchvision is not a
dependency, so ResNet-20 (CIFAR-10 shapes, He et al. 2016 option A shortcuts replaced by
1x1 convolutions where the shape changes, as in the paper's Keras model) is built here.
Weights are random (seeded): the compiler's numbers do not depend on training.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["resnet20", "lstm_kws", "rbm", "mlp", "Residual", "RBM", "LstmKws"]


def resnet20(seed: int = 0):
    """ResNet-20 for 32x32x3 inputs: 19 3x3 convs + 2 1x1 shortcut convs + 1 dense layer."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()]
    c_in = 16
    for c, stride in ((16, 1), (32, 2), (64, 2)):
        for k in range(3):
            s = stride if k == 0 else 1
            layers.append(Residual(c_in, c, s))
            c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    model = nn.Sequential(*layers).eval()
    _randomise_bn(model)
    return model


def _randomise_bn(model) -> None:
    """Non-trivial BatchNorm statistics, so folding is exercised."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))


class Residual(nn.Module):
    """conv-bn-relu-conv-bn + shortcut (1x1 conv-bn when the shape changes), relu."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))

class RBM(nn.Module):
    """Restricted Boltzmann machine; the compiler recognises it by the class-name suffix
    ``RBM`` and reads ``weight`` (visible x hidden), ``visible_bias``, ``hidden_bias``."""

    def __init__(self, n_visible: int = 794, n_hidden: int = 120) -> None:
        super().__init__()
        self.weight = nn.Parameter(0.1 * torch.randn(n_visible, n_hidden))
        self.visible_bias = nn.Parameter(0.5 * torch.randn(n_visible))
        self.hidden_bias = nn.Parameter(0.5 * torch.randn(n_hidden))

    def forward(self, v):
        return torch.sigmoid(v @ self.weight + self.hidden_bias)

class LstmKws(nn.Module):
    """One LSTM cell of the paper's keyword-spotting model: 40 -> 112, 12 logits."""

    def __init__(self, n_in: int = 40, hidden: int = 112, n_out: int = 12) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden)
        self.fc = nn.Linear(hidden, n_out)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y[-1])



def lstm_kws(seed: int = 0):
    torch.manual_seed(seed)
    return LstmKws().eval()


def rbm(seed: int = 0, n_visible: int = 794, n_hidden: int = 120):
    torch.manual_seed(seed)
    return RBM(n_visible, n_hidden).eval()


def mlp(sizes=(784, 128, 10), seed: int = 0):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(nn.Flatten(), *layers[:-1]).eval()
