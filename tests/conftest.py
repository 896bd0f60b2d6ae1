import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/cases.py is importable as `cases`
torch.set_default_dtype(torch.float64)
