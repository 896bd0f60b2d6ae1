"""A model with a custom module: a gated unit with its own parameters and a weight used twice.

    gnadvisor score examples/models/custom_block.py:GatedNet
"""

import torch
from torch import nn


class Gate(nn.Module):
    """h -> h * sigmoid(a) + b * tanh(h): parameters used directly, not through nn.Linear."""

    def __init__(self, width: int):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(width))
        self.b = nn.Parameter(torch.full((width,), 0.5))

    def forward(self, h):
        return h * torch.sigmoid(self.a) + self.b * torch.tanh(h)


class GatedNet(nn.Module):
    def __init__(self, width: int = 32, d: int = 64, k: int = 10):
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Linear(d, width)
        self.gate = Gate(width)
        self.mix = nn.Linear(width, width)
        self.out = nn.Linear(width, k)

    def forward(self, x):
        h = self.gate(self.inp(x))
        h = torch.relu(self.mix(h))
        h = torch.relu(self.mix(h))  # the same layer twice (weight sharing)
        return self.out(h)
