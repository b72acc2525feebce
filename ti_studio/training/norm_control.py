"""The trainable embedding, and how its size is kept in check.

Plain Textual Inversion lets the vectors' norm grow far beyond a real word's (research: learned norms > 20 against
~0.4 for vocabulary tokens); such a token drowns the rest of the prompt ("the embedding ignores my prompt"). Adam
moves every coordinate by about the learning rate per step whatever the gradient's size, so the popular schedule
that starts at 0.05 inflates the norm within a few steps. Three modes:

- ``off``: plain AdamW on the vectors, as the host's trainer does.
- ``cap``: plain AdamW, then every row longer than ``cap_factor`` x the vocabulary's mean norm is scaled back to
  that length after each step (a projection: the direction the optimizer chose is kept).
- ``directional``: the row's norm is fixed at the vocabulary's mean norm and only its direction is learned
  (Directional TI, Kim et al. 2025): the optimizer updates an unconstrained tensor whose normalised rows, times
  the fixed norm, are the vectors; it is renormalised after each step so a step is an angle, not a length.
"""

from __future__ import annotations

import torch

from .backend import TextEncoderInfo, Vectors

NORM_MODES = ("off", "cap", "directional")


class TrainableEmbedding:
    """The tensors the optimizer sees, and the vectors the backend splices into prompts."""

    def __init__(self, initial: Vectors, encoders: list[TextEncoderInfo], mode: str, cap_factor: float,
                 generator: torch.Generator):
        if mode not in NORM_MODES:
            raise ValueError(f"norm control must be one of {NORM_MODES}, got {mode!r}")
        self.mode = mode
        self.limits = {info.key: info.vocabulary_norm * cap_factor for info in encoders}
        self.target_norms = {info.key: info.vocabulary_norm for info in encoders}
        self.parameters: Vectors = {}
        for key, vectors in initial.items():
            start = vectors.detach().float().clone()
            if mode == "directional":
                start = _unit_rows(_nonzero_rows(start, generator))
            self.parameters[key] = start.requires_grad_(True)
        if mode == "cap":
            self.after_step()

    def vectors(self) -> Vectors:
        """The embedding as the model sees it; differentiable w.r.t. :attr:`parameters`."""
        if self.mode != "directional":
            return dict(self.parameters)
        return {key: _unit_rows(param) * self.target_norms[key] for key, param in self.parameters.items()}

    def detached(self) -> Vectors:
        """A copy for saving: plain float32 CPU tensors."""
        with torch.no_grad():
            return {key: value.detach().float().cpu().clone() for key, value in self.vectors().items()}

    @torch.no_grad()
    def after_step(self) -> None:
        """Apply the norm constraint once the optimizer has moved the parameters."""
        for key, param in self.parameters.items():
            if self.mode == "cap":
                norms = param.norm(dim=1, keepdim=True)
                param.mul_(torch.clamp(self.limits[key] / norms.clamp_min(1e-12), max=1.0))
            elif self.mode == "directional":
                param.copy_(_unit_rows(param))

    def mean_norm(self) -> float:
        """Mean row norm over all encoders: the number logged beside the loss."""
        with torch.no_grad():
            rows = torch.cat([value.norm(dim=1) for value in self.vectors().values()])
        return float(rows.mean())

    def is_finite(self) -> bool:
        return all(bool(torch.isfinite(param).all()) for param in self.parameters.values())


def _unit_rows(values: torch.Tensor) -> torch.Tensor:
    return values / values.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _nonzero_rows(values: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A zero row (blank init text) has no direction: give it a random one, drawn from the run's seed."""
    zero = values.norm(dim=1) == 0
    if zero.any():
        values = values.clone()
        values[zero] = torch.randn((int(zero.sum()), values.shape[1]), generator=generator).to(values.device)
    return values
