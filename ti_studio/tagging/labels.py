"""``selected_tags.csv``: which model output is which tag, and of which kind.

The WD14 models emit one score per CSV row, in CSV order. Every row carries a Danbooru category: 9 = rating, 0 =
general, 4 = character. We split the outputs by that column, never by position: the old A1111 extensions took
``rows[:4]`` as ratings and the rest as "tags", which silently mixed character tags into the general pool and
judged them with the general threshold.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

RATING = 9
GENERAL = 0
CHARACTER = 4

#: Columns every SmilingWolf CSV has (``tag_id,name,category,count``); we need only these two.
_REQUIRED_COLUMNS = ("name", "category")


@dataclass(frozen=True)
class Labels:
    """Tag names in model-output order, and the output indices of each category (in CSV order).

    Rows with any other category are kept in ``names`` (so indices still line up with the model output) but belong
    to no group, so they are never written.
    """

    names: tuple[str, ...]
    rating: np.ndarray
    general: np.ndarray
    character: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def load_labels(path: str | os.PathLike) -> Labels:
    """Read a ``selected_tags.csv``; raise :class:`UserError` naming the file if it is not one."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise UserError(f"{path}: not a selected_tags.csv (missing column {', '.join(missing)})")
            rows = [(row["name"], row["category"]) for row in reader]
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text, so not a selected_tags.csv") from None
    if not rows:
        raise UserError(f"{path}: no tags listed")
    try:
        categories = np.array([int(category) for _, category in rows])
    except (TypeError, ValueError):
        raise UserError(f"{path}: the category column must hold whole numbers") from None
    return Labels(
        names=tuple(name for name, _ in rows),
        rating=np.flatnonzero(categories == RATING),
        general=np.flatnonzero(categories == GENERAL),
        character=np.flatnonzero(categories == CHARACTER),
    )
