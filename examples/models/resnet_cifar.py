"""A ResNet-style CNN for CIFAR-shaped inputs (3x32x32, 10 classes).

``make_model()`` is ResNet-20 (He et al. 2016: 3 stages of 3 basic blocks, 16/32/64 channels,
~270k parameters); ``make_model(blocks=1, width=8)`` is a small variant for quick checks.

    gnadvisor score examples/models/resnet_cifar.py:make_model --input-shape 3,32,32 --samples 1000
"""

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks: int = 3, width: int = 16, n_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, c = [], width
        for stage, mult in enumerate((1, 2, 4)):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(c, width * mult, stride))
                c = width * mult
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(c, n_classes)

    def forward(self, x):
        h = self.layers(self.stem(x))
        return self.head(h.mean(dim=(2, 3)))


def make_model(blocks: int = 3, width: int = 16) -> nn.Module:
    torch.manual_seed(0)
    return ResNet(blocks=blocks, width=width)
