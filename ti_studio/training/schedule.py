"""Learning-rate schedules in the WebUI's own syntax, so schedules from guides and from the Train tab paste as-is.

``"0.05:10, 0.02:20, 0.005"`` is a list of ``rate:step`` entries: 0.05 for steps 1–10, 0.02 for steps 11–20, then
0.005 to the end. The meaning follows the host's ``learn_schedule.py`` (A1111 v1.10.1, read for behaviour):

- Steps count optimizer steps, 1-based, and "until step N" includes step N: the host switches rate once its
  completed-step counter reaches N, so ``0.05:10`` covers exactly the first ten updates.
- A trailing bare rate, or ``rate:-1``, lasts to the end of training and ends the list.
- If the last entry has a step, training stops there: ``"0.005:100"`` trains 100 steps even when more were asked
  for (the host's scheduler reports "finished"). :meth:`LearningRateSchedule.stop_step` gives that count.
- Resuming at step S uses the rates for steps after S, which a lookup by step number gives for free.

Where the host is lenient we refuse with a message naming the token, because its leniency trains something other
than what the user wrote: it silently skips entries with a step of 0 or below, ignores everything after an
open-ended entry, reads ``"0.1:2:3"`` as ``0.1`` to the end, and accepts zero, negative, NaN and infinite rates and
steps that go backwards (it then stops one step later).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import UserError

_RATE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_STEP = re.compile(r"[+-]?\d+")
#: The host's spelling of "until the end" in a ``rate:step`` entry.
_TO_THE_END = -1


@dataclass(frozen=True)
class RateSpan:
    """``rate`` for every step up to and including ``until_step``; ``None`` means to the end of training."""

    rate: float
    until_step: int | None

    def format(self) -> str:
        return repr(self.rate) if self.until_step is None else f"{self.rate!r}:{self.until_step}"


@dataclass(frozen=True)
class LearningRateSchedule:
    """A piecewise-constant learning rate over 1-based optimizer steps. Build it with :meth:`parse`.

    ``spans`` have strictly increasing ``until_step``s; only the last may be open-ended (``until_step=None``).
    """

    spans: tuple[RateSpan, ...]

    @classmethod
    def parse(cls, text: str) -> LearningRateSchedule:
        """Read the host's syntax; a :class:`UserError` naming the offending entry when it is not valid."""
        tokens = [token.strip() for token in text.split(",")]
        if tokens == [""]:
            raise UserError("learning-rate schedule is empty: give a rate such as 0.005, or rate:step entries "
                            "such as 0.05:10, 0.005")
        spans: list[RateSpan] = []
        for previous, token in zip([""] + tokens, tokens):
            if not token:
                raise UserError(f'learning-rate schedule: "{text.strip()}" has an empty entry (two commas in a row, '
                                "or a comma at an end)")
            if spans and spans[-1].until_step is None:
                raise UserError(f'learning-rate schedule: "{token}" comes after "{previous}", which already lasts '
                                "to the end of training")
            span = _parse_span(token)
            if spans and span.until_step is not None and span.until_step <= spans[-1].until_step:
                raise UserError(f'learning-rate schedule: "{token}" — steps must increase: {span.until_step} is not '
                                f"after {spans[-1].until_step}")
            spans.append(span)
        return cls(tuple(spans))

    def format(self) -> str:
        """The schedule in the host's syntax; :meth:`parse` reads it back to an equal schedule."""
        return ", ".join(span.format() for span in self.spans)

    def __str__(self) -> str:
        return self.format()

    @property
    def last_step(self) -> int | None:
        """The step the schedule ends training at, or ``None`` when its last rate lasts to the end."""
        return self.spans[-1].until_step

    def stop_step(self, max_steps: int) -> int:
        """How many steps a run asked for ``max_steps`` trains: the schedule's last step stops it earlier."""
        return max_steps if self.last_step is None else min(max_steps, self.last_step)

    def rate_at(self, step: int) -> float:
        """The rate for optimizer step ``step``, counted from 1 (the first update is step 1, as in the snapshot
        names ``<name>-<step>``). Past :attr:`last_step` there is no rate: the run should have stopped."""
        if step < 1 or (self.last_step is not None and step > self.last_step):
            raise ValueError(f"step {step} is outside the schedule {self.format()!r}")
        return next(span.rate for span in self.spans if span.until_step is None or step <= span.until_step)


def _parse_span(token: str) -> RateSpan:
    rate_text, *rest = (part.strip() for part in token.split(":"))
    if len(rest) > 1:
        raise UserError(f'learning-rate schedule: "{token}" — write rate:step, with one colon')
    if not _RATE.fullmatch(rate_text):
        raise UserError(f'learning-rate schedule: "{token}" — the rate must be a number such as 0.005 or 5e-3')
    rate = float(rate_text)
    if not math.isfinite(rate):
        raise UserError(f'learning-rate schedule: "{token}" — the rate is too large')
    if rate <= 0:
        raise UserError(f'learning-rate schedule: "{token}" — the rate must be above 0')
    if not rest:
        return RateSpan(rate, None)
    step_text = rest[0]
    if not _STEP.fullmatch(step_text):
        raise UserError(f'learning-rate schedule: "{token}" — the step must be a whole number')
    step = int(step_text)
    if step == _TO_THE_END:
        return RateSpan(rate, None)
    if step < 1:
        raise UserError(f'learning-rate schedule: "{token}" — the step must be 1 or more (or -1 for "to the end")')
    return RateSpan(rate, step)


@dataclass(frozen=True)
class SchedulePreset:
    """A schedule the UI offers by name, with the reason to pick it."""

    key: str
    label: str
    text: str
    why: str


TUTORIAL = SchedulePreset(
    "tutorial", "Tutorial (fast start, step decay)",
    "0.05:10, 0.02:20, 0.01:60, 0.005:200, 0.002:500, 0.001:3000, 0.0005",
    "The schedule most A1111 guides paste: large first steps, then a steep decay. Its first rates move the vector "
    "far from real words, so keep norm control on with it.")
CONSTANT = SchedulePreset(
    "constant", "Constant 0.005",
    "0.005",
    "The WebUI Train tab's default rate, and the rate of the Textual Inversion papers' baselines.")
GENTLE = SchedulePreset(
    "gentle", "Gentle (0.005, halved twice)",
    "0.005:500, 0.0025:1500, 0.001",
    "Never above the host's default 0.005; halved after 500 steps, where face embeddings start to overfit, and "
    "settling at 0.001. For retrying a run that over-baked with the tutorial schedule.")
#: What the UI offers, in this order.
PRESETS: tuple[SchedulePreset, ...] = (TUTORIAL, CONSTANT, GENTLE)
