"""The txt2img preset: a generation infotext that sets up an X/Y/Z plot of snapshots against prompt variations.

The host's "paste parameters" reads the same infotext format it writes under every image: the prompt, an optional
``Negative prompt:`` line, and a last line of ``key: value`` pairs. ``Script: X/Y/Z plot`` selects the script, and
``X Type``/``X Values``/``Y Type``/``Y Values`` fill its axes, so the user only presses Generate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import UserError
from ..training.backend import PREVIEW_SAMPLER

#: Hairstyles: the tutorial's way to see whether an embedding still listens to the prompt.
DEFAULT_Y_VALUES = ("short hair", "long hair", "ponytail", "curly hair")


@dataclass(frozen=True)
class XyzPreset:
    names: list[str]  # X: the snapshots' comparison names
    y_values: list[str]  # Y: prompt variations ([] = no Y axis)
    prompt_template: str = "a photo of [name], [y]"
    negative_prompt: str = ""
    steps: int = 20
    sampler: str = PREVIEW_SAMPLER
    cfg_scale: float = 7.0
    seed: int = 1
    width: int = 512
    height: int = 512

    def __post_init__(self) -> None:
        if not self.names:
            raise UserError("choose at least one snapshot to compare")
        for values, axis in ((self.names, "snapshot names"), (self.y_values, "Y values")):
            overlapping = [(a, b) for a in values for b in values if a != b and a in b]
            if overlapping:
                a, b = overlapping[0]
                raise UserError(f"{axis}: {a!r} is part of {b!r}; Prompt S/R would replace it inside {b!r}")
            if len(set(values)) != len(values):
                raise UserError(f"{axis}: a value is listed twice")
        if "[name]" not in self.prompt_template:
            raise UserError("the compare prompt must contain [name]")
        if self.y_values and "[y]" not in self.prompt_template:
            raise UserError("the compare prompt must contain [y] when Y values are given")

    @property
    def prompt(self) -> str:
        """The prompt with the first X and Y values: Prompt S/R searches for exactly these."""
        return self.cell_prompt(self.names[0], self.y_values[0] if self.y_values else "")

    def cell_prompt(self, name: str, y_value: str) -> str:
        """The template with ``name`` and ``y_value`` filled in, without a dangling comma where ``y_value`` is ""."""
        text = self.prompt_template.replace("[name]", name).replace("[y]", y_value)
        return text.strip().rstrip(",").strip()

    def infotext(self) -> str:
        fields = {
            "Steps": self.steps, "Sampler": self.sampler, "CFG scale": self.cfg_scale, "Seed": self.seed,
            "Size": f"{self.width}x{self.height}", "Script": "X/Y/Z plot",
            "X Type": "Prompt S/R", "X Values": ",".join(_csv_value(name) for name in self.names),
        }
        if self.y_values:
            fields["Y Type"] = "Prompt S/R"
            fields["Y Values"] = ",".join(_csv_value(value) for value in self.y_values)
        lines = [self.prompt]
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in fields.items()))
        return "\n".join(lines)


def _csv_value(value: str) -> str:
    """One value of an axis list, which the host reads with ``csv.reader``: quote it when it holds a comma."""
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"') else value


def _quote(value) -> str:
    """Infotext values holding ``,``, ``:`` or a newline are JSON strings, as the host's own infotexts quote them."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text
