"""The Textual Inversion training loop, host-independent: it drives any :class:`TrainingBackend`.

Per optimizer step: for each of ``grad_accum`` micro-batches, pick images (a seeded, epoch-wise shuffled order),
build their prompts from the template, take their cached latents, noise them at random timesteps, ask the backend
for the prediction with the embedding spliced into the prompts, and backpropagate the MSE to the embedding alone.
Then clip, step AdamW, apply the norm control, log, and save snapshots and previews on schedule.

Only the embedding's own tensors are optimised (never the vocabulary matrix), the latents are encoded once, and all
randomness comes from two generators seeded by the config, whose states are saved with every snapshot: a resumed
run continues with exactly the numbers an uninterrupted run would have produced (on the same device).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from .. import fileio
from ..errors import UserError
from .backend import PreviewRequest, TrainingBackend
from .config import TrainConfig
from .dataset import LatentCache, TrainingImage, load_training_images
from .embedding_file import save_embedding
from .noise import add_noise, prediction_target
from .norm_control import TrainableEmbedding
from .run_files import LossLog, RunFolder, load_state, save_state
from .schedule import LearningRateSchedule
from .templates import Template, load_template

#: Images (and fixed timesteps) of the deterministic evaluation loss measured at every snapshot.
EVAL_IMAGES = 4
EVAL_TIMESTEP_FRACTIONS = (0.2, 0.5, 0.8, 0.95)


@dataclass
class StepReport:
    """What the UI's progress bar and plot need after each optimizer step."""

    step: int
    total_steps: int
    loss: float
    learning_rate: float
    norm: float
    fixed_loss: float | None = None
    snapshot: Path | None = None
    preview: Path | None = None
    preview_image: Image.Image | None = None


@dataclass
class TrainCallbacks:
    on_step: Callable[[StepReport], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_status: Callable[[str], None] | None = None  # phases before the first step: "encoding images 3/20"


@dataclass
class TrainResult:
    run_dir: Path
    steps_done: int
    finished: bool  # reached the configured number of steps
    stopped_reason: str | None  # interrupted, or the loss became NaN/Inf
    snapshots: list[Path] = field(default_factory=list)
    last_good_snapshot: Path | None = None


@dataclass(frozen=True)
class TrainingData:
    template: Template
    images: list[TrainingImage]


def prepare_data(config: TrainConfig, dataset_dir: str | Path, template_dirs: tuple[Path, ...] = ()
                 ) -> TrainingData:
    """The template and the images with captions, checked: cheap, so front ends call it before loading a model."""
    template = load_template(config.template, extra_dirs=template_dirs)
    return TrainingData(template=template, images=load_training_images(dataset_dir, template.uses_filewords))


def check_run_folder(config: TrainConfig, run_dir: str | Path, resume: bool) -> int:
    """The step a run in ``run_dir`` starts from (0: a new run), or UserError: a new run over an existing one, a
    resume with nothing to resume or with other settings. Reads only, so front ends call it before loading a model."""
    folder = RunFolder(Path(run_dir), config.name)
    existing = folder.config.is_file() or folder.snapshot_steps()
    if not resume:
        if existing:
            raise UserError(f"{folder.root} already holds a run of {config.name}: use --resume to continue it, or "
                            f"another name or output folder")
        return 0
    latest = folder.latest_state()
    if latest is None:
        raise UserError(f"nothing to resume in {folder.root}: no saved training state")
    saved = TrainConfig.from_json(fileio.read_json(folder.config))
    if saved.resume_key() != config.resume_key():
        raise UserError(f"cannot resume: the run was started with other training settings ({saved.describe()})")
    return latest[0]


def train(config: TrainConfig, backend: TrainingBackend, dataset_dir: str | Path, run_dir: str | Path,
          resume: bool = False, callbacks: TrainCallbacks = TrainCallbacks(),
          template_dirs: tuple[Path, ...] = ()) -> TrainResult:
    """Train ``config.name`` on the dataset with ``backend``'s model; snapshots go to ``run_dir``."""
    data = prepare_data(config, dataset_dir, template_dirs)
    return _Run(config, backend, data, RunFolder(Path(run_dir), config.name), callbacks).execute(resume)


class _Run:
    def __init__(self, config: TrainConfig, backend: TrainingBackend, data: TrainingData, folder: RunFolder,
                 callbacks: TrainCallbacks):
        self.config = config
        self.backend = backend
        self.folder = folder
        self.callbacks = callbacks
        self.template = data.template
        self.images = data.images
        self.schedule = LearningRateSchedule.parse(config.learning_rate)
        self.total_steps = config.effective_steps
        self.size = config.size or backend.native_size
        self.noise = backend.noise_schedule()
        self.batch = min(config.batch_size, len(self.images))
        self.torch_rng = torch.Generator().manual_seed(config.seed)
        self.text_rng = random.Random(config.seed)
        self.order: list[int] = []
        self.snapshots: list[Path] = []

    # --- set-up -------------------------------------------------------------------------------------------------
    def execute(self, resume: bool) -> TrainResult:
        start_step = self._prepare_folder(resume)
        self._status("encoding training images")
        self.cache = LatentCache(self.backend, self.images, self.size, self.config.flip, self.torch_rng,
                                 progress=lambda done, total: self._status(f"encoding training images {done}/{total}"))
        self.embedding = TrainableEmbedding(
            self.backend.init_vectors(self.config.init_text, self.config.vectors),
            self.backend.text_encoders(), self.config.norm_control, self.config.norm_cap_factor, self.torch_rng)
        self.optimizer = torch.optim.AdamW(list(self.embedding.parameters.values()), lr=self.schedule.rate_at(1),
                                           betas=self.config.adam_betas, eps=self.config.adam_eps,
                                           weight_decay=self.config.weight_decay)
        self.scaler = _grad_scaler(self.backend)
        if start_step:
            self._restore(start_step)
        self.eval_batch = self._evaluation_batch()
        log = LossLog(self.folder.loss_log, keep_until_step=start_step if resume else None)
        try:
            return self._loop(start_step, log)
        finally:
            log.close()

    def _prepare_folder(self, resume: bool) -> int:
        """Check the run folder, record the config, and return the step to continue from (0 for a new run)."""
        start_step = check_run_folder(self.config, self.folder.root, resume)
        fileio.write_json(self.folder.config, self.config.to_json())  # on resume: a longer --steps is allowed
        return start_step

    def _restore(self, step: int) -> None:
        state = load_state(self.folder.state(step))
        with torch.no_grad():
            for key, param in self.embedding.parameters.items():
                param.copy_(state["parameters"][key].to(param.device))
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.torch_rng.set_state(state["torch_rng"])
        self.text_rng.setstate(_to_random_state(state["text_rng"]))
        self.order = list(state["order"])

    # --- the loop -----------------------------------------------------------------------------------------------
    def _loop(self, step: int, log: LossLog) -> TrainResult:
        started = time.perf_counter()
        if step == 0:
            # Step 0: the untrained embedding's fixed loss, the baseline the plot and the tests compare against.
            baseline = self._fixed_loss()
            log.append(0, baseline, 0.0, self.embedding.mean_norm(), baseline, 0.0)
            if self.callbacks.on_step:
                self.callbacks.on_step(StepReport(step=0, total_steps=self.total_steps, loss=baseline,
                                                  learning_rate=0.0, norm=self.embedding.mean_norm(),
                                                  fixed_loss=baseline))
        last_good = self.folder.snapshot(step, self._suffixes()[0]) if step else None
        saved_step = step
        stopped = None
        while step < self.total_steps:
            if self._should_stop():
                stopped = "interrupted"
                break
            learning_rate = self.schedule.rate_at(step + 1)
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate
            loss = self._optimizer_step()
            if not math.isfinite(loss) or not self.embedding.is_finite():
                stopped = (f"the loss became {loss} at step {step + 1}: training stopped; the last good snapshot "
                           f"is {last_good.name if last_good else 'none (no snapshot was saved yet)'}")
                break
            step += 1
            report = StepReport(step=step, total_steps=self.total_steps, loss=loss, learning_rate=learning_rate,
                                norm=self.embedding.mean_norm())
            if step % self.config.save_every == 0 or step == self.total_steps:
                report.fixed_loss = self._fixed_loss()
                report.snapshot = last_good = self._snapshot(step)
                saved_step = step
            if self.config.preview_every and step % self.config.preview_every == 0:
                report.preview, report.preview_image = self._preview(step)
            log.append(step, loss, learning_rate, report.norm, report.fixed_loss, time.perf_counter() - started)
            if self.callbacks.on_step:
                self.callbacks.on_step(report)
        if stopped == "interrupted" and step > saved_step:
            last_good = self._snapshot(step)  # keep the work done so far, resumable
        return TrainResult(run_dir=self.folder.root, steps_done=step, finished=step >= self.total_steps,
                           stopped_reason=stopped, snapshots=self.snapshots, last_good_snapshot=last_good)

    def _optimizer_step(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(self.config.grad_accum):
            loss = self._micro_batch_loss() / self.config.grad_accum
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            total += float(loss.detach())
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        params = list(self.embedding.parameters.values())
        if self.config.clip_mode == "norm":
            torch.nn.utils.clip_grad_norm_(params, self.config.clip_value)
        elif self.config.clip_mode == "value":
            torch.nn.utils.clip_grad_value_(params, self.config.clip_value)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif math.isfinite(total):
            self.optimizer.step()
        self.embedding.after_step()
        return total

    def _micro_batch_loss(self) -> torch.Tensor:
        indices = self._next_indices(self.batch)
        flipped = [bool(torch.rand((), generator=self.torch_rng) < 0.5) if self.config.flip else False
                   for _ in indices]
        latents = self.cache.sample(indices, flipped, self.config.latent_sampling, self.torch_rng)
        prompts = [self.template.prompt(self.config.name, self.images[i].caption, self.text_rng,
                                        shuffle=self.config.shuffle_tags, dropout=self.config.tag_dropout)
                   for i in indices]
        noise = torch.randn(latents.shape, generator=self.torch_rng).to(latents.device)
        timesteps = torch.randint(0, len(self.noise.alphas_cumprod), (len(indices),), generator=self.torch_rng)
        return self._loss(latents, noise, timesteps.to(latents.device), prompts)

    def _loss(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, prompts: list[str]
              ) -> torch.Tensor:
        noisy = add_noise(latents, noise, timesteps, self.noise)
        target = prediction_target(latents, noise, timesteps, self.noise)
        with _autocast(self.backend):
            conditioning = self.backend.encode_prompts(prompts, self.config.name, self.embedding.vectors())
            prediction = self.backend.predict(noisy.to(self.backend.dtype), timesteps, conditioning)
        return torch.nn.functional.mse_loss(prediction.float(), target.float())

    def _next_indices(self, count: int) -> list[int]:
        """The next ``count`` images of an endless sequence of seeded shuffles of the dataset (epochs)."""
        picked = []
        while len(picked) < count:
            if not self.order:
                self.order = torch.randperm(len(self.images), generator=self.torch_rng).tolist()
            picked.append(self.order.pop(0))
        return picked

    # --- evaluation, snapshots, previews -----------------------------------------------------------------------
    def _evaluation_batch(self):
        """Fixed images, prompts, noise and timesteps: the loss on them moves only because the embedding does
        (the per-step loss is dominated by the random timestep), so it shows whether training is learning."""
        generator = torch.Generator().manual_seed(self.config.seed + 1)
        count = min(EVAL_IMAGES, len(self.images))
        indices = list(range(count))
        latents = self.cache.sample(indices, [False] * count, "deterministic", generator)
        noise = torch.randn(latents.shape, generator=generator).to(latents.device)
        steps = len(self.noise.alphas_cumprod)
        timesteps = torch.tensor([int(steps * EVAL_TIMESTEP_FRACTIONS[i % len(EVAL_TIMESTEP_FRACTIONS)])
                                  for i in indices], device=latents.device)
        prompts = [self.template.fixed_prompt(self.config.name, self.images[i].caption) for i in indices]
        return latents, noise, timesteps, prompts

    @torch.no_grad()
    def _fixed_loss(self) -> float:
        return float(self._loss(*self.eval_batch))

    def _snapshot(self, step: int) -> Path:
        vectors = self.embedding.detached()
        metadata = {"learning_rate": self.config.learning_rate, "norm_control": self.config.norm_control,
                    "images": str(len(self.images)), "template": self.config.template}
        paths = [self.folder.snapshot(step, suffix) for suffix in self._suffixes()]
        for path in paths:
            save_embedding(path, vectors, name=self.config.name, step=step, model=self.backend.model_info(),
                           metadata=metadata)
        save_state(self.folder.state(step), {
            "step": step,
            "parameters": {key: value.detach().cpu() for key, value in self.embedding.parameters.items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else {},
            "torch_rng": self.torch_rng.get_state(),
            "text_rng": _from_random_state(self.text_rng.getstate()),
            "order": list(self.order),
        })
        self.folder.prune_states()
        self.snapshots.extend(paths)
        return paths[0]

    def _preview(self, step: int) -> tuple[Path | None, Image.Image | None]:
        request = PreviewRequest(
            prompt=self.config.preview_prompt.replace("[name]", self.config.name),
            negative_prompt=self.config.preview_negative_prompt, seed=self.config.preview_seed,
            steps=self.config.preview_steps, cfg_scale=self.config.preview_cfg_scale,
            width=self.size, height=self.size)
        with torch.no_grad():
            image = self.backend.render_preview(request, self.config.name, self.embedding.detached())
        if image is None:
            return None, None
        path = self.folder.preview(step)
        with fileio.atomic_path(path) as tmp:
            image.save(tmp, format="PNG")
        return path, image

    def _suffixes(self) -> list[str]:
        return {"safetensors": [".safetensors"], "pt": [".pt"], "both": [".safetensors", ".pt"]}[
            self.config.output_format]

    def _should_stop(self) -> bool:
        return bool(self.callbacks.should_stop and self.callbacks.should_stop())

    def _status(self, text: str) -> None:
        if self.callbacks.on_status:
            self.callbacks.on_status(text)


def _grad_scaler(backend: TrainingBackend):
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none."""
    if backend.device.type == "cuda" and backend.dtype == torch.float16:
        return torch.amp.GradScaler("cuda")
    return None


def _autocast(backend: TrainingBackend):
    if backend.device.type == "cuda" and backend.dtype in (torch.float16, torch.bfloat16):
        return torch.autocast("cuda", dtype=backend.dtype)
    return contextlib.nullcontext()


def _from_random_state(state: tuple) -> list:
    """``random.getstate()`` as lists and ints, which ``torch.load(weights_only=True)`` accepts."""
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _to_random_state(saved: list) -> tuple:
    version, internal, gauss = saved
    return version, tuple(internal), gauss
