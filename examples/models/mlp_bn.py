"""An MLP with batch norm for digits (64 inputs, 10 outputs). Score it with:

    gnadvisor score examples/models/mlp_bn.py:make_model
"""

import torch
from torch import nn


def make_model(width: int = 64, depth: int = 3) -> nn.Module:
    torch.manual_seed(0)
    layers, d = [], 64
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.BatchNorm1d(width), nn.ReLU()]
        d = width
    layers.append(nn.Linear(d, 10))
    return nn.Sequential(*layers)
