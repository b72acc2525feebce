"""Test helpers live beside the tests (``photos``, tiny model builders): make them importable as top-level modules."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

# Tiny models with random weights produce subnormal floats, which slow CPU arithmetic about tenfold.
torch.set_flush_denormal(True)
