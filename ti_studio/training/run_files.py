"""A training run's folder: its config, loss log, embedding snapshots, previews and the state to resume from.

    <run>/config.json                     the TrainConfig, for resume and for the compare stage
    <run>/loss.csv                        one row per optimizer step: loss, learning rate, embedding norm, ...
    <run>/embeddings/<name>-<step>.safetensors (and/or .pt)
    <run>/previews/<name>-<step>.png
    <run>/state/<name>-<step>.state.pt    optimizer, RNG and data-order state: resume continues exactly

Snapshot files are named by the number of optimizer steps done (the host names ``<name>-500.pt`` a file whose
``step`` field says 499; ours agree). The loss log is appended line by line; after a kill its last line may be cut
short, which the reader ignores and a resume rewrites.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import fileio
from ..errors import UserError

LOSS_COLUMNS = ("step", "loss", "learning_rate", "norm", "fixed_loss", "seconds")
#: State files kept: the newest is enough to resume; one more survives a kill during the newest one's write.
STATES_KEPT = 2


@dataclass(frozen=True)
class RunFolder:
    root: Path
    name: str  # the embedding's name

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def loss_log(self) -> Path:
        return self.root / "loss.csv"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def previews(self) -> Path:
        return self.root / "previews"

    @property
    def states(self) -> Path:
        return self.root / "state"

    def snapshot(self, step: int, suffix: str) -> Path:
        return self.embeddings / f"{self.name}-{step}{suffix}"

    def preview(self, step: int) -> Path:
        return self.previews / f"{self.name}-{step}.png"

    def state(self, step: int) -> Path:
        return self.states / f"{self.name}-{step}.state.pt"

    def snapshot_steps(self) -> list[int]:
        """Steps that have an embedding snapshot, ascending."""
        return sorted({step for step, _ in self._numbered(self.embeddings, r"(\.safetensors|\.pt)")})

    def latest_state(self) -> tuple[int, Path] | None:
        found = self._numbered(self.states, r"\.state\.pt")
        return max(found) if found else None

    def prune_states(self) -> None:
        for _, path in sorted(self._numbered(self.states, r"\.state\.pt"))[:-STATES_KEPT]:
            path.unlink(missing_ok=True)

    def _numbered(self, folder: Path, suffix: str) -> list[tuple[int, Path]]:
        pattern = re.compile(re.escape(self.name) + r"-(\d+)" + suffix + "$")
        if not folder.is_dir():
            return []
        return [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name))]


def save_state(path: Path, state: dict) -> None:
    """Training state (tensors, numbers, lists) written atomically, loadable with ``weights_only=True``."""
    with fileio.atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable state means "cannot resume from this file"
        raise UserError(f"cannot resume: {path.name} is unreadable ({type(exc).__name__})") from None


class LossLog:
    """``loss.csv``: appended and flushed every step, so a crash loses at most the step being written."""

    def __init__(self, path: Path, keep_until_step: int | None):
        """Open for appending; rows after ``keep_until_step`` (a resumed run redoes them) are dropped first.
        ``None`` starts a new log."""
        rows = read_loss_log(path) if keep_until_step is not None else []
        kept = [row for row in rows if row["step"] <= (keep_until_step or 0)]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(LOSS_COLUMNS)
        for row in kept:
            writer.writerow([_format(row[column]) for column in LOSS_COLUMNS])
        fileio.write_text(path, buffer.getvalue())
        self._handle = open(path, "a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle, lineterminator="\n")

    def append(self, step: int, loss: float, learning_rate: float, norm: float, fixed_loss: float | None,
               seconds: float) -> None:
        values = (step, loss, learning_rate, norm, fixed_loss, seconds)
        self._writer.writerow([_format(value) for value in values])
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def read_loss_log(path: Path) -> list[dict]:
    """Rows of ``loss.csv`` as dicts of numbers (``fixed_loss`` None where not measured); a cut-short last line
    and rows that do not parse are skipped."""
    if not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for record in csv.DictReader(handle):
            try:
                row = {column: _parse(record.get(column)) for column in LOSS_COLUMNS}
            except ValueError:
                continue
            if row["step"] is None or row["loss"] is None or row["seconds"] is None:
                continue
            row["step"] = int(row["step"])
            rows.append(row)
    return rows


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def _parse(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    return float(text)
