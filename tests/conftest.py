"""Test helpers live beside the tests (``photos``, tiny model builders): make them importable as top-level modules."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

# Tiny models with random weights produce subnormal floats, which slow CPU arithmetic about tenfold.
torch.set_flush_denormal(True)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """The tiny SD1 and SD2-v diffusers models (``tiny_sd.py``), built once per session: tests only read them."""
    from tiny_sd import build_tiny_sd

    root = tmp_path_factory.mktemp("tiny_sd")
    return {kind: build_tiny_sd(root / kind, kind) for kind in ("sd1", "sd2-v")}


@pytest.fixture(scope="session")
def sd1_model_dir(tiny_models) -> Path:
    """The tiny SD1's diffusers folder: the model the trainer, CLI and route tests train on."""
    return tiny_models["sd1"]
