"""Prompt templates: the bundled files, lookup, expansion as the host does it, and seeded tag shuffle/dropout."""

import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ti_studio.captions.ops import parse_caption
from ti_studio.errors import UserError
from ti_studio.training.templates import (
    BUNDLED_DIR,
    drop_tags,
    expand,
    list_templates,
    load_template,
    parse_template,
    shuffle_tags,
)

BUNDLED = {"name_filewords", "subject", "subject_filewords", "style", "style_filewords"}


# --- the bundled files --------------------------------------------------------------------------------------------

def test_the_bundled_templates_are_listed_and_every_line_trains_the_embedding():
    listed = list_templates()
    assert BUNDLED <= set(listed)
    for name in BUNDLED:
        template = load_template(name)
        assert template.path == BUNDLED_DIR / f"{name}.txt"
        assert template.warnings == ()
        assert template.uses_filewords == name.endswith("filewords")


def test_name_filewords_is_the_tutorial_template():
    assert load_template("name_filewords").lines == ("[name], [filewords]",)


# --- lookup -------------------------------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_template_is_found_by_name_with_or_without_txt_and_by_path(tmp_path, monkeypatch):
    own = write(tmp_path / "mine.txt", "a photo of [name]\n")
    assert load_template("subject.txt").lines == load_template("subject").lines
    assert load_template(own).lines == ("a photo of [name]",)
    assert load_template(str(own)).name == "mine"
    monkeypatch.chdir(tmp_path)
    assert load_template("mine.txt").path == Path("mine.txt")


def test_extra_folders_are_searched_recursively_and_bundled_names_win(tmp_path):
    host_dir = tmp_path / "textual_inversion_templates"
    write(host_dir / "subject.txt", "a host photo of [name]\n")
    write(host_dir / "nested" / "hypernetwork.txt", "[name] by the host\n")
    write(host_dir / "notes.md", "not a template")
    listed = list_templates([host_dir])
    assert listed["subject"] == BUNDLED_DIR / "subject.txt"
    assert listed["hypernetwork"] == host_dir / "nested" / "hypernetwork.txt"
    assert "notes" not in listed
    assert list(listed) == sorted(listed)
    assert load_template("hypernetwork", extra_dirs=[host_dir]).lines == ("[name] by the host",)
    assert load_template(host_dir / "subject.txt").lines == ("a host photo of [name]",)


def test_an_unknown_name_lists_the_available_templates():
    with pytest.raises(UserError) as caught:
        load_template("no_such_template")
    message = str(caught.value)
    assert '"no_such_template"' in message
    for name in BUNDLED:
        assert name in message


def test_a_missing_path_is_reported_as_a_path(tmp_path):
    with pytest.raises(UserError, match="template file not found"):
        load_template(str(tmp_path / "gone.txt"))
    with pytest.raises(UserError, match="template file not found"):
        load_template(tmp_path / "gone")


def test_unreadable_text_is_a_user_error(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("une photo de [name] à Paris".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_template(bad)


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("[name], [filewords]\r\n".encode("utf-8-sig"))
    assert load_template(path).lines == ("[name], [filewords]",)


# --- parsing ------------------------------------------------------------------------------------------------------

def test_blank_lines_are_skipped_and_lines_trimmed():
    template = parse_template("\n  a photo of [name]  \n\n\t\n[name], [filewords]\n", "t")
    assert template.lines == ("a photo of [name]", "[name], [filewords]")


def test_a_template_without_name_anywhere_is_refused():
    with pytest.raises(UserError, match=r"no \[name\] on any line.*learn nothing"):
        parse_template("a photo\n[filewords]\n", "t")


def test_an_empty_template_is_refused():
    with pytest.raises(UserError, match="no prompt lines"):
        parse_template("\n  \n", "t")


def test_lines_without_name_warn_with_their_line_number():
    template = parse_template("a photo of [name]\n\nlandscape, [filewords]\n", "mixed")
    assert template.warnings == ('template "mixed" line 3 has no [name] and trains nothing: "landscape, [filewords]"',)


# --- expansion ----------------------------------------------------------------------------------------------------

def test_expand_fills_name_and_filewords():
    assert expand("a photo of [name], [filewords]", "fr3nch", "smile, red hair") == "a photo of fr3nch, smile, red hair"
    assert expand("[name] and [name]", "x", "") == "x and x"


def test_filewords_are_filled_before_name_as_the_host_does():
    assert expand("[filewords]", "emb", "portrait of [name]") == "portrait of emb"


@pytest.mark.parametrize("line, expected", [
    ("[name], [filewords]", "emb"),
    ("[filewords], a photo of [name]", "a photo of emb"),
    ("a photo of [name], [filewords], photo", "a photo of emb, photo"),
    ("a photo of [name] [filewords]", "a photo of emb"),
    ("a photo of [name]", "a photo of emb"),
])
def test_an_empty_filewords_takes_one_neighbouring_comma_with_it(line, expected):
    assert expand(line, "emb", "") == expected


def test_prompts_are_deterministic_for_a_seed():
    template = load_template("subject_filewords")
    caption = "1girl, smile, red hair, looking at viewer"

    def prompts(seed):
        rng = random.Random(seed)
        return [template.prompt("emb", caption, rng, shuffle=True, dropout=0.2) for _ in range(50)]

    assert prompts(7) == prompts(7)
    assert prompts(7) != prompts(8)
    assert all("emb" in prompt for prompt in prompts(7))


def test_a_line_is_drawn_for_every_prompt():
    template = parse_template("one [name]\ntwo [name]\nthree [name]\n", "t")
    rng = random.Random(0)
    drawn = Counter(template.prompt("emb", "", rng) for _ in range(300))
    assert set(drawn) == {"one emb", "two emb", "three emb"}
    assert min(drawn.values()) > 60


def test_without_shuffle_or_dropout_the_caption_is_inserted_as_written():
    template = parse_template("[name], [filewords]", "t")
    rng = random.Random(0)
    assert template.prompt("emb", "b, a,  c\n", rng) == "emb, b, a, c"


def test_fixed_prompt_uses_the_first_line_and_the_whole_caption():
    template = parse_template("a photo of [name], [filewords]\n[name]\n", "t")
    assert template.fixed_prompt("emb", "smile, hat") == "a photo of emb, smile, hat"


# --- tag shuffle and dropout --------------------------------------------------------------------------------------

tag = st.text(st.characters(blacklist_characters=",\r\n"), min_size=1, max_size=8).map(str.strip).filter(bool)
captions = st.lists(tag, max_size=12).map(", ".join)


@given(captions, st.integers(0, 2**32 - 1))
def test_shuffle_is_a_seeded_permutation_of_the_tags(caption, seed):
    shuffled = shuffle_tags(caption, random.Random(seed))
    assert Counter(parse_caption(shuffled)) == Counter(parse_caption(caption))
    assert shuffle_tags(caption, random.Random(seed)) == shuffled


@given(captions, st.floats(0, 1), st.integers(0, 2**32 - 1))
def test_dropout_keeps_a_seeded_subsequence_in_order(caption, rate, seed):
    kept = parse_caption(drop_tags(caption, rate, random.Random(seed)))
    remaining = iter(parse_caption(caption))
    assert all(tag in remaining for tag in kept)
    assert drop_tags(caption, rate, random.Random(seed)) == ", ".join(kept)


def test_dropout_rate_zero_keeps_everything_and_draws_nothing():
    rng = random.Random(3)
    state = rng.getstate()
    assert drop_tags("a, b, c", 0.0, rng) == "a, b, c"
    assert rng.getstate() == state


def test_dropout_rate_one_drops_every_tag_and_the_rate_is_checked():
    assert drop_tags("a, b, c", 1.0, random.Random(0)) == ""
    with pytest.raises(ValueError):
        drop_tags("a", 1.5, random.Random(0))


def test_dropout_drops_about_the_asked_share():
    caption = ", ".join(f"tag{i}" for i in range(2000))
    kept = len(parse_caption(drop_tags(caption, 0.3, random.Random(1))))
    assert 1300 < kept < 1500
