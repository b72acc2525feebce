"""From one image's scores to caption tags, and from tags plus an existing caption to the text we write.

Pure functions only (no files, no model), so every rule here is unit-tested exactly:

- thresholds per category, compared strictly (``score > threshold``) like the reference demo; general 0.35 and
  character 0.85 by default, each optionally replaced by MCut (the midpoint of the largest gap between sorted
  scores, Largeron et al. 2012) — for characters clamped to at least 0.15 so one weak character never passes alone;
- ratings are left out of captions unless asked for; then only the most likely one, placed first;
- order: the rating (if asked), then character tags, then general tags, each by confidence, highest first (ties in
  CSV order). Characters lead because a TI dataset is about one subject, and a character tag names it;
- names: underscores become spaces except in kaomoji (``^_^`` must stay ``^_^``), and parentheses are escaped
  (``\\(``) so A1111 does not read them as attention weights;
- exclusions match a tag in any of its spellings (``long_hair``, ``long hair``, ``ribbon \\(hair\\)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal

import numpy as np

from ..captions.ops import format_caption, parse_caption, tag_key, unique_tags
from .labels import Labels

#: The 19 Danbooru kaomoji tags whose underscore is part of the face (list used by SmilingWolf's demo).
KAOMOJI = frozenset({
    "0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3",
    "6_9", ">_o", "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||",
})

#: Lowest MCut threshold for character tags (the reference's clamp).
CHARACTER_MCUT_FLOOR = 0.15

WriteMode = Literal["overwrite", "append", "prepend", "skip"]
WRITE_MODES: tuple[WriteMode, ...] = ("overwrite", "append", "prepend", "skip")


@dataclass(frozen=True)
class TagOptions:
    """How scores become caption tags. Defaults are the reference demo's."""

    general_threshold: float = 0.35
    character_threshold: float = 0.85
    mcut_general: bool = False
    mcut_character: bool = False
    include_rating: bool = False
    exclude: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Prediction:
    """One image's outcome: the caption tags in order with their confidences, and all rating scores.

    Keys are display names (spaces, escaped parentheses), exactly the strings that go into the caption.
    """

    tags: dict[str, float]
    ratings: dict[str, float]


def mcut_threshold(scores: np.ndarray) -> float | None:
    """Midpoint of the largest gap between neighbouring sorted scores; ``None`` when there is no gap (< 2 scores)."""
    if scores.size < 2:
        return None
    ordered = np.sort(scores)[::-1]
    gap = int(np.argmax(ordered[:-1] - ordered[1:]))
    return (float(ordered[gap]) + float(ordered[gap + 1])) / 2


def display_name(raw: str) -> str:
    """A CSV tag name as it appears in a caption: ``long_hair`` -> ``long hair``, ``(fate)`` -> ``\\(fate\\)``."""
    name = raw if raw in KAOMOJI else raw.replace("_", " ")
    return name.replace("(", "\\(").replace(")", "\\)")


def select_tags(scores: np.ndarray, labels: Labels, options: TagOptions) -> Prediction:
    """Apply thresholds, exclusions, naming and ordering to one image's score vector (one score per CSV row)."""
    excluded = {tag_key(tag) for tag in options.exclude}
    chosen: list[tuple[str, float]] = []
    if options.include_rating and labels.rating.size:
        top = int(labels.rating[np.argmax(scores[labels.rating])])
        chosen.append((labels.names[top], float(scores[top])))
    for indices, threshold, use_mcut, floor in (
        (labels.character, options.character_threshold, options.mcut_character, CHARACTER_MCUT_FLOOR),
        (labels.general, options.general_threshold, options.mcut_general, None),
    ):
        chosen.extend(_above(scores, labels, indices, _threshold(scores[indices], threshold, use_mcut, floor)))
    tags: dict[str, float] = {}
    for raw, score in chosen:
        if tag_key(raw) not in excluded:
            tags.setdefault(display_name(raw), score)
    ratings = {labels.names[i]: float(scores[i]) for i in labels.rating}
    return Prediction(tags=tags, ratings=ratings)


def _threshold(scores: np.ndarray, fixed: float, use_mcut: bool, floor: float | None) -> float:
    cut = mcut_threshold(scores) if use_mcut else None
    if cut is None:
        return fixed
    return max(floor, cut) if floor is not None else cut


def _above(scores: np.ndarray, labels: Labels, indices: np.ndarray, threshold: float) -> list[tuple[str, float]]:
    """Tags of one category scoring strictly above ``threshold``, by score descending, ties in CSV order."""
    picked = indices[scores[indices] > threshold]
    order = np.lexsort((picked, -scores[picked].astype(np.float64)))
    return [(labels.names[i], float(scores[i])) for i in picked[order]]


def merge_caption(new_tags: Iterable[str], existing: str | None, mode: WriteMode) -> str:
    """The caption text to write for ``mode``, given the tagger's tags and the current caption (``None``: no file).

    ``overwrite`` ignores the old caption; ``append`` keeps it first and adds new tags after it; ``prepend`` puts the
    new tags first. Combining drops duplicate tags (in any spelling), keeping the first occurrence. ``skip`` is
    decided before tagging (see the tagger), so here it behaves like ``overwrite`` for a file without a caption.
    """
    new = list(new_tags)
    old = parse_caption(existing) if existing and mode in ("append", "prepend") else []
    return format_caption(unique_tags(old + new if mode == "append" else new + old))
