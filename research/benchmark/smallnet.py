"""SmallNet: the benchmark's own small residual network, pre-trained on source tasks related and
unrelated to the targets (research/benchmark/sources.py). Four stages, each halving the
resolution, 0.3 M parameters; exported with scripts/export_zoo.py --module smallnet:build5
(or build10) with research/benchmark on PYTHONPATH.
"""

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.skip(x))


class SmallNet(nn.Module):
    def __init__(self, classes: int = 10, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stage1 = Block(width, width * 2)
        self.stage2 = Block(width * 2, width * 4)
        self.stage3 = Block(width * 4, width * 8)
        self.stage4 = Block(width * 8, width * 16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stage4(self.stage3(self.stage2(self.stage1(x))))
        return self.fc(self.pool(x).flatten(1))


def build5() -> SmallNet:
    return SmallNet(5)


def build10() -> SmallNet:
    return SmallNet(10)
