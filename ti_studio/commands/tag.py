"""``tag DIR``: WD14 tags for every photo in a folder, written to ``<stem>.txt`` beside each photo."""

from __future__ import annotations

import argparse

from ..tagging.models import DEFAULT_MODEL, REGISTRY
from ..tagging.postprocess import WRITE_MODES, TagOptions
from ..tagging.tagger import TagConfig, tag_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    tag = subparsers.add_parser(
        "tag", help="WD14 tags for a folder of photos, written to <stem>.txt",
        description="Runs a SmilingWolf WD14 tagger over every photo and writes a comma-separated caption beside it. "
                    "Order: character tags, then general tags, each by confidence.",
    )
    tag.add_argument("dir", help="folder of photos (a dataset folder of crops)")
    tag.add_argument("--model", default=DEFAULT_MODEL,
                     help=f"one of {', '.join(REGISTRY)}; a Hub repo id (owner/name[@revision]); or a folder with "
                          f"model.onnx and selected_tags.csv (default {DEFAULT_MODEL})")
    tag.add_argument("--general", type=_probability, default=0.35, help="general tag threshold (default 0.35)")
    tag.add_argument("--character", type=_probability, default=0.85, help="character tag threshold (default 0.85)")
    tag.add_argument("--mcut-general", action="store_true", help="choose the general threshold by MCut instead")
    tag.add_argument("--mcut-character", action="store_true",
                     help="choose the character threshold by MCut instead (never below 0.15)")
    tag.add_argument("--exclude", default="", help="comma-separated tags never to write (long_hair or long hair)")
    tag.add_argument("--include-rating", action="store_true", help="put the most likely rating tag first")
    tag.add_argument("--mode", choices=WRITE_MODES, default="overwrite",
                     help="existing captions: overwrite, append or prepend the new tags (duplicates dropped), "
                          "or skip photos that have one (default overwrite)")
    tag.add_argument("--batch", type=_positive, default=8, help="photos per model call (default 8; v2 models: 1)")
    tag.add_argument("--recursive", action="store_true", help="also tag photos in sub-folders")
    tag.add_argument("--device", choices=("auto", "cpu"), default="auto")
    tag.add_argument("--fast-decode", action="store_true",
                     help="decode large JPEGs at reduced scale: much faster, pixels differ slightly from the "
                          "reference preprocessing")
    tag.set_defaults(handler=run_tag)


def run_tag(args: argparse.Namespace, report) -> dict:
    config = TagConfig(
        model=args.model,
        options=TagOptions(
            general_threshold=args.general,
            character_threshold=args.character,
            mcut_general=args.mcut_general,
            mcut_character=args.mcut_character,
            include_rating=args.include_rating,
            exclude=tuple(tag.strip() for tag in args.exclude.split(",") if tag.strip()),
        ),
        mode=args.mode,
        batch_size=args.batch,
        recursive=args.recursive,
        device=args.device,
        fast_decode=args.fast_decode,
    )

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:  # about ten lines per run, however long
            report(f"{done}/{total} photos")

    return tag_folder(args.dir, config, report=report, progress=progress).summary()


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value
