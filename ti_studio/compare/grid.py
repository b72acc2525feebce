"""The comparison grid drawn without WebUI: what its X/Y/Z plot shows for the preset, for the standalone app and CLI.

Columns are the snapshots (X), rows the prompt variations (Y). Every cell is one fixed-seed txt2img image through
:meth:`TrainingBackend.render_preview`, with the snapshot's vectors spliced in wherever its comparison name stands,
so the cells differ only by the snapshot and the Y value, as in X/Y/Z with a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from PIL import Image, ImageDraw, ImageFont

from ..errors import UserError
from ..training.backend import PreviewRequest, TrainingBackend
from ..training.embedding_file import load_embedding
from .comparison import Comparison
from .snapshots import Snapshot
from .xyz import XyzPreset

#: Space around the labels, in pixels.
PAD = 6


@dataclass(frozen=True)
class GridRequest:
    """What to draw: ``snapshots`` as the columns, and what the txt2img ``preset`` describes (the rows are its Y
    values, and prompts, seed, steps, CFG scale and size are its own), so the grid is the one WebUI would draw."""

    snapshots: list[Snapshot]  # the columns, left to right
    preset: XyzPreset

    @classmethod
    def for_comparison(cls, comparison: Comparison) -> GridRequest:
        return cls(snapshots=list(comparison.snapshots), preset=comparison.preset)

    @property
    def y_values(self) -> list[str]:
        return list(self.preset.y_values)

    @property
    def width(self) -> int:
        return self.preset.width

    @property
    def height(self) -> int:
        return self.preset.height

    @property
    def rows(self) -> list[str]:
        return self.y_values or [""]

    def prompt(self, snapshot: Snapshot, y_value: str) -> str:
        return self.preset.cell_prompt(snapshot.compare_name, y_value)


def render_grid(backend: TrainingBackend, request: GridRequest,
                progress: Callable[[int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> Image.Image:
    """Render every cell and compose the labelled grid. ``progress(done, total)`` follows each finished cell;
    when ``should_stop()`` turns true the cells not rendered yet stay blank and the partial grid is returned."""
    if not request.snapshots:
        raise UserError("choose at least one snapshot for the grid")
    preset = request.preset
    total = len(request.snapshots) * len(request.rows)
    cells: dict[tuple[int, int], Image.Image] = {}
    done = 0
    for column, snapshot in enumerate(request.snapshots):  # one embedding file read per column
        vectors = {key: tensor.to(backend.device) for key, tensor in load_embedding(snapshot.path).vectors.items()}
        for row, y_value in enumerate(request.rows):
            if should_stop is not None and should_stop():
                return compose(request, cells)
            preview = PreviewRequest(prompt=request.prompt(snapshot, y_value), negative_prompt=preset.negative_prompt,
                                     seed=preset.seed, steps=preset.steps, cfg_scale=preset.cfg_scale,
                                     width=preset.width, height=preset.height)
            image = backend.render_preview(preview, snapshot.compare_name, vectors)
            if image is None:
                raise UserError("this model cannot render images")
            cells[row, column] = image.convert("RGB")
            done += 1
            if progress is not None:
                progress(done, total)
    return compose(request, cells)


def compose(request: GridRequest, cells: dict[tuple[int, int], Image.Image]) -> Image.Image:
    """The grid on white: snapshot names above the columns, Y values left of the rows (none without Y values);
    ``cells`` maps ``(row, column)`` to an image, missing cells stay white."""
    font = ImageFont.load_default()
    names = [snapshot.compare_name for snapshot in request.snapshots]
    top, left = label_margins(request, font)
    width, height = request.width, request.height
    grid = Image.new("RGB", (left + len(names) * width, top + len(request.rows) * height), "white")
    draw = ImageDraw.Draw(grid)
    for column, name in enumerate(names):
        text = _fit(name, font, width - 2)
        text_width, text_height = _size(text, font)
        draw.text((left + column * width + (width - text_width) // 2, (top - text_height) // 2), text, fill="black",
                  font=font)
    for row, y_value in enumerate(request.y_values):
        _, text_height = _size(y_value, font)
        draw.text((PAD, top + row * height + (height - text_height) // 2), y_value, fill="black", font=font)
    for (row, column), image in cells.items():
        grid.paste(image.resize((width, height)) if image.size != (width, height) else image,
                   (left + column * width, top + row * height))
    return grid


def label_margins(request: GridRequest, font=None) -> tuple[int, int]:
    """(top, left): the label band's height above the cells and its width left of them."""
    font = font or ImageFont.load_default()
    line_height = max(_size("Ag", font)[1], 1)
    left = max((_size(value, font)[0] for value in request.y_values), default=0)
    return line_height + 2 * PAD, (left + 2 * PAD) if request.y_values else 0


def _size(text: str, font) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text or " ")
    return right - left, bottom - top


def _fit(text: str, font, max_width: int) -> str:
    """``text``, cut with "..." where it is wider than a cell."""
    if _size(text, font)[0] <= max_width:
        return text
    while len(text) > 1 and _size(text + "...", font)[0] > max_width:
        text = text[:-1]
    return text + "..."
