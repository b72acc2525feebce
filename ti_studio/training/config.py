"""One training run's settings: a typed, validated value, kept as ``config.json`` in the run folder.

Everything the CLI, the UI and the HTTP API accept passes through :class:`TrainConfig`, so a bad value is refused
in one place, with one line that names the setting, before any model is loaded. The JSON form holds every field;
keys missing from an older file take today's defaults, unknown keys are refused (a typo must not silently train
with a default).

Choices that differ from the host's Train tab, and why:
- ``init_text`` defaults to "" as in the tutorial; the host then starts from zero vectors. A zero vector has no
  direction, so ``norm_control="directional"`` starts such rows from a random direction (see ``norm_control.py``);
  ``cap`` is unaffected (it only shortens long rows).
- ``clip_mode`` defaults to ``norm`` at 1.0 (the host: off). Under Adam, clipping only shortens steps whose gradient
  is an outlier against its running scale, which is what an fp16 spike or a bad batch looks like: a cheap guard.
- ``latent_sampling`` keeps the host's meanings, on latents cached once: ``once`` draws one sample from each
  image's VAE posterior when the cache is built and reuses it; ``deterministic`` uses the posterior mean;
  ``random`` draws a new sample from the cached mean and standard deviation every time the image is used.
- ``preview_prompt`` may say ``[name]``; it is replaced by the embedding's name, so renaming keeps previews right.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Union, get_args, get_origin, get_type_hints

from .. import fileio
from ..errors import UserError
from .schedule import TUTORIAL, LearningRateSchedule

LatentSampling = Literal["once", "deterministic", "random"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]
ClipMode = Literal["off", "value", "norm"]
NormControl = Literal["off", "cap", "directional"]
OutputFormat = Literal["safetensors", "pt", "both"]

MAX_NAME_LENGTH = 64
#: The host sanitises embedding names to letters, digits and these; we refuse the rest instead of changing the name.
NAME_PUNCTUATION = "._- "
#: File names Windows reserves whatever the extension ("con.pt" cannot be created).
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
#: CLIP's context holds 77 tokens: BOS, EOS and 75 for the prompt, which the embedding's vectors share.
MAX_VECTORS = 75
MAX_SEED = 2**32 - 1

#: Settings a resumed run may change: they decide how long the run goes and what it writes, not what a step does.
_FREE_ON_RESUME = frozenset({"steps", "save_every", "preview_every", "preview_prompt", "preview_negative_prompt",
                             "preview_seed", "preview_steps", "preview_cfg_scale", "output_format"})


def check_embedding_name(name: str) -> str:
    """``name`` if it can be both a prompt word and a file name on every OS; a :class:`UserError` saying why not."""
    if not name:
        raise UserError("embedding name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise UserError(f'embedding name "{name[:20]}…" is {len(name)} characters; at most {MAX_NAME_LENGTH}')
    for char in name:
        if not (char.isalnum() or char in NAME_PUNCTUATION):
            shown = repr(char) if not char.isprintable() or char.isspace() else f'"{char}"'
            raise UserError(f'embedding name "{name}": {shown} is not allowed (use letters, digits, space, '
                            f'".", "_" and "-")')
    if name != name.strip(" ."):
        raise UserError(f'embedding name "{name}" must not start or end with a space or a dot (Windows drops them '
                        "from file names; a leading dot hides the file)")
    if ".." in name:
        raise UserError(f'embedding name "{name}" must not contain ".."')
    if name.split(".")[0].strip().lower() in _WINDOWS_DEVICES:
        raise UserError(f'embedding name "{name}" is a device name on Windows; choose another')
    return name


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one run. Validated on construction; see the module docstring for the defaults' reasons."""

    name: str
    vectors: int = 2  # faces and characters do best with 2-4 (trainer research §4.4); 2 leaves 73 prompt tokens
    init_text: str = ""
    learning_rate: str = TUTORIAL.text  # a schedule in the host's syntax, kept as typed
    steps: int = 3000
    batch_size: int = 1
    grad_accum: int = 1
    size: int | None = None  # training square in pixels; None = the model's native size
    template: str = "name_filewords"  # a template name or a path to a .txt file
    save_every: int = 50
    preview_every: int = 500  # 0 = no previews
    preview_prompt: str = "a photo of [name]"
    preview_negative_prompt: str = ""
    preview_seed: int = 1
    preview_steps: int = 20
    preview_cfg_scale: float = 7.0
    shuffle_tags: bool = True
    tag_dropout: float = 0.0
    latent_sampling: LatentSampling = "once"
    flip: bool = False
    seed: int = 0
    precision: Precision = "auto"
    clip_mode: ClipMode = "norm"
    clip_value: float = 1.0
    # Measured (benchmarks/bench_norm.py): "directional" keeps the norm at a real word's, lowers the fixed loss as
    # much as "cap", and disturbs the words after the embedding 2.5x less than "off" or "cap".
    norm_control: NormControl = "directional"
    norm_cap_factor: float = 3.0  # cap = this many times the vocabulary's mean token norm
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    output_format: OutputFormat = "safetensors"

    def __post_init__(self) -> None:
        for field_name, hint in get_type_hints(type(self)).items():
            object.__setattr__(self, field_name, _typed(field_name, hint, getattr(self, field_name)))
        check_embedding_name(self.name)
        _in_range("vectors", self.vectors, 1, MAX_VECTORS)
        LearningRateSchedule.parse(self.learning_rate)
        for field_name in ("steps", "batch_size", "grad_accum", "save_every"):
            _in_range(field_name, getattr(self, field_name), 1)
        if self.size is not None and (self.size % 8 or not 64 <= self.size <= 2048):
            raise UserError(f"size: {self.size} px is not a multiple of 8 between 64 and 2048")
        if not self.template.strip():
            raise UserError("template: give a template name (such as name_filewords) or a .txt file")
        _in_range("preview_every", self.preview_every, 0)
        if self.preview_every and not self.preview_prompt.strip():
            raise UserError("preview_prompt is empty: give a prompt, or turn previews off (preview_every 0)")
        _in_range("preview_seed", self.preview_seed, 0, MAX_SEED)
        _in_range("preview_steps", self.preview_steps, 1, 150)
        _in_range("preview_cfg_scale", self.preview_cfg_scale, 1.0, 30.0)
        if not 0 <= self.tag_dropout < 1:
            raise UserError(f"tag_dropout: {self.tag_dropout} is not a probability from 0 up to (not including) 1")
        _in_range("seed", self.seed, 0, MAX_SEED)
        for field_name in ("clip_value", "norm_cap_factor", "adam_eps"):
            if not getattr(self, field_name) > 0:
                raise UserError(f"{field_name}: {getattr(self, field_name)} must be above 0")
        for field_name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, field_name) < 1:
                raise UserError(f"{field_name}: {getattr(self, field_name)} must be from 0 up to (not including) 1")
        _in_range("weight_decay", self.weight_decay, 0.0)

    @property
    def schedule(self) -> LearningRateSchedule:
        """The parsed learning rate (parsed again on each access: keep the result)."""
        return LearningRateSchedule.parse(self.learning_rate)

    @property
    def effective_steps(self) -> int:
        """Steps the run trains: ``steps``, or fewer when the schedule's last entry ends training (host behaviour)."""
        return self.schedule.stop_step(self.steps)

    @property
    def adam_betas(self) -> tuple[float, float]:
        return self.adam_beta1, self.adam_beta2

    def describe(self) -> str:
        """One line for logs, the run list and error messages."""
        size = f"{self.size}px" if self.size else "native size"
        norm = f"norm cap {self.norm_cap_factor:g}x" if self.norm_control == "cap" else f"norm {self.norm_control}"
        return (f"{self.name}: {self.vectors} vector{'s' * (self.vectors != 1)}, {self.effective_steps} steps at "
                f"lr {self.learning_rate}, batch {self.batch_size}x{self.grad_accum}, {size}, template "
                f"{self.template}, {norm}, seed {self.seed}")

    def resume_key(self) -> dict[str, Any]:
        """The settings a resumed run must share with the saved one for its steps to continue the same run."""
        return {key: value for key, value in self.to_json().items() if key not in _FREE_ON_RESUME}

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> TrainConfig:
        """A config from its JSON form: missing keys take defaults, unknown keys and bad values are refused."""
        if not isinstance(data, Mapping):
            raise UserError(f"training config: expected a JSON object, found {type(data).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"training config: unknown setting(s) {', '.join(unknown)}")
        if "name" not in data:
            raise UserError("training config: no embedding name")
        return cls(**data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a run's ``config.json``; a :class:`UserError` when it is missing or damaged."""
        try:
            data = fileio.read_json(path)
        except FileNotFoundError:
            raise UserError(f"no training config at {path}") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: not a readable training config ({exc})") from None
        return cls.from_json(data)


def _in_range(field_name: str, value: float, low: float, high: float | None = None) -> None:
    if value < low or (high is not None and value > high):
        limits = f"at least {low}" if high is None else f"from {low} to {high}"
        raise UserError(f"{field_name}: {value} is out of range ({limits})")


def _typed(field_name: str, hint: Any, value: Any) -> Any:
    """``value`` checked against the field's type; whole-number floats become ints and ints become floats, since
    JSON and UI number boxes do not keep that distinction."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        (hint,) = [arg for arg in get_args(hint) if arg is not type(None)]
        origin = get_origin(hint)
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices or not isinstance(value, str):
            raise UserError(f"{field_name}: {value!r} is not one of {', '.join(choices)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"{field_name}: {value!r} is not true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise UserError(f"{field_name}: {value!r} is not text")
        return value
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        if not is_number or (isinstance(value, float) and not value.is_integer()):
            raise UserError(f"{field_name}: {value!r} is not a whole number")
        return int(value)
    if hint is float:
        if not is_number or not math.isfinite(value):
            raise UserError(f"{field_name}: {value!r} is not a number")
        return float(value)
    raise TypeError(f"{field_name}: unsupported field type {hint!r}")
