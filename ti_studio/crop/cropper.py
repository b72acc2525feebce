"""Batch cropping: a folder of photos in, one square crop per photo (or per face) out, with parameters kept.

Per photo: decode a reduced copy (libjpeg scales 12 MP JPEGs down 4-8x while decoding), detect faces on it, frame
the chosen face, then cut the crop from a decode just large enough for the output size (often the same reduced
copy). Photos run in a small thread pool: Pillow's decoders and resamplers and onnxruntime all release the GIL,
so two threads use both cores without the cost of processes.

The photo folder is only read. Crops, and their records in ``.ti_studio/crops/``, go to the output folder, and a
crop the user adjusted by hand is never overwritten by a new automatic run.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from .. import fileio
from ..errors import UserError
from ..images import ImageError, Photo, list_photos, open_photo
from . import records
from .detectors import create_detector
from .faces import Face, FaceDetector
from .framing import CropBox, FramingConfig, centre_box, frame_face
from .records import CropRecord
from .render import render

#: Faces at least a third of the largest face's height count as "another person" in the photo (a group shot at
#: different distances); smaller ones are background passers-by and are neither cropped nor warned about.
OTHER_FACE_SHARE = 1 / 3


@dataclass(frozen=True)
class CropConfig:
    """Choices for one crop run; the defaults are the tutorial's (512 px head-and-shoulders of the largest face)."""

    size: int = 512
    detector: str = "auto"  # auto | yunet | mtcnn
    framing: FramingConfig = field(default_factory=FramingConfig)
    faces: str = "largest"  # largest | all (one crop per face)
    no_face: str = "skip"  # skip | centre (largest centred square, flagged for review)
    recursive: bool = False
    workers: int = 2
    detect_long_side: int = 640  # detectors are trained on faces of ~10-300 px: a 640-800 px copy suits them
    device: str = "auto"

    def __post_init__(self) -> None:
        check_size(self.size)
        if self.faces not in ("largest", "all"):
            raise UserError(f"--faces must be 'largest' or 'all', got {self.faces!r}")
        if self.no_face not in ("skip", "centre"):
            raise UserError(f"--no-face must be 'skip' or 'centre', got {self.no_face!r}")
        if self.workers < 1:
            raise UserError("workers must be at least 1")


def check_size(size: int) -> None:
    """Crop sides are multiples of 8: SD's VAE works on 8x8 pixel blocks."""
    if size % 8 or not 64 <= size <= 4096:
        raise UserError(f"crop size must be a multiple of 8 between 64 and 4096, got {size}")


@dataclass
class PhotoResult:
    """What happened to one photo: the crops written, or why none was."""

    source: str
    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class CropSummary:
    detector: str
    notice: str | None
    results: list[PhotoResult]
    stopped: bool = False

    @property
    def written(self) -> int:
        return sum(len(result.outputs) for result in self.results)

    def to_json(self) -> dict:
        return {
            "detector": self.detector,
            "notice": self.notice,
            "written": self.written,
            "photos": len(self.results),
            "stopped": self.stopped,
            "skipped": [{"file": r.source, "reason": r.skipped} for r in self.results if r.skipped],
            "warnings": [{"file": r.source, "warning": w} for r in self.results for w in r.warnings],
            "outputs": [name for r in self.results for name in r.outputs],
        }


Progress = Callable[[int, int, str], None]


def crop_folder(
    source_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: CropConfig = CropConfig(),
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    detector: FaceDetector | None = None,
) -> CropSummary:
    """Crop every photo in ``source_dir`` into ``output_dir``; bad photos are reported and skipped, never fatal."""
    source_dir, output_dir = Path(source_dir), Path(output_dir)
    photos = list_photos(source_dir, recursive=config.recursive)
    if not photos:
        raise UserError(f"no photos in {source_dir} (looked for JPEG, PNG, WebP, BMP, TIFF, GIF)")
    _refuse_overwriting_originals(source_dir, output_dir, config.recursive)
    notice = None
    if detector is None:
        detector, notice = create_detector(config.detector, device=config.device, threads=1)
    names = output_bases(photos, source_dir)
    job = _CropJob(config, detector, output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results: list[PhotoResult] = []
    stopped = False
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        pending = [(path, pool.submit(_guarded, job, path, names[path], should_stop)) for path in photos]
        for done, (path, future) in enumerate(pending, start=1):
            result = future.result()
            if result is None:
                stopped = True
                continue
            results.append(result)
            if progress:
                progress(done, len(photos), path.name)
    return CropSummary(detector=detector.name, notice=notice, results=results, stopped=stopped)


def recrop(dataset_dir: str | os.PathLike, output: str, box: CropBox | None = None, size: int | None = None
           ) -> CropRecord:
    """Re-export one crop from its saved parameters: a new box (manual adjustment) and/or a new size.

    No detection runs. The record is updated and marked ``adjusted`` when the box changed, so a later automatic
    crop run keeps the user's choice.
    """
    record = records.load_record(dataset_dir, output)
    source = Path(record.source)
    if not source.is_file():
        raise UserError(f"{output}: the original photo is no longer at {source}")
    new_box = box or record.box
    new_size = size or record.size
    check_size(new_size)
    photo = open_photo(source, min_long_side=_decode_long_side(record.source_size, new_box, new_size))
    if photo.full_size != tuple(record.source_size):
        raise UserError(f"{output}: the original photo is now {photo.full_size[0]}x{photo.full_size[1]}, not "
                        f"{record.source_size[0]}x{record.source_size[1]}; crop it again")
    stat = source.stat()
    changed = (stat.st_size, stat.st_mtime_ns) != (record.source_bytes, record.source_mtime_ns)
    record.box, record.size = new_box, new_size
    record.adjusted = record.adjusted or box is not None
    record.source_bytes, record.source_mtime_ns = stat.st_size, stat.st_mtime_ns
    record.flags, record.warnings = _quality_notes(record, padded=not new_box.fits_in(*photo.full_size),
                                                   zoom_limited=False)
    if changed:
        record.warnings.append("the original photo was modified since it was cropped: check the crop")
    _write_crop(Path(dataset_dir), render(photo, new_box, new_size), record)
    return record


def output_bases(photos: list[Path], source_dir: Path) -> dict[Path, str]:
    """Crop file stems: the photo's stem, made unique when two photos share one (``a.jpg`` + ``a.png``) and
    prefixed with sub-folders in a recursive run (``trip/a.jpg`` -> ``trip__a``)."""
    stems = {path: "__".join(path.relative_to(source_dir).with_suffix("").parts) for path in photos}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem.lower()] = counts.get(stem.lower(), 0) + 1
    return {
        path: f"{stem}_{path.suffix[1:].lower()}" if counts[stem.lower()] > 1 else stem
        for path, stem in stems.items()
    }


class _CropJob:
    """The per-photo work, shared by the pool's threads (it holds no per-photo state)."""

    def __init__(self, config: CropConfig, detector: FaceDetector, output_dir: Path):
        self.config = config
        self.detector = detector
        self.output_dir = output_dir

    def run(self, path: Path, base: str) -> PhotoResult:
        result = PhotoResult(source=path.name)
        try:
            # Twice the detector's size: libjpeg then decodes a 12 MP photo at 1/2 scale, barely slower than at
            # 1/4 (Huffman decoding dominates), and that copy is usually large enough for the crop as well.
            photo = open_photo(path, min_long_side=2 * self.config.detect_long_side)
        except ImageError as exc:
            result.skipped = str(exc).split(": ", 1)[-1]
            return result
        faces = self._detect(photo)
        chosen = self._choose(faces)
        if not chosen and self.config.no_face == "skip":
            result.skipped = "no face found (use --no-face centre to keep a centre crop)"
            return result
        stat = path.stat()
        plans = [(index, frame_face(faces[index], photo.full_size, self.config.framing)) for index in chosen]
        for number, (index, framing) in enumerate(plans or [(None, None)], start=1):
            output = f"{base}_f{number}.png" if len(plans) > 1 else f"{base}.png"
            existing = records.load_existing(self.output_dir, output)
            if existing and existing.adjusted and (self.output_dir / output).exists():
                result.outputs.append(output)
                result.warnings.append(f"{output}: kept your manual adjustment")
                continue
            box = framing.box if framing else centre_box(photo.full_size)
            record = CropRecord(
                output=output, source=str(path.resolve()), source_size=photo.full_size,
                source_bytes=stat.st_size, source_mtime_ns=stat.st_mtime_ns, box=box, size=self.config.size,
                detector=self.detector.name, faces=[face.to_json() for face in faces], face_index=index,
                framing=asdict(self.config.framing),
            )
            record.flags, record.warnings = _quality_notes(
                record, padded=bool(framing and framing.padded), zoom_limited=bool(framing and framing.zoom_limited))
            crop_photo = self._photo_for(path, photo, box)
            _write_crop(self.output_dir, render(crop_photo, box, self.config.size), record)
            result.outputs.append(output)
            result.warnings.extend(f"{output}: {warning}" if len(plans) > 1 else warning
                                   for warning in record.warnings)
        return result

    def _detect(self, photo: Photo) -> list[Face]:
        """Detect on a copy whose long side is ``detect_long_side``; return faces in full-photo pixels."""
        image = photo.image
        wanted = self.config.detect_long_side
        factor = max(image.size) // wanted
        if factor > 1:
            image = image.reduce(factor)  # an integer box filter: a few ms where a resampling filter takes ~10
        if max(image.size) > 1.25 * wanted:
            scale = wanted / max(image.size)
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                 Image.BILINEAR)
        to_full = photo.full_size[0] / image.width
        faces = [face.scaled(to_full) for face in self.detector.detect(image)]
        return sorted(faces, key=lambda face: face.area, reverse=True)

    def _choose(self, faces: list[Face]) -> list[int]:
        """Indexes of the faces to crop: the largest, or every face that is not a small background face."""
        if not faces:
            return []
        if self.config.faces == "largest":
            return [0]
        return [i for i, face in enumerate(faces) if face.box[3] >= OTHER_FACE_SHARE * faces[0].box[3]]

    def _photo_for(self, path: Path, detected: Photo, box: CropBox) -> Photo:
        """The decode to cut from: the detection decode when it has enough pixels for the output, else a larger one."""
        needed = _decode_long_side(detected.full_size, box, self.config.size)
        if detected.scale == 1 or (needed is not None and max(detected.image.size) >= needed):
            return detected
        return open_photo(path, min_long_side=needed)


def _guarded(job: _CropJob, path: Path, base: str, should_stop: Callable[[], bool] | None) -> PhotoResult | None:
    """Run one photo unless the user asked to stop; None means "not started"."""
    if should_stop and should_stop():
        return None
    return job.run(path, base)


def _decode_long_side(full_size: tuple[int, int], box: CropBox, size: int) -> int | None:
    """The photo's long side needed so that ``box`` still has ``size`` pixels; None means full resolution."""
    if box.side <= size:
        return None
    return math.ceil(max(full_size) * size / box.side)


def _quality_notes(record: CropRecord, padded: bool, zoom_limited: bool) -> tuple[list[str], list[str]]:
    """Flags and sentences the review gallery shows next to a crop."""
    flags: list[str] = []
    warnings: list[str] = []
    if record.face_index is None:
        flags.append("no_face")
        warnings.append("no face found: centre crop, please review")
    others = sum(1 for face in record.faces if face["box"][3] >= OTHER_FACE_SHARE * record.faces[0]["box"][3]) \
        if record.faces else 0
    if others > 1:
        flags.append("several_faces")
        warnings.append(f"{others} faces in the photo: framed face {(record.face_index or 0) + 1} (largest first)")
    if record.box.side < record.size:
        flags.append("upscaled")
        warnings.append(f"upscaled x{record.size / record.box.side:.1f}: the crop is only "
                        f"{record.box.side:.0f} px of the photo")
    if padded:
        flags.append("padded")
        warnings.append("the head does not fit in the photo: edges were extended")
    if zoom_limited:
        flags.append("zoom_limited")
        warnings.append("the face is closer than head-and-shoulders framing; the photo allows no wider crop")
    return flags, warnings


def _write_crop(dataset_dir: Path, image: Image.Image, record: CropRecord) -> None:
    """The crop first, then its record: a kill in between leaves a crop whose old record still describes a
    valid crop of the same photo, and both writes are atomic."""
    with fileio.atomic_path(dataset_dir / record.output) as tmp:
        image.save(tmp, format="PNG", compress_level=1)
    records.save_record(dataset_dir, record)


def _refuse_overwriting_originals(source_dir: Path, output_dir: Path, recursive: bool) -> None:
    """Originals are never written: the output folder cannot be the photo folder, nor (in a recursive run, where
    crops would be read back as photos) a folder inside it."""
    source, output = source_dir.resolve(), output_dir.resolve()
    if output == source:
        raise UserError("the output folder must differ from the photo folder: originals are never written")
    if recursive and source in output.parents:
        raise UserError("with --recursive the output folder cannot be inside the photo folder")
