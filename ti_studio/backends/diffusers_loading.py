"""Where a diffusers Stable Diffusion 1.x/2.x model comes from: a diffusers folder, one checkpoint file, or the Hub.

Everything that can go wrong here is the user's to fix (a wrong path, an SDXL file, no network), so failures are
:class:`UserError` lines that say what to do. Hub downloads pass ``HF_ENDPOINT`` explicitly on every call (see
``ti_studio.hub``): huggingface_hub reads the variable only at import, and a mirror chosen later must still count.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..hub import current_endpoint

#: The components a training run needs, as diffusers lays them out; no safety checker, no feature extractor.
_COMPONENT_FILES = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/*",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
]
#: What ``from_single_file`` needs besides the weights: the diffusers configs of the model family.
_CONFIG_FILES = ["*.json", "*.txt"]
#: The model trained on when none is given (app, train, compare --grid): SD 1.5, downloaded once into the HF cache.
DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
#: The configs diffusers itself picks for a single file of each family (SD2: the 768 v-prediction model).
DEFAULT_CONFIGS = {"sd1": DEFAULT_MODEL, "sd2": "stabilityai/stable-diffusion-2-1"}
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")

# Keys of an original (ldm) checkpoint that tell the families apart without loading the weights.
_CROSS_ATTENTION_KEY = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
_UNET_INPUT_KEY = "model.diffusion_model.input_blocks.0.0.weight"
_SDXL_KEY_PREFIX = "conditioner.embedders."
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9]$")  # Hub ids: owner/name, no "./"


@dataclass(frozen=True)
class StableDiffusionParts:
    """The loaded, not yet frozen, networks of one model and what identifies it."""

    tokenizer: Any  # transformers.CLIPTokenizer
    text_encoder: Any  # transformers.CLIPTextModel
    unet: Any  # diffusers.UNet2DConditionModel
    vae: Any  # diffusers.AutoencoderKL
    scheduler_config: dict
    name: str
    checkpoint_file: Path | None  # the single file the model came from: what the host's short hash is taken of


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: half precision on CUDA (bf16 where supported: no fp16 overflow, no loss scaling), fp32 elsewhere
    (CPUs have no fast fp16 matmuls; MPS fp16 is left as an explicit choice)."""
    choices = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision not in choices:
        raise UserError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16")
    return choices[precision]


def load_parts(model: str | Path, dtype: torch.dtype, config: str | Path | None = None) -> StableDiffusionParts:
    """The networks of ``model``: a diffusers folder, a ``.safetensors``/``.ckpt`` checkpoint (its diffusers
    ``config``: a folder or Hub repo id, by default the family's reference model), or a Hub repo id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return _load_folder(path, dtype, name=path.name)
    if path.is_file():
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise UserError(f"{path} is not a .safetensors or .ckpt checkpoint, nor a diffusers folder")
        return _load_single_file(path, dtype, config)
    if isinstance(model, str) and _REPO_ID.match(model) and path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        folder = _snapshot(model, ["model_index.json"], what="model")
        _require_sd_pipeline(folder, model)
        return _load_folder(_snapshot(model, _COMPONENT_FILES, what="model"), dtype, name=model.split("/")[-1])
    raise UserError(f"model not found: {model} (expected a diffusers folder, a .safetensors/.ckpt file or a Hub "
                    f"repo id such as {DEFAULT_CONFIGS['sd1']})")


def _load_folder(folder: Path, dtype: torch.dtype, name: str) -> StableDiffusionParts:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.utils import is_accelerate_available
    from transformers import CLIPTextModel, CLIPTokenizer

    _require_sd_pipeline(folder, str(folder))
    lean = {"torch_dtype": dtype, "low_cpu_mem_usage": is_accelerate_available()}  # no warning without it
    try:
        return StableDiffusionParts(
            tokenizer=CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
            text_encoder=CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", torch_dtype=dtype),
            unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **lean),
            vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", **lean),
            scheduler_config=dict(DDPMScheduler.load_config(folder, subfolder="scheduler")),
            name=name,
            checkpoint_file=None,
        )
    except Exception as exc:  # noqa: BLE001 - missing, damaged or mismatched files in the user's folder
        raise UserError(f"cannot load the Stable Diffusion model in {folder} "
                        f"({type(exc).__name__}: {_first_line(exc)})") from None


def _require_sd_pipeline(folder: Path, shown: str) -> None:
    """Refuse what this backend cannot train before loading gigabytes: SDXL, or no diffusers layout at all."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise UserError(f"{shown} is not a diffusers model folder (no model_index.json)")
    index = json.loads(index_file.read_text(encoding="utf-8"))
    if "text_encoder_2" in index or "XL" in str(index.get("_class_name", "")):
        raise UserError(f"{shown} is an SDXL model; the standalone trainer supports SD 1.x and 2.x")
    missing = [part for part in ("tokenizer", "text_encoder", "unet", "vae", "scheduler") if part not in index]
    if missing:
        raise UserError(f"{shown} is not a Stable Diffusion model (no {', '.join(missing)})")


def _load_single_file(path: Path, dtype: torch.dtype, config: str | Path | None) -> StableDiffusionParts:
    from diffusers import StableDiffusionPipeline

    family = checkpoint_family(path)
    config_folder = _config_folder(config or DEFAULT_CONFIGS[family])
    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(path), config=str(config_folder), torch_dtype=dtype, local_files_only=True,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
    except Exception as exc:  # noqa: BLE001 - any conversion failure means "this file does not fit that config"
        raise UserError(f"cannot load {path.name} with the {family} configuration from {config_folder} "
                        f"({type(exc).__name__}: {_first_line(exc)})") from None
    return StableDiffusionParts(
        tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, unet=pipe.unet, vae=pipe.vae,
        scheduler_config=dict(pipe.scheduler.config), name=path.stem, checkpoint_file=path,
    )


def checkpoint_family(path: Path) -> str:
    """``"sd1"`` or ``"sd2"`` from the shapes of a few keys (the width of the UNet's cross-attention), read without
    loading the weights; a clear refusal for SDXL, inpainting and anything that is not Stable Diffusion."""
    shapes = _tensor_shapes(path)
    if any(key.startswith(_SDXL_KEY_PREFIX) for key in shapes):
        raise UserError(f"{path.name} is an SDXL checkpoint; the standalone trainer supports SD 1.x and 2.x")
    if _CROSS_ATTENTION_KEY not in shapes or _UNET_INPUT_KEY not in shapes:
        raise UserError(f"{path.name} is not a Stable Diffusion 1.x/2.x checkpoint")
    if shapes[_UNET_INPUT_KEY][1] != 4:
        raise UserError(f"{path.name} is an inpainting or edit model ({shapes[_UNET_INPUT_KEY][1]} input channels); "
                        f"train on its base model instead")
    return "sd2" if shapes[_CROSS_ATTENTION_KEY][-1] == 1024 else "sd1"


def _tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as file:
                return {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}
        state = _torch_load(path)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
        raise UserError(f"cannot read checkpoint {path.name}: {_first_line(exc)}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else {}
    return {key: tuple(value.shape) for key, value in state.items() if isinstance(value, torch.Tensor)}


def _torch_load(path: Path) -> Any:
    """A ``.ckpt`` read with the restricted unpickler; memory-mapped (nearly free) unless it predates zip files."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "zipfile" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def _config_folder(config: str | Path) -> Path:
    folder = Path(config).expanduser()
    if folder.is_dir():
        return folder
    if not _REPO_ID.match(str(config)):
        raise UserError(f"config not found: {config} (expected a diffusers folder or a Hub repo id)")
    return _snapshot(str(config), _CONFIG_FILES, what="configuration")


def _snapshot(repo_id: str, patterns: list[str], what: str) -> Path:
    from huggingface_hub import snapshot_download

    endpoint = current_endpoint()
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, endpoint=endpoint))
    except Exception as exc:  # noqa: BLE001 - network, HTTP, cache and offline-mode errors all mean "not available"
        raise UserError(
            f"could not download the {what} {repo_id} from {endpoint or 'https://huggingface.co'} "
            f"({type(exc).__name__}: {_first_line(exc)}); check the network, set HF_ENDPOINT to a mirror, "
            f"or pass a local model folder or checkpoint file"
        ) from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else "no details"
