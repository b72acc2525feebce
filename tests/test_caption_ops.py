"""Pure tag operations: examples for each rule, then properties over generated captions."""

from collections import Counter

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ti_studio.captions.ops import (
    Append,
    Chain,
    Dedupe,
    Prepend,
    Remove,
    Replace,
    ReplaceInTags,
    Sort,
    TagCount,
    apply_edit,
    format_caption,
    parse_caption,
    select,
    tag_key,
    tag_stats,
)
from ti_studio.errors import UserError

NO_FREQ: dict[str, int] = {}

# Tags as parse_caption yields them: no separators, trimmed, not empty. A pool of look-alikes makes matching
# collisions (long_hair / long hair / Long Hair, escaped parentheses) and duplicates common.
LOOKALIKES = ["long hair", "long_hair", "Long Hair", "hair", "smile", "smile \\(anime\\)", "smile (anime)",
              "1girl", "watermark", "^_^", "blonde hair", "blond hair"]
free_tags = st.text(st.characters(blacklist_characters=",\r\n"), min_size=1, max_size=12).map(str.strip).filter(bool)
tags_st = st.one_of(st.sampled_from(LOOKALIKES), free_tags)
captions_st = st.lists(tags_st, max_size=10)
datasets_st = st.lists(captions_st, max_size=6)


def is_subsequence(small, big) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


# ---- parse / format -------------------------------------------------------------------------------------------

def test_parse_trims_drops_empty_and_keeps_order():
    assert parse_caption(" b ,a,, ,\n c\r\nd ") == ["b", "a", "c", "d"]
    assert parse_caption("") == []


def test_escaped_parentheses_are_kept_as_written():
    text = "smile \\(anime\\), 1girl"
    assert parse_caption(text) == ["smile \\(anime\\)", "1girl"]
    assert format_caption(parse_caption(text)) == text


def test_tag_key_forgives_underscores_escapes_case_and_spaces():
    assert tag_key("long_hair") == tag_key("Long  Hair") == tag_key("long hair")
    assert tag_key("smile \\(anime\\)") == tag_key("smile (anime)")
    assert tag_key("long hair") != tag_key("longhair")


@given(st.text())
def test_format_parse_is_stable(text):
    once = format_caption(parse_caption(text))
    assert format_caption(parse_caption(once)) == once
    assert parse_caption(once) == parse_caption(text)


@given(captions_st)
def test_parse_inverts_format(tags):
    assert parse_caption(format_caption(tags)) == tags


# ---- stats ----------------------------------------------------------------------------------------------------

def test_stats_counts_captions_not_occurrences_sorted_by_count_then_name():
    rows = tag_stats([["b", "a", "a"], ["a", "c"], ["c"]])
    assert rows == [TagCount("a", 2), TagCount("c", 2), TagCount("b", 1)]


@given(datasets_st)
def test_stats_total_and_order(dataset):
    rows = tag_stats(dataset)
    assert sum(row.count for row in rows) == sum(len(set(tags)) for tags in dataset)
    assert [(-r.count, r.tag) for r in rows] == sorted((-r.count, r.tag) for r in rows)


# ---- remove ---------------------------------------------------------------------------------------------------

def test_remove_matches_both_spellings():
    tags = ["1girl", "long_hair", "Long Hair", "smile \\(anime\\)", "watermark"]
    assert Remove(("long hair", "smile (anime)")).apply(tags, NO_FREQ) == ["1girl", "watermark"]


def test_remove_accepts_comma_separated_text_and_refuses_nothing():
    assert Remove("a, b").tags == ("a", "b")
    with pytest.raises(UserError):
        Remove(" , ")


@given(datasets_st, st.lists(tags_st, min_size=1, max_size=3))
def test_removed_tags_never_show_in_stats(dataset, removed):
    edited = apply_edit(Remove(tuple(removed)), dict(enumerate(dataset)))
    gone = {tag_key(tag) for tag in removed}
    assert not [row for row in tag_stats(edited.values()) if tag_key(row.tag) in gone]


@given(captions_st, st.lists(tags_st, min_size=1, max_size=3))
def test_remove_drops_only_what_it_was_told(tags, removed):
    gone = {tag_key(tag) for tag in removed}
    assert Remove(tuple(removed)).apply(tags, NO_FREQ) == [t for t in tags if tag_key(t) not in gone]


# ---- replace --------------------------------------------------------------------------------------------------

def test_replace_whole_tag_by_key():
    assert Replace("long_hair", "very long hair").apply(["1girl", "Long Hair"], NO_FREQ) == ["1girl", "very long hair"]


def test_replace_does_not_duplicate_an_existing_tag():
    assert Replace("blonde hair", "blond hair").apply(["blonde hair", "smile", "blond hair"], NO_FREQ) == [
        "smile", "blond hair"]


def test_replace_with_empty_removes_and_with_commas_splits():
    assert Replace("x", "").apply(["a", "x"], NO_FREQ) == ["a"]
    assert Replace("twintails", "blonde hair, twintails").apply(["twintails"], NO_FREQ) == [
        "blonde hair", "twintails"]


def test_replace_refuses_empty_old():
    with pytest.raises(UserError):
        Replace("  ", "x")


@given(captions_st, tags_st)
def test_replace_with_itself_is_a_no_op(tags, old):
    assume(all(tag == old for tag in tags if tag_key(tag) == tag_key(old)))
    assert Replace(old, old).apply(tags, NO_FREQ) == tags


@given(captions_st, tags_st, tags_st)
def test_replace_keeps_every_other_tag(tags, old, new):
    result = Replace(old, new).apply(tags, NO_FREQ)
    untouched = [tag for tag in tags if tag_key(tag) != tag_key(old)]
    assert [tag for tag in result if tag_key(tag) != tag_key(new)] == [
        tag for tag in untouched if tag_key(tag) != tag_key(new)]
    assert all(tag in result for tag in untouched)
    if any(tag_key(tag) == tag_key(old) for tag in tags):
        assert tag_key(new) in {tag_key(tag) for tag in result}


# ---- replace inside tags ---------------------------------------------------------------------------------------

def test_replace_in_tags_substring():
    edit = ReplaceInTags("hair", "hairstyle")
    assert edit.apply(["long hair", "smile", "short_hair"], NO_FREQ) == ["long hairstyle", "smile", "short_hairstyle"]
    # long_hair and long hair are one tag: rewritten together, they merge instead of duplicating.
    assert edit.apply(["long hair", "long_hair"], NO_FREQ) == ["long hairstyle"]


def test_replace_in_tags_merges_what_becomes_equal():
    edit = ReplaceInTags("blonde", "blond")
    assert edit.apply(["blonde hair", "blond hair", "smile"], NO_FREQ) == ["blond hair", "smile"]


def test_replace_in_tags_regex_with_groups_and_removal():
    edit = ReplaceInTags(r"^(\w+) eyes$", r"\1_eyes", regex=True)
    assert edit.apply(["blue eyes", "closed eyes open"], NO_FREQ) == ["blue_eyes", "closed eyes open"]
    assert ReplaceInTags(r"^artist:.*", "", regex=True).apply(["artist:x", "a"], NO_FREQ) == ["a"]


def test_replace_in_tags_bad_input_is_a_user_error():
    with pytest.raises(UserError):
        ReplaceInTags("(", "x", regex=True)
    with pytest.raises(UserError):
        ReplaceInTags("", "x")
    with pytest.raises(UserError):
        ReplaceInTags("(a)", r"\2", regex=True).apply(["a"], NO_FREQ)


@given(captions_st, st.text(min_size=1, max_size=3), st.text(max_size=4))
def test_replace_in_tags_keeps_tags_without_the_text(tags, find, replacement):
    result = ReplaceInTags(find, replacement).apply(tags, NO_FREQ)
    assert all(tag in result for tag in tags if find not in tag)


# ---- prepend / append / dedupe / sort ----------------------------------------------------------------------------

def test_prepend_skips_present_tags_and_keeps_their_place():
    assert Prepend("jdoe, 1girl").apply(["smile", "1girl"], NO_FREQ) == ["jdoe", "smile", "1girl"]
    assert Append(("jdoe", "smile")).apply(["Smile"], NO_FREQ) == ["Smile", "jdoe"]


@given(captions_st, st.lists(tags_st, min_size=1, max_size=3))
def test_prepend_and_append_are_idempotent_and_keep_everything(tags, added):
    for edit in (Prepend(tuple(added)), Append(tuple(added))):
        once = edit.apply(tags, NO_FREQ)
        assert edit.apply(once, NO_FREQ) == once
        assert is_subsequence(tags, once)
        assert {tag_key(t) for t in added} <= {tag_key(t) for t in once}


def test_dedupe_keeps_first_spelling():
    assert Dedupe().apply(["long hair", "a", "long_hair", "a"], NO_FREQ) == ["long hair", "a"]


@given(captions_st)
def test_dedupe_is_idempotent_and_keeps_every_tag_once(tags):
    once = Dedupe().apply(tags, NO_FREQ)
    assert Dedupe().apply(once, NO_FREQ) == once
    assert is_subsequence(once, tags)
    assert sorted({tag_key(t) for t in once}) == sorted(tag_key(t) for t in once) == sorted({tag_key(t) for t in tags})


def test_sort_alpha_frequency_and_keep_first():
    freq = {"smile": 5, "1girl": 9, "b": 1}
    assert Sort("alpha").apply(["smile", "B", "a"], NO_FREQ) == ["a", "B", "smile"]
    assert Sort("frequency").apply(["b", "smile", "zzz", "1girl"], freq) == ["1girl", "smile", "b", "zzz"]
    assert Sort("alpha", keep_first=1).apply(["jdoe", "b", "a"], NO_FREQ) == ["jdoe", "a", "b"]
    with pytest.raises(UserError):
        Sort("length")  # type: ignore[arg-type]


@given(captions_st, st.sampled_from(["alpha", "frequency"]), st.integers(0, 3))
def test_sort_is_an_idempotent_permutation(tags, by, keep_first):
    freq = Counter(tags)
    once = Sort(by, keep_first).apply(tags, freq)
    assert Counter(once) == Counter(tags)
    assert once[:keep_first] == tags[:keep_first]
    assert Sort(by, keep_first).apply(once, freq) == once


# ---- chains and datasets ----------------------------------------------------------------------------------------

def test_sort_by_frequency_counts_the_whole_dataset_not_just_targets():
    dataset = {"a": ["x", "y"], "b": ["y"], "c": ["y"]}
    assert apply_edit(Sort("frequency"), dataset, targets=["a"]) == {"a": ["y", "x"]}


def test_chain_steps_see_the_previous_step_over_the_whole_dataset():
    dataset = {"a": ["old", "z"], "b": ["old"], "c": ["z"]}
    chain = Chain((Replace("old", "new"), Sort("frequency")))
    # After the replace, "new" is in 2 captions and "z" in 2: the tie sorts by name.
    assert apply_edit(chain, dataset)["a"] == ["new", "z"]
    assert chain.name == "replace+sort"
    assert "replace" in chain.describe() and "sort" in chain.describe()


@given(datasets_st, st.lists(tags_st, min_size=1, max_size=2), st.lists(tags_st, min_size=1, max_size=2))
def test_chain_is_the_steps_in_order(dataset, removed, added):
    captions = dict(enumerate(dataset))
    chain = Chain((Remove(tuple(removed)), Dedupe(), Prepend(tuple(added))))
    stepwise = captions
    for step in chain.steps():
        stepwise = apply_edit(step, stepwise)
    assert apply_edit(chain, captions) == stepwise


@given(datasets_st, st.data())
def test_apply_edit_touches_only_targets(dataset, data):
    captions = dict(enumerate(dataset))
    targets = data.draw(st.sets(st.sampled_from(list(captions)))) if captions else set()
    edited = apply_edit(Prepend(("trigger",)), captions, targets)
    assert set(edited) == targets


def test_select_filters_by_tags():
    captions = {"a": ["1girl", "long_hair"], "b": ["1girl", "smile"], "c": ["watermark"]}
    assert select(captions, include=["long hair"]) == ["a"]
    assert select(captions, include=["long hair", "smile"], match="any") == ["a", "b"]
    assert select(captions, include=["1girl", "smile"]) == ["b"]
    assert select(captions, exclude=["1girl"]) == ["c"]
    assert select(captions) == ["a", "b", "c"]
