"""``crop SRC OUT`` (face-focal crops of a photo folder) and ``recrop DATASET`` (adjust or re-export saved crops)."""

from __future__ import annotations

import argparse

from ..crop.cropper import CropConfig, crop_folder, recrop
from ..crop.framing import FACE_FRACTIONS, CropBox, FramingConfig
from ..crop.records import list_records
from ..errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    crop = subparsers.add_parser("crop", help="square face-focal crops of a folder of photos",
                                 description="One square crop per photo, zoomed to the face. Originals are only read.")
    crop.add_argument("src", help="folder of original photos (read only)")
    crop.add_argument("out", help="dataset folder for the crops (created if missing)")
    crop.add_argument("--size", type=int, default=512, help="output side in pixels, a multiple of 8 (default 512)")
    crop.add_argument("--detector", choices=("auto", "yunet", "mtcnn"), default="auto",
                      help="auto: YuNet when it can be loaded, else the offline MTCNN")
    crop.add_argument("--framing", choices=tuple(FACE_FRACTIONS), default="head-and-shoulders")
    crop.add_argument("--faces", choices=("largest", "all"), default="largest",
                      help="crop the largest face, or one crop per face")
    crop.add_argument("--no-face", choices=("skip", "centre"), default="skip",
                      help="photos without a face: skip them, or keep a centre crop flagged for review")
    crop.add_argument("--recursive", action="store_true", help="also read photos in sub-folders")
    crop.add_argument("--workers", type=int, default=2, help="photos processed at once (default 2)")
    crop.add_argument("--device", choices=("auto", "cpu"), default="auto")
    crop.set_defaults(handler=run_crop)

    redo = subparsers.add_parser("recrop", help="adjust one saved crop or re-export crops at another size",
                                 description="Uses the parameters saved by crop; no face detection runs.")
    redo.add_argument("dataset", help="dataset folder written by crop")
    redo.add_argument("names", nargs="*", help="crop file names (default: every crop in the folder)")
    redo.add_argument("--box", help="new crop box LEFT,TOP,SIDE in original-photo pixels (one crop only)")
    redo.add_argument("--size", type=int, help="new output side in pixels")
    redo.set_defaults(handler=run_recrop)


def run_crop(args: argparse.Namespace, report) -> dict:
    config = CropConfig(
        size=args.size, detector=args.detector, framing=FramingConfig(face_fraction=FACE_FRACTIONS[args.framing]),
        faces=args.faces, no_face=args.no_face, recursive=args.recursive, workers=args.workers, device=args.device,
    )
    summary = crop_folder(args.src, args.out, config, progress=None)
    if summary.notice:
        report(f"note: {summary.notice}")
    for result in summary.results:
        if result.skipped:
            report(f"{result.source}: skipped: {result.skipped}")
        else:
            notes = f" ({'; '.join(result.warnings)})" if result.warnings else ""
            report(f"{result.source} -> {', '.join(result.outputs)}{notes}")
    skipped = sum(1 for result in summary.results if result.skipped)
    report(f"{summary.written} crops from {len(summary.results)} photos into {args.out}; {skipped} skipped; "
           f"detector {summary.detector}")
    return summary.to_json()


def run_recrop(args: argparse.Namespace, report) -> dict:
    names = args.names or [record.output for record in list_records(args.dataset)]
    if not names:
        raise UserError(f"no saved crops in {args.dataset}")
    box = _parse_box(args.box) if args.box else None
    if box and len(names) != 1:
        raise UserError("--box adjusts one crop: name exactly one")
    done = []
    for name in names:
        record = recrop(args.dataset, name, box=box, size=args.size)
        report(f"{name}: {record.size} px from box {record.box.to_json()}")
        done.append({"output": name, "size": record.size, "box": record.box.to_json(), "warnings": record.warnings})
    return {"recropped": done}


def _parse_box(text: str) -> CropBox:
    try:
        left, top, side = (float(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--box must be LEFT,TOP,SIDE (three numbers), got {text!r}") from None
    if side <= 0:
        raise UserError("--box side must be positive")
    return CropBox(left=left, top=top, side=side)
