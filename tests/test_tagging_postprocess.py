"""Scores -> caption tags, and caption merging: exact rules, no model involved."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ti_studio.tagging.labels import Labels
from ti_studio.captions.ops import tag_key
from ti_studio.tagging.postprocess import (
    KAOMOJI,
    TagOptions,
    display_name,
    mcut_threshold,
    merge_caption,
    select_tags,
)

#: Deliberately NOT in the usual order: character rows sit between general rows, so position-based splitting (the
#: old extensions' ``rows[4:]`` = "tags") would judge them with the general threshold.
NAMES = ("general", "sensitive", "questionable", "explicit",
         "1girl", "long_hair", "^_^", "hakurei_reimu", "smile", "hatsune_miku", "star_(symbol)")
CATEGORIES = np.array([9, 9, 9, 9, 0, 0, 0, 4, 0, 4, 0])
LABELS = Labels(
    names=NAMES,
    rating=np.flatnonzero(CATEGORIES == 9),
    general=np.flatnonzero(CATEGORIES == 0),
    character=np.flatnonzero(CATEGORIES == 4),
)


def scores(**by_name: float) -> np.ndarray:
    values = np.zeros(len(LABELS.names), dtype=np.float32)
    for name, value in by_name.items():
        values[LABELS.names.index(name)] = value
    return values


def test_kaomoji_list_is_the_reference_one():
    assert len(KAOMOJI) == 19
    assert {"^_^", ">_<", "0_0", "(o)_(o)", "||_||", "+_-", "6_9"} <= KAOMOJI


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("long_hair", "long hair"),
        ("^_^", "^_^"),
        (">_<", ">_<"),
        ("(o)_(o)", "\\(o\\)_\\(o\\)"),  # kaomoji keep the underscore, but brackets are still escaped
        ("star_(symbol)", "star \\(symbol\\)"),
        ("artoria_pendragon_(fate)", "artoria pendragon \\(fate\\)"),
        ("1girl", "1girl"),
    ],
)
def test_display_name(raw, shown):
    assert display_name(raw) == shown


def test_tag_key_unifies_spellings():
    assert tag_key("long_hair") == tag_key("long hair") == tag_key(" long hair ")
    assert tag_key("star_(symbol)") == tag_key("star \\(symbol\\)") == tag_key("star (symbol)")


def test_mcut_is_the_midpoint_of_the_largest_gap():
    assert mcut_threshold(np.array([0.9, 0.85, 0.3, 0.2])) == pytest.approx(0.575)
    assert mcut_threshold(np.array([0.5])) is None
    assert mcut_threshold(np.array([], dtype=np.float32)) is None


@given(st.lists(st.floats(0, 1, width=32), min_size=2, max_size=50))
def test_mcut_splits_the_scores_at_a_largest_gap(values):
    probs = np.array(values, dtype=np.float32)
    cut = mcut_threshold(probs)
    ordered = np.sort(probs.astype(np.float64))[::-1]
    assert ordered[-1] <= cut <= ordered[0]
    above, below = ordered[ordered > cut], ordered[ordered <= cut]
    if above.size and below.size:  # the cut lies in a gap no narrower than any other gap
        assert above.min() - below.max() >= np.abs(np.diff(ordered)).max() - 1e-6


def test_categories_are_split_by_column_not_position():
    # hakurei_reimu (character, 0.8) sits among the general rows: it must face the character threshold 0.85.
    # hatsune_miku (character) and star_(symbol) (general) sit after it.
    out = select_tags(scores(hakurei_reimu=0.8, hatsune_miku=0.9, smile=0.5, **{"star_(symbol)": 0.4}), LABELS,
                      TagOptions())
    assert list(out.tags) == ["hatsune miku", "smile", "star \\(symbol\\)"]


def test_order_is_characters_then_general_each_by_confidence_ties_in_csv_order():
    out = select_tags(scores(hatsune_miku=0.9, hakurei_reimu=0.95, smile=0.6, long_hair=0.7, **{"1girl": 0.6}),
                      LABELS, TagOptions())
    assert list(out.tags) == ["hakurei reimu", "hatsune miku", "long hair", "1girl", "smile"]
    assert out.tags["long hair"] == pytest.approx(0.7)


def test_threshold_comparison_is_strict():
    at = np.float32(0.35)
    out = select_tags(scores(smile=float(at), long_hair=float(np.nextafter(at, np.float32(1)))), LABELS,
                      TagOptions(general_threshold=float(at)))
    assert list(out.tags) == ["long hair"]


def test_mcut_general_replaces_the_fixed_threshold():
    s = scores(long_hair=0.9, smile=0.85, **{"1girl": 0.2, "^_^": 0.1})
    assert list(select_tags(s, LABELS, TagOptions(general_threshold=0.1)).tags) == ["long hair", "smile", "1girl"]
    assert list(select_tags(s, LABELS, TagOptions(general_threshold=0.1, mcut_general=True)).tags) == [
        "long hair", "smile"]


def test_character_mcut_is_clamped_at_015():
    # gaps: 0.12 -> 0.05 -> 0.0: MCut alone would be 0.085 and let 0.12 through; the clamp (0.15) stops it.
    s = scores(hatsune_miku=0.12, hakurei_reimu=0.05)
    assert select_tags(s, LABELS, TagOptions(mcut_character=True)).tags == {}
    s = scores(hatsune_miku=0.7, hakurei_reimu=0.1)
    assert list(select_tags(s, LABELS, TagOptions(mcut_character=True)).tags) == ["hatsune miku"]


def test_ratings_are_reported_but_written_only_on_request_and_first():
    s = scores(general=0.2, sensitive=0.7, questionable=0.05, smile=0.9, hatsune_miku=0.95)
    plain = select_tags(s, LABELS, TagOptions())
    assert "sensitive" not in plain.tags
    assert plain.ratings == pytest.approx({"general": 0.2, "sensitive": 0.7, "questionable": 0.05, "explicit": 0.0})
    rated = select_tags(s, LABELS, TagOptions(include_rating=True))
    assert list(rated.tags) == ["sensitive", "hatsune miku", "smile"]


@pytest.mark.parametrize("spelling", ["long_hair", "long hair"])
def test_exclusions_match_raw_and_spaced_names(spelling):
    s = scores(long_hair=0.9, smile=0.8, **{"star_(symbol)": 0.7, "^_^": 0.6})
    out = select_tags(s, LABELS, TagOptions(exclude=(spelling, "star (symbol)", "^_^")))
    assert list(out.tags) == ["smile"]


def test_exclusion_does_not_move_the_mcut_threshold():
    # MCut is computed on all general scores first (as the reference does), then exclusions remove tags.
    s = scores(long_hair=0.9, smile=0.85, **{"1girl": 0.2})
    out = select_tags(s, LABELS, TagOptions(mcut_general=True, exclude=("long hair",)))
    assert list(out.tags) == ["smile"]


@pytest.mark.parametrize(
    ("mode", "existing", "expected"),
    [
        ("overwrite", "old, long hair", "1girl, long hair, smile"),
        ("append", "old, long_hair", "old, long_hair, 1girl, smile"),
        ("prepend", "old, long_hair", "1girl, long hair, smile, old"),
        ("append", None, "1girl, long hair, smile"),
        ("prepend", "", "1girl, long hair, smile"),
        ("append", "a, a, 1girl", "a, 1girl, long hair, smile"),
        ("skip", None, "1girl, long hair, smile"),
    ],
)
def test_merge_caption_modes_dedupe_by_tag(mode, existing, expected):
    assert merge_caption(["1girl", "long hair", "smile"], existing, mode) == expected


def test_merge_recognises_escaped_and_unescaped_brackets_as_one_tag():
    assert merge_caption(["star \\(symbol\\)"], "star (symbol), x", "append") == "star (symbol), x"
