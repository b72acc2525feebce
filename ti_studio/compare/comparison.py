"""One comparison of a run: the chosen snapshots, the txt2img X/Y/Z preset over them, and the optional export.

The CLI's ``compare`` and the HTTP ``/compare`` route both call :func:`compare_run`, so they choose the same
snapshots, give them the same names and answer the same JSON summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .snapshots import Snapshot, choose, export, load_run
from .xyz import DEFAULT_Y_VALUES, XyzPreset

#: The preset's image size when the run trained at the model's native size, which the run folder does not record.
FALLBACK_SIZE = 512


@dataclass(frozen=True)
class Comparison:
    snapshots: list[Snapshot]
    preset: XyzPreset  # the X/Y/Z plot over the snapshots; the standalone grid draws the same (compare.grid)
    exported: list[Path] = field(default_factory=list)

    @property
    def infotext(self) -> str:
        """The preset as txt2img reads it: paste into the prompt box, then "read generation parameters"."""
        return self.preset.infotext()

    def to_json(self) -> dict:
        return {"infotext": self.infotext, "exported": [str(path) for path in self.exported],
                "snapshots": [{"name": s.compare_name, "step": s.step, "file": str(s.path), "loss": s.loss,
                               "fixed_loss": s.fixed_loss, "norm": s.norm} for s in self.snapshots]}


def compare_run(run_dir: str | Path, steps: list[int] | None = None,
                y_values: Iterable[str] = DEFAULT_Y_VALUES, prompt_template: str = XyzPreset.prompt_template,
                negative_prompt: str = "", seed: int = XyzPreset.seed, export_to: str | Path | None = None
                ) -> Comparison:
    """The comparison of ``run_dir``'s snapshots at ``steps`` (default: spread over the run, plus the best), against
    ``y_values`` (blank values are dropped). With ``export_to``, the chosen snapshots are copied there under their
    comparison names, which is what the preset's prompts refer to. Bad input raises :class:`UserError` before any
    file is copied."""
    config, snapshots = load_run(run_dir)
    chosen = choose(snapshots, steps)
    size = config.size or FALLBACK_SIZE
    preset = XyzPreset(names=[s.compare_name for s in chosen], y_values=[v.strip() for v in y_values if v.strip()],
                       prompt_template=prompt_template, negative_prompt=negative_prompt, seed=seed,
                       width=size, height=size)
    exported = export(chosen, export_to) if export_to else []
    return Comparison(snapshots=chosen, preset=preset, exported=exported)
