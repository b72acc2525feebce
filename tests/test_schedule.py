"""Learning-rate schedules: the host's syntax and meaning, refusals that name the token, then properties."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ti_studio.errors import UserError
from ti_studio.training.schedule import PRESETS, TUTORIAL, LearningRateSchedule, RateSpan

parse = LearningRateSchedule.parse


def test_tutorial_schedule_rates_follow_the_host_until_step_n_inclusive():
    schedule = parse(TUTORIAL.text)
    assert [schedule.rate_at(s) for s in (1, 10, 11, 20, 21, 60, 61, 200, 201, 500, 501, 3000, 3001, 10**6)] == [
        0.05, 0.05, 0.02, 0.02, 0.01, 0.01, 0.005, 0.005, 0.002, 0.002, 0.001, 0.001, 0.0005, 0.0005]
    assert schedule.last_step is None
    assert schedule.stop_step(3000) == 3000


def test_a_bare_number_is_a_constant_rate():
    schedule = parse("0.005")
    assert schedule.spans == (RateSpan(0.005, None),)
    assert schedule.rate_at(1) == schedule.rate_at(123456) == 0.005


def test_a_last_entry_with_a_step_ends_training_there():
    schedule = parse("0.005:100")
    assert schedule.last_step == 100
    assert schedule.stop_step(1000) == 100
    assert schedule.stop_step(40) == 40
    assert schedule.rate_at(100) == 0.005
    with pytest.raises(ValueError):
        schedule.rate_at(101)


def test_minus_one_means_to_the_end():
    assert parse("0.01:5, 0.001:-1") == parse("0.01:5, 0.001")


def test_whitespace_exponents_and_plus_signs_are_read_as_the_host_reads_them():
    assert parse(" 1e-3 : 10 ,\n5E-4") == LearningRateSchedule((RateSpan(0.001, 10), RateSpan(0.0005, None)))
    assert parse("+.5:+3, 0.1").spans[0] == RateSpan(0.5, 3)


def test_steps_are_counted_from_one():
    with pytest.raises(ValueError):
        parse("0.01").rate_at(0)


@pytest.mark.parametrize("text, message", [
    ("", "learning-rate schedule is empty"),
    ("   ", "learning-rate schedule is empty"),
    ("0.02:abc", '"0.02:abc" — the step must be a whole number'),
    ("0.02:1.5", '"0.02:1.5" — the step must be a whole number'),
    ("abc", '"abc" — the rate must be a number'),
    ("0.01:10, fast:20", '"fast:20" — the rate must be a number'),
    ("1_0", '"1_0" — the rate must be a number'),
    ("0", '"0" — the rate must be above 0'),
    ("-0.01:10, 0.1", '"-0.01:10" — the rate must be above 0'),
    ("nan", '"nan" — the rate must be a number'),
    ("1e999", '"1e999" — the rate is too large'),
    ("0.1:0", '"0.1:0" — the step must be 1 or more'),
    ("0.1:-5", '"0.1:-5" — the step must be 1 or more'),
    ("0.1:2:3", '"0.1:2:3" — write rate:step, with one colon'),
    ("0.1:20, 0.05:10", '"0.05:10" — steps must increase: 10 is not after 20'),
    ("0.1:20, 0.05:20", '"0.05:20" — steps must increase: 20 is not after 20'),
    ("0.1, 0.05:10", '"0.05:10" comes after "0.1", which already lasts to the end'),
    ("0.1:-1, 0.05", '"0.05" comes after "0.1:-1"'),
    ("0.1:10,, 0.05", "has an empty entry"),
    ("0.1:10, 0.05,", "has an empty entry"),
])
def test_bad_schedules_are_refused_naming_the_token(text, message):
    with pytest.raises(UserError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_presets_parse_and_have_distinct_keys():
    assert len({preset.key for preset in PRESETS}) == len(PRESETS) == 3
    for preset in PRESETS:
        assert parse(preset.text).format() == preset.text
        assert preset.label and preset.why


# --- properties ---------------------------------------------------------------------------------------------------

rates = st.floats(min_value=1e-9, max_value=10.0, allow_nan=False, allow_infinity=False)


@st.composite
def schedules(draw):
    bounds = sorted(draw(st.sets(st.integers(1, 10_000), min_size=0, max_size=6)))
    spans = [RateSpan(draw(rates), bound) for bound in bounds]
    if not spans or draw(st.booleans()):
        spans.append(RateSpan(draw(rates), None))
    return LearningRateSchedule(tuple(spans))


@given(schedules())
def test_format_then_parse_gives_the_same_schedule(schedule):
    assert parse(schedule.format()) == schedule


@given(schedules())
def test_each_listed_rate_holds_from_the_step_after_the_previous_bound_to_its_own(schedule):
    start = 1
    for span in schedule.spans:
        end = span.until_step if span.until_step is not None else start + 1000
        for step in {start, (start + end) // 2, end}:
            assert schedule.rate_at(step) == span.rate
        start = end + 1


@given(schedules(), st.integers(1, 20_000))
def test_the_rate_changes_only_at_listed_bounds(schedule, step):
    last = schedule.last_step
    if last is not None and step >= last:
        return
    bounds = {span.until_step for span in schedule.spans}
    if step not in bounds:
        assert schedule.rate_at(step + 1) == schedule.rate_at(step)


@given(schedules(), st.integers(1, 20_000))
def test_stop_step_is_the_asked_steps_capped_by_the_last_bound(schedule, max_steps):
    stop = schedule.stop_step(max_steps)
    assert stop <= max_steps
    assert stop == max_steps or stop == schedule.last_step
    schedule.rate_at(stop)  # every step the run takes has a rate
