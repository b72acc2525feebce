"""A test double of how the WebUI v1.10.1 loads an embedding file, so tests can show the host would take ours.

Written (not copied) from reading AUTOMATIC1111/stable-diffusion-webui at tag v1.10.1 (commit 82a973c0):

``modules/safe.py`` — the gate every ``torch.load`` of the host goes through:
- L67-76 ``allowed_zip_names_re`` / ``check_zip_filenames``: each zip entry must be ``<dir>/data.pkl``,
  ``<dir>/data/<digits>``, ``<dir>/version``, ``<dir>/byteorder`` or ``<dir>/.data/serialization_id`` (its dot is
  unescaped, so any one character may stand there). Anything else fails the file, including ``.format_version`` and
  ``.storage_alignment``, which recent torch writes.
- L79-95 ``check_pt``: exactly one ``<dir>/data.pkl``, read with the restricted unpickler.
- L97-104: a file that is no zip is taken as torch's legacy format: five pickles in a row.
- L107-156, L194-195 ``load``: the host puts this gate in place of ``torch.load``; a refused file is logged and
  ``None`` comes back instead of an exception (:func:`host_torch_load`).
- L23-64 ``RestrictedUnpickler``: ``persistent_load`` (L26-32) asserts a ``'storage'`` id and returns an empty
  ``TypedStorage``; ``find_class`` (L34-64) allows only the globals in :data:`ALLOWED_GLOBALS`. The
  ``pytorch_lightning`` ModelCheckpoint entries (L54-59) are left out: checking for them would need that package.

``modules/textual_inversion/textual_inversion.py`` — what happens after the gate:
- L177-180: ``.pt``/``.bin`` go through ``torch.load`` (the gate, then a full unpickle); ``.safetensors`` through
  ``safetensors.torch.load_file``.
- L287-317 ``create_embedding_from_data``: the data is a ``string_to_param`` dict with one entry; or a plain ``dict``
  holding ``clip_g`` and ``clip_l`` (every value converted as a tensor); or a plain ``dict`` of one tensor (a
  "diffuser concept", 1-D unsqueezed). Width = last dim (SDXL: clip_g's + clip_l's), vector count = first dim.
"""

from __future__ import annotations

import collections
import importlib
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch

ALLOWED_ZIP_NAME = re.compile(r"^([^/]+)/((data/\d+)|version|byteorder|.data/serialization_id|(data\.pkl))$")
DATA_PKL = re.compile(r"^([^/]+)/data\.pkl$")
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    *(("torch", name) for name in ("FloatStorage", "HalfStorage", "IntStorage", "LongStorage", "DoubleStorage",
                                   "ByteStorage", "float32", "BFloat16Storage")),
    ("torch.nn.modules.container", "ParameterDict"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("_codecs", "encode"),
    ("__builtin__", "set"),
}
LEGACY_PICKLES = 5
REAL_TORCH_LOAD = torch.load


class HostRefused(Exception):
    """The host's gate turned the file away (it logs "Error verifying pickled file" and loads nothing)."""


class _RestrictedUnpickler(pickle.Unpickler):
    def persistent_load(self, saved_id):
        if saved_id[0] != "storage":
            raise HostRefused(f"persistent id {saved_id[0]!r} is not a storage")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "TypedStorage is deprecated": the host uses it regardless
            return torch.storage.TypedStorage(_internal=True)

    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise HostRefused(f"global '{module}/{name}' is forbidden")
        if (module, name) == ("__builtin__", "set"):
            return set
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        return getattr(importlib.import_module(module), name)


def check_pt(path: Path) -> None:
    """Raise :class:`HostRefused` where the host's safety check would refuse ``path``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad = [name for name in names if not ALLOWED_ZIP_NAME.match(name)]
            if bad:
                raise HostRefused(f"bad file inside {path}: {bad[0]}")
            pickles = [name for name in names if DATA_PKL.match(name)]
            if len(pickles) != 1:
                raise HostRefused(f"{len(pickles)} data.pkl found in {path}")
            with archive.open(pickles[0]) as handle:
                _RestrictedUnpickler(handle).load()
    except zipfile.BadZipFile:
        with open(path, "rb") as handle:
            unpickler = _RestrictedUnpickler(handle)
            for _ in range(LEGACY_PICKLES):
                unpickler.load()


def host_torch_load(path, *args, **kwargs):
    """What ``torch.load`` is inside the WebUI: the gate, then the real load; a refused file gives ``None``."""
    try:
        check_pt(Path(path))
    except Exception:
        return None
    return REAL_TORCH_LOAD(path, *args, **kwargs)


@dataclass(frozen=True)
class HostEmbedding:
    vec: torch.Tensor | dict[str, torch.Tensor]
    shape: int  # what the host compares with the model's width: 768 SD1, 1024 SD2, 2048 SDXL
    vectors: int
    step: int | None
    sd_checkpoint: str | None
    sd_checkpoint_name: str | None


def host_load_embedding(path: Path) -> HostEmbedding:
    """Load ``path`` as the host would: the gate, then its sorting into the layouts it knows."""
    if path.suffix.lower() == ".safetensors":
        data = safetensors.torch.load_file(path, device="cpu")
    else:
        check_pt(path)
        data = REAL_TORCH_LOAD(path, map_location="cpu", weights_only=False)  # the host's full unpickle after the gate
    if "string_to_param" in data:
        terms = getattr(data["string_to_param"], "_parameters", data["string_to_param"])
        if len(terms) != 1:
            raise HostRefused("embedding file has multiple terms in it")
        vec = next(iter(terms.values())).detach().float()
        shape, vectors = vec.shape[-1], vec.shape[0]
    elif type(data) is dict and {"clip_g", "clip_l"} <= data.keys():
        vec = {key: value.detach().float() for key, value in data.items()}
        shape, vectors = data["clip_g"].shape[-1] + data["clip_l"].shape[-1], data["clip_g"].shape[0]
    elif type(data) is dict and type(next(iter(data.values()))) is torch.Tensor:
        if len(data) != 1:
            raise HostRefused("embedding file has multiple terms in it")
        vec = next(iter(data.values())).detach().float()
        vec = vec.unsqueeze(0) if vec.dim() == 1 else vec
        shape, vectors = vec.shape[-1], vec.shape[0]
    else:
        raise HostRefused(f"couldn't identify {path.name} as an embedding")
    return HostEmbedding(vec=vec, shape=shape, vectors=vectors, step=data.get("step"),
                         sd_checkpoint=data.get("sd_checkpoint"), sd_checkpoint_name=data.get("sd_checkpoint_name"))
