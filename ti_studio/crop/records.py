"""Crop parameters kept beside the crops, so any crop can be adjusted and re-exported without detecting again.

One JSON file per crop in ``<dataset>/.ti_studio/crops/<crop file>.json``: one file each (rather than one big
file) so re-cropping or adjusting one image rewrites only its own record, atomically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import fileio
from ..errors import UserError
from .framing import CropBox

RECORD_VERSION = 1


@dataclass
class CropRecord:
    """Everything needed to redo one crop from its original photo."""

    output: str  # the crop's file name inside the dataset folder
    source: str  # absolute path of the original photo (read, never written)
    source_size: tuple[int, int]  # upright, full resolution
    source_bytes: int  # with source_mtime_ns: tells whether the photo changed since it was cropped
    source_mtime_ns: int
    box: CropBox
    size: int  # output side in pixels
    detector: str | None
    faces: list[dict] = field(default_factory=list)  # every detection, in photo pixels (for the review UI)
    face_index: int | None = None  # which of ``faces`` this crop frames; None: no face (centre crop)
    framing: dict = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # machine-readable: no_face, several_faces, upscaled, padded...
    warnings: list[str] = field(default_factory=list)  # the same, as sentences for people
    adjusted: bool = False  # set by a manual adjustment; a new automatic run leaves such crops alone

    def to_json(self) -> dict:
        data = asdict(self)
        data["box"] = self.box.to_json()
        data["source_size"] = list(self.source_size)
        data["version"] = RECORD_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict) -> "CropRecord":
        values = {key: value for key, value in data.items() if key != "version"}
        values["box"] = CropBox.from_json(data["box"])
        values["source_size"] = tuple(data["source_size"])
        return cls(**values)


def records_dir(dataset_dir: str | Path) -> Path:
    return Path(dataset_dir) / ".ti_studio" / "crops"


def record_path(dataset_dir: str | Path, output: str) -> Path:
    return records_dir(dataset_dir) / f"{output}.json"


def save_record(dataset_dir: str | Path, record: CropRecord) -> None:
    fileio.write_json(record_path(dataset_dir, record.output), record.to_json())


def load_record(dataset_dir: str | Path, output: str) -> CropRecord:
    path = record_path(dataset_dir, output)
    try:
        return CropRecord.from_json(fileio.read_json(path))
    except FileNotFoundError:
        raise UserError(f"{output}: no crop parameters saved (was it made by TI Studio's crop?)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{output}: crop parameters are damaged ({exc}); crop the photo again") from None


def load_existing(dataset_dir: str | Path, output: str) -> CropRecord | None:
    """The record for ``output`` if there is a readable one, else None (used to protect manual adjustments)."""
    try:
        return load_record(dataset_dir, output)
    except UserError:
        return None


def list_records(dataset_dir: str | Path) -> list[CropRecord]:
    """Every readable record, in file-name order (damaged ones are skipped; load_record explains them)."""
    folder = records_dir(dataset_dir)
    if not folder.is_dir():
        return []
    found = (load_existing(dataset_dir, path.name[: -len(".json")]) for path in sorted(folder.glob("*.json")))
    return [record for record in found if record is not None]
