"""Double of ``modules/devices.py`` (v1.10.1) as a CPU-only host started with ``--no-half --use-cpu all`` sets it.

- ``cpu`` (L115) and ``device`` (L120, set by shared_init.py L27-28: the CPU under ``--use-cpu all``).
- ``dtype``, ``dtype_vae``, ``dtype_unet`` (L125-127): fp32 with ``--no-half`` (shared_init.py L30-31,
  sd_models.py L468).
- ``cond_cast_unet(input)`` (L132-135): returns its input unchanged unless ``--upcast-sampling`` is on.
- ``autocast(disable=False)`` (L210-231): a ``nullcontext`` whenever the dtype is fp32 (L225-226).
- ``torch_gc()`` (L77-92): empties the CUDA/MPS/XPU/NPU caches; a CPU-only host has none, so it does nothing.
"""

import contextlib

import torch

cpu: torch.device = torch.device("cpu")
device: torch.device = cpu
dtype: torch.dtype = torch.float32
dtype_vae: torch.dtype = torch.float32
dtype_unet: torch.dtype = torch.float32


def cond_cast_unet(input):
    return input


def autocast(disable=False):
    return contextlib.nullcontext()


def torch_gc():
    return None
