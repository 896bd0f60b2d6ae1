import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/cases.py is importable as `cases`
torch.set_default_dtype(torch.float64)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny matrices: one intra-op thread avoids OpenMP oversubscription on a shared 2-core machine.

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
