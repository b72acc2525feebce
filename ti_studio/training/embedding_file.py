"""Embedding files that the WebUI and diffusers both load: ``.safetensors`` (our default) and the WebUI's ``.pt``.

What each consumer accepts (read in the WebUI v1.10.1 ``modules/textual_inversion/textual_inversion.py`` L177-180,
L287-317, its ``modules/safe.py``, and diffusers 0.31 ``loaders/textual_inversion.py`` L203-242):

- SD1/SD2 ``.safetensors``: one tensor ``emb_params [n, width]``. The WebUI takes any one-key tensor file as a
  "diffuser concept"; diffusers takes a one-key file too, with the key as the token unless ``token=`` is given.
- SDXL ``.safetensors``: ``clip_l [n, 768]`` + ``clip_g [n, 1280]``. The WebUI has a branch for exactly this; diffusers
  loads it the way its docstring shows (``state["clip_l"]`` into ``text_encoder``, ``state["clip_g"]`` into
  ``text_encoder_2``), since ``load_textual_inversion`` refuses a two-key file on its own.
- SD1/SD2 ``.pt``: the WebUI's own ``Embedding.save`` layout (``string_to_param`` etc.), which diffusers also reads.
- SDXL ``.pt``: the bare ``{"clip_l", "clip_g"}`` dict. The WebUI's SDXL branch converts *every* value as a tensor,
  so this file can hold nothing else: no name, no step.

Safetensors metadata (strings only) carries the name, step, vector count, model and the trainer's settings; the
WebUI and diffusers ignore it, we read it back. Tensors are written float32, CPU, contiguous, each in its own
storage (``torch.save`` writes a view's whole storage) and never as ``nn.Parameter``.

Every file is written through :func:`ti_studio.fileio.atomic_path`: a crash leaves the old file or the new one.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import safetensors
import safetensors.torch
import torch

from .. import fileio
from ..errors import UserError
from .backend import ModelInfo, Vectors

SD_KEY = "emb_params"
SDXL_KEYS = ("clip_l", "clip_g")
#: The token id the WebUI writes into ``string_to_token`` (the id of ``*`` in CLIP's vocabulary); nothing reads it.
HOST_STAR_TOKEN = 265
#: Safetensors metadata keys this module owns; a caller's metadata may not reuse them.
RESERVED_METADATA = frozenset({"name", "step", "vectors", "model_family", "sd_checkpoint", "sd_checkpoint_name"})

#: Records (after the zip's ``<archive>/`` folder) that the WebUI v1.10.1 allows inside a ``.pt`` (safe.py L67-68).
HOST_ZIP_RECORD = re.compile(r"data\.pkl|data/\d+|version|byteorder|\.data/serialization_id")
#: Records newer torch writes that the WebUI refuses. Readers treat them as optional: files written by torch 2.1
#: (the WebUI's pin) lack them, and without ``.format_version`` torch reads the file the way it reads those.
NEWER_TORCH_RECORDS = frozenset({".format_version", ".storage_alignment"})


@dataclass(frozen=True)
class LoadedEmbedding:
    vectors: Vectors  # {"emb_params": [n, width]} or {"clip_l": ..., "clip_g": ...}, float32 on CPU
    name: str  # the name stored in the file, else the diffusers token (one-key files), else the file's stem
    step: int | None  # None where the file does not say (SDXL .pt, files from other tools)
    metadata: dict[str, str]  # safetensors metadata, or the .pt's sd_checkpoint fields


def save_embedding(path: str | os.PathLike, vectors: Mapping[str, torch.Tensor], name: str, step: int,
                   model: ModelInfo | None, metadata: Mapping[str, object] | None = None) -> None:
    """Write ``vectors`` to ``path`` in the format its suffix names (``.safetensors`` or ``.pt``), atomically.

    ``metadata`` (written as ``str(value)``) goes into ``.safetensors`` files only: the WebUI's ``.pt`` layout has no
    place for it. Bad vectors (wrong keys or shapes for ``model``) are a caller bug (ValueError); a bad path or name,
    or NaN/Inf vectors (a diverged run), is the user's to fix (UserError), and then no file is written.
    """
    path = Path(path)
    writer = _WRITERS.get(path.suffix.lower())
    if writer is None:
        raise UserError(f"cannot save {path}: embedding files end in .safetensors or .pt")
    if path.is_dir():
        raise UserError(f"cannot save {path}: it is a folder")
    if not name or name != name.strip() or not name.isprintable():
        raise UserError(f"bad embedding name {name!r}: it must be one line with no leading or trailing spaces")
    tensors = _plain_tensors(vectors, model)
    bad = _non_finite_keys(tensors)
    if bad:
        raise UserError(f"not saving {path}: the vectors ({', '.join(bad)}) hold NaN or infinite values; "
                        "training diverged, so lower the learning rate or resume from an earlier snapshot")
    contents = _Contents(tensors, name, step, model, _header(tensors, name, step, model, metadata or {}))
    try:
        with fileio.atomic_path(path) as tmp:
            writer(tmp, contents)
    except OSError as error:
        raise UserError(f"cannot save {path}: {error.strerror or error}") from error


def load_embedding(path: str | os.PathLike) -> LoadedEmbedding:
    """Read an embedding: ours, the WebUI's ``.pt``, or a diffusers/Civitai one-token ``.safetensors``/``.bin``.

    Pickle files are read only with ``torch.load(weights_only=True)``: an embedding downloaded from the internet must
    not be able to run code. Anything unreadable, of an unknown layout, or holding NaN/Inf raises UserError naming
    the file.
    """
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise UserError(f"{path}: not an embedding file (expected .safetensors, .pt or .bin)")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    loaded = reader(path)
    bad = _non_finite_keys(loaded.vectors)
    if bad:
        raise UserError(f"{path}: the embedding ({', '.join(bad)}) holds NaN or infinite values")
    return loaded


# --- writing ---------------------------------------------------------------------------------------------------------

def _plain_tensors(vectors: Mapping[str, torch.Tensor], model: ModelInfo | None) -> Vectors:
    keys = set(vectors)
    if keys not in ({SD_KEY}, set(SDXL_KEYS)):
        raise ValueError(f"embedding vectors need the key {SD_KEY!r} or the keys {SDXL_KEYS}, got {sorted(keys)}")
    if model is not None and (model.family == "sdxl") != (keys == set(SDXL_KEYS)):
        raise ValueError(f"a {model.family} embedding cannot have the keys {sorted(keys)}")
    tensors = {key: vectors[key].detach().to(device="cpu", dtype=torch.float32)
               .clone(memory_format=torch.contiguous_format) for key in sorted(keys)}
    for key, tensor in tensors.items():
        if tensor.dim() != 2 or 0 in tensor.shape:
            raise ValueError(f"embedding vectors {key!r} must be [n_vectors, width], got {list(tensor.shape)}")
    if len({tensor.shape[0] for tensor in tensors.values()}) != 1:
        raise ValueError(f"clip_l and clip_g need the same number of vectors, got {_shapes(tensors)}")
    return tensors


def _header(tensors: Vectors, name: str, step: int, model: ModelInfo | None,
            metadata: Mapping[str, object]) -> dict[str, str]:
    clashes = RESERVED_METADATA.intersection(metadata)
    if clashes:
        raise ValueError(f"metadata keys {sorted(clashes)} are written by save_embedding itself")
    header = {"name": name, "step": str(step), "vectors": str(next(iter(tensors.values())).shape[0])}
    if model is not None:
        header["model_family"] = model.family
        header["sd_checkpoint_name"] = model.name
        if model.shorthash:
            header["sd_checkpoint"] = model.shorthash
    header.update({key: str(value) for key, value in metadata.items()})
    return header


@dataclass(frozen=True)
class _Contents:
    """What a writer puts in the file: checked plain tensors, and the fields each format stores its own way."""

    tensors: Vectors
    name: str
    step: int
    model: ModelInfo | None
    header: dict[str, str]  # the safetensors metadata


def _write_safetensors(tmp: Path, contents: _Contents) -> None:
    safetensors.torch.save_file(contents.tensors, str(tmp), metadata=contents.header)


def _write_host_pt(tmp: Path, contents: _Contents) -> None:
    if SD_KEY in contents.tensors:
        data: dict = {
            "string_to_token": {"*": HOST_STAR_TOKEN},
            "string_to_param": {"*": contents.tensors[SD_KEY]},
            "name": contents.name,
            "step": contents.step,
            "sd_checkpoint": contents.model.shorthash if contents.model else None,
            "sd_checkpoint_name": contents.model.name if contents.model else None,
        }
    else:
        data = dict(contents.tensors)
    _torch_save_for_host(data, tmp)


def _torch_save_for_host(data: dict, target: Path) -> None:
    """``torch.save`` ``data`` into a zip that the WebUI v1.10.1's safety check accepts.

    That check (safe.py L67-76) refuses a ``.pt`` whose zip holds any record it does not know, and recent torch (2.13
    here) writes two it does not: ``.format_version`` and ``.storage_alignment``. So a plain ``torch.save`` makes an
    embedding the WebUI will not load ("bad file inside ..."). We let torch pickle the data (its ``data.pkl`` names
    only ``_rebuild_tensor_v2``, ``FloatStorage`` and ``OrderedDict``, all allowed by safe.py L40-45) and copy its
    records, minus those two, into a new zip. What is left is the layout the check was written for, the one older
    torch writes, which every torch must keep reading (``torch.load`` treats both records as optional); it loads
    with ``weights_only=True`` and with ``mmap=True``. Inside the WebUI (torch 2.1) there is nothing to drop.

    Rejected alternative: torch's legacy format (``_use_new_zipfile_serialization=False``), which the check also
    passes (safe.py L97-104). It rests on a private flag and a writer torch keeps only for compatibility, and
    ``torch.load(mmap=True)`` refuses it. A record that is neither allowed nor known-droppable fails loudly here,
    rather than giving a file the WebUI refuses, or one missing data.
    """
    buffer = io.BytesIO()
    torch.save(data, buffer)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zipped:
        for entry in source.infolist():
            record = entry.filename.partition("/")[2]
            if record in NEWER_TORCH_RECORDS:
                continue
            if not HOST_ZIP_RECORD.fullmatch(record):
                raise RuntimeError(f"torch {torch.__version__} wrote the record {entry.filename!r}, which the "
                                   "WebUI's .pt safety check refuses; save as .safetensors instead")
            zipped.writestr(entry.filename, source.read(entry))


_WRITERS: dict[str, Callable[[Path, _Contents], None]] = {
    ".safetensors": _write_safetensors,
    ".pt": _write_host_pt,
}


# --- reading ---------------------------------------------------------------------------------------------------------

def _read_safetensors(path: Path) -> LoadedEmbedding:
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # the Rust reader raises its own types for truncated or garbled files
        raise UserError(f"{path}: not a readable safetensors file ({error})") from error
    vectors = _vectors(tensors, path)
    step = metadata.get("step", "")
    return LoadedEmbedding(vectors=vectors, name=metadata.get("name") or _default_name(tensors, path),
                           step=int(step) if step.isdigit() else None, metadata=metadata)


def _read_torch(path: Path) -> LoadedEmbedding:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt zip, truncated pickle, or a global weights_only refuses: all "unreadable"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: not a readable embedding file ({reason})") from error
    if data is None:  # inside the WebUI, torch.load is its safety gate, which logs why and returns None
        raise UserError(f"{path}: refused by the WebUI's .pt safety check (its console says why); "
                        "re-save the embedding as .safetensors")
    if isinstance(data, torch.Tensor):  # diffusers also accepts a bare tensor
        return LoadedEmbedding(vectors=_vectors({SD_KEY: data}, path), name=path.stem, step=None, metadata={})
    if not isinstance(data, dict):
        raise UserError(f"{path}: holds a {type(data).__name__}, not an embedding")
    if "string_to_param" not in data:
        return LoadedEmbedding(vectors=_vectors(data, path), name=_default_name(data, path), step=None, metadata={})
    params = data["string_to_param"]
    if not isinstance(params, dict) or len(params) != 1:
        raise UserError(f"{path}: string_to_param must hold exactly one tensor")
    name, step = data.get("name"), data.get("step")
    return LoadedEmbedding(
        vectors=_vectors({SD_KEY: next(iter(params.values()))}, path),
        name=name if isinstance(name, str) and name else path.stem,
        step=step if isinstance(step, int) and not isinstance(step, bool) else None,
        metadata={key: data[key] for key in ("sd_checkpoint", "sd_checkpoint_name") if isinstance(data.get(key), str)},
    )


def _vectors(tensors: Mapping[str, object], path: Path) -> Vectors:
    """Sort a file's tensors into our keys: the SDXL pair, or any single tensor (``emb_params``, a diffusers token)."""
    if set(tensors) == set(SDXL_KEYS):
        found = {key: tensors[key] for key in SDXL_KEYS}
    elif len(tensors) == 1:
        found = {SD_KEY: next(iter(tensors.values()))}
    else:
        raise UserError(f"{path}: holds {sorted(map(str, tensors))}; an embedding has one tensor, or clip_l and clip_g")
    vectors = {}
    for key, tensor in found.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise UserError(f"{path}: {key} is not a floating-point tensor")
        tensor = tensor.unsqueeze(0) if tensor.dim() == 1 else tensor  # diffusers writes single vectors as [width]
        if tensor.dim() != 2 or 0 in tensor.shape:
            raise UserError(f"{path}: {key} has shape {list(tensor.shape)}, not [n_vectors, width]")
        vectors[key] = tensor.detach().to(dtype=torch.float32).contiguous()
    if len({tensor.shape[0] for tensor in vectors.values()}) != 1:
        raise UserError(f"{path}: clip_l and clip_g have different vector counts ({_shapes(vectors)})")
    return vectors


def _default_name(tensors: Mapping[str, object], path: Path) -> str:
    """A diffusers file's only key is its token (``<cat-toy>``); otherwise the WebUI's rule: the file's stem."""
    keys = list(tensors)
    return keys[0] if len(keys) == 1 and isinstance(keys[0], str) and keys[0] not in ("", SD_KEY) else path.stem


_READERS: dict[str, Callable[[Path], LoadedEmbedding]] = {
    ".safetensors": _read_safetensors,
    ".pt": _read_torch,
    ".bin": _read_torch,
}


def _non_finite_keys(vectors: Vectors) -> list[str]:
    return [key for key, tensor in vectors.items() if not bool(torch.isfinite(tensor).all())]


def _shapes(vectors: Vectors) -> str:
    return ", ".join(f"{key} {list(tensor.shape)}" for key, tensor in vectors.items())
