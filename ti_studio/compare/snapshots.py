"""A run's snapshots with what is known about each, and the names they are compared under.

The host names an embedding after its file, and X/Y/Z "Prompt S/R" is a plain substring replacement: with the
snapshot names ``face-500`` and ``face-5000``, replacing ``face-500`` also rewrites ``face-5000`` into
``face-50000``. So for comparison every snapshot gets a name padded to one width (``face-0500``, ``face-5000``):
strings of equal length can only contain each other when they are equal.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..training.config import TrainConfig
from ..training.run_files import RunFolder, read_loss_log

#: Snapshots chosen when the user names none: evenly spread over the run, plus the best by fixed loss.
DEFAULT_COUNT = 5


@dataclass(frozen=True)
class Snapshot:
    step: int
    path: Path
    loss: float | None  # the training loss logged at that step
    fixed_loss: float | None  # the deterministic evaluation loss (lower = closer to the training images)
    norm: float | None
    compare_name: str  # the name it is registered under for comparison


def load_run(run_dir: str | Path) -> tuple[TrainConfig, list[Snapshot]]:
    """The run's config and its snapshots, oldest first; UserError when the folder is not a run."""
    root = Path(run_dir)
    config_path = RunFolder(root, "").config
    if not config_path.is_file():
        raise UserError(f"{root} is not a training run (no config.json)")
    config = TrainConfig.load(config_path)
    folder = RunFolder(root, config.name)
    steps = folder.snapshot_steps()
    if not steps:
        raise UserError(f"no embedding snapshots in {folder.embeddings}")
    log = {row["step"]: row for row in read_loss_log(folder.loss_log)}
    width = len(str(max(steps)))
    snapshots = []
    for step in steps:
        path = next(p for p in (folder.snapshot(step, ".safetensors"), folder.snapshot(step, ".pt")) if p.is_file())
        row = log.get(step, {})
        snapshots.append(Snapshot(step=step, path=path, loss=row.get("loss"), fixed_loss=row.get("fixed_loss"),
                                  norm=row.get("norm"), compare_name=f"{config.name}-{step:0{width}d}"))
    return config, snapshots


def choose(snapshots: list[Snapshot], steps: list[int] | None = None, count: int = DEFAULT_COUNT) -> list[Snapshot]:
    """The snapshots at ``steps``, or by default ``count`` spread evenly (always the last) plus the one with the
    lowest fixed loss."""
    by_step = {snapshot.step: snapshot for snapshot in snapshots}
    if steps:
        missing = [step for step in steps if step not in by_step]
        if missing:
            raise UserError(f"no snapshot at step(s) {', '.join(map(str, missing))}; "
                            f"available: {', '.join(str(s.step) for s in snapshots)}")
        return [by_step[step] for step in sorted(set(steps))]
    if len(snapshots) <= count:
        return list(snapshots)
    picked = {snapshots[round(i * (len(snapshots) - 1) / (count - 1))].step for i in range(count)}
    lowest = best(snapshots)
    if lowest is not None:
        picked.add(lowest.step)
    return [by_step[step] for step in sorted(picked)]


def best(snapshots: list[Snapshot]) -> Snapshot | None:
    """The snapshot with the lowest fixed-noise loss (the closest to the training images); None if none has one."""
    measured = [s for s in snapshots if s.fixed_loss is not None]
    return min(measured, key=lambda s: s.fixed_loss) if measured else None


def export(snapshots: list[Snapshot], folder: str | Path) -> list[Path]:
    """Copy the snapshots into ``folder`` under their comparison names (the host loads an embedding by file stem).
    A file with that name and other content is refused rather than overwritten."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for snapshot in snapshots:
        destination = target / f"{snapshot.compare_name}{snapshot.path.suffix}"
        if destination.exists() and destination.read_bytes() != snapshot.path.read_bytes():
            raise UserError(f"{destination} already exists with other content; remove it or choose another folder")
        shutil.copyfile(snapshot.path, destination)
        written.append(destination)
    return written
