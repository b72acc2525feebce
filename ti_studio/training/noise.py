"""The diffusion training objective: noise clean latents to a timestep and say what the UNet should predict."""

from __future__ import annotations

import torch

from .backend import NoiseSchedule


def add_noise(latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, schedule: NoiseSchedule
              ) -> torch.Tensor:
    """``sqrt(a_t) * x0 + sqrt(1 - a_t) * noise``, the forward process every SD model was trained with."""
    alpha = _per_sample(schedule.alphas_cumprod[timesteps], latents)
    return alpha.sqrt() * latents + (1 - alpha).sqrt() * noise


def prediction_target(latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, schedule: NoiseSchedule
                      ) -> torch.Tensor:
    """The noise itself for epsilon models (SD1, SD2-base); the velocity for v-prediction models (SD2-768)."""
    if schedule.prediction_type == "epsilon":
        return noise
    if schedule.prediction_type == "v_prediction":
        alpha = _per_sample(schedule.alphas_cumprod[timesteps], latents)
        return alpha.sqrt() * noise - (1 - alpha).sqrt() * latents
    raise ValueError(f"unsupported prediction type {schedule.prediction_type!r}")


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))
