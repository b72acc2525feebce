"""The loss and embedding-norm chart, as inline SVG.

SVG rather than a plotting component because it travels inside the progress text (``shared.state.textinfo``) that
the browser already polls twice a second: the chart moves during training with no extra request, queue slot or
plotting library, in WebUI and in the standalone app alike.
"""

from __future__ import annotations

import html
import math
from typing import Sequence

WIDTH, HEIGHT = 640, 200
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 52, 14, 26
#: More points than pixels only costs bytes on every poll.
MAX_POINTS = 400
#: The per-step loss is noisy (one random timestep each); its moving average shows the trend.
SMOOTHING = 0.9


def chart_svg(rows: Sequence[dict]) -> str:
    """A chart of ``loss.csv`` rows (``step``, ``loss``, ``norm``; ``fixed_loss`` where measured)."""
    rows = [row for row in rows if _finite(row.get("loss"))]
    if len(rows) < 2:
        return "<div class='ti-studio-chart-empty'>The loss chart appears after the first steps.</div>"
    steps = [row["step"] for row in rows]
    smoothed = _moving_average([row["loss"] for row in rows])
    norms = [row.get("norm") for row in rows]
    x_of = _scale(min(steps), max(steps), PAD_LEFT, WIDTH - PAD_RIGHT)
    loss_low, loss_high = _bounds(smoothed)
    y_loss = _scale(loss_low, loss_high, HEIGHT - PAD_BOTTOM, PAD_TOP)
    parts = [f"<svg class='ti-studio-chart' viewBox='0 0 {WIDTH} {HEIGHT}' width='100%' "
             f"xmlns='http://www.w3.org/2000/svg' role='img' aria-label='loss and embedding norm by step'>",
             f"<rect x='{PAD_LEFT}' y='{PAD_TOP}' width='{WIDTH - PAD_LEFT - PAD_RIGHT}' "
             f"height='{HEIGHT - PAD_TOP - PAD_BOTTOM}' class='ti-studio-chart-frame' fill='none' stroke='#8886'/>",
             _polyline(steps, smoothed, x_of, y_loss, "ti-studio-chart-loss", "#e06c3c")]
    known_norms = [(step, norm) for step, norm in zip(steps, norms) if _finite(norm)]
    if known_norms:
        norm_low, norm_high = _bounds([norm for _, norm in known_norms])
        y_norm = _scale(norm_low, norm_high, HEIGHT - PAD_BOTTOM, PAD_TOP)
        parts.append(_polyline([s for s, _ in known_norms], [n for _, n in known_norms], x_of, y_norm,
                               "ti-studio-chart-norm", "#3c8ce0"))
        parts.append(_axis_labels(norm_low, norm_high, WIDTH - PAD_RIGHT + 4, "start", "#3c8ce0"))
    fixed = [(row["step"], row["fixed_loss"]) for row in rows if _finite(row.get("fixed_loss"))]
    for step, value in fixed:
        if loss_low <= value <= loss_high:
            parts.append(f"<circle cx='{x_of(step):.1f}' cy='{y_loss(value):.1f}' r='2.5' fill='#e06c3c'>"
                         f"<title>step {step}: fixed-noise loss {value:.4f}</title></circle>")
    parts.append(_axis_labels(loss_low, loss_high, PAD_LEFT - 4, "end", "#e06c3c"))
    parts.append(f"<text x='{PAD_LEFT}' y='{HEIGHT - 6}' font-size='11' fill='currentColor'>step {min(steps)}</text>")
    parts.append(f"<text x='{WIDTH - PAD_RIGHT}' y='{HEIGHT - 6}' font-size='11' text-anchor='end' "
                 f"fill='currentColor'>step {max(steps)}</text>")
    parts.append(f"<text x='{WIDTH / 2:.0f}' y='{HEIGHT - 6}' font-size='11' text-anchor='middle' "
                 f"fill='currentColor'><tspan fill='#e06c3c'>loss (average)</tspan> · "
                 f"<tspan fill='#3c8ce0'>embedding norm</tspan></text>")
    parts.append("</svg>")
    return "".join(parts)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _moving_average(values: Sequence[float]) -> list[float]:
    """An exponential moving average, bias-corrected so the first points are not pulled towards zero."""
    average, out = 0.0, []
    for count, value in enumerate(values, start=1):
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        out.append(average / (1 - SMOOTHING**count))
    return out


def _bounds(values: Sequence[float]) -> tuple[float, float]:
    """The axis range: the values plus a margin, and at least 10 % of their size, so a nearly constant series
    (the norm under norm control) draws as the flat line it is rather than as magnified rounding noise."""
    low, high = min(values), max(values)
    middle = (low + high) / 2
    half = max((high - low) * 0.55, abs(middle) * 0.05, 1e-6)
    return middle - half, middle + half


def _scale(low: float, high: float, out_low: float, out_high: float):
    span = (high - low) or 1.0
    return lambda value: out_low + (value - low) / span * (out_high - out_low)


def _polyline(xs: Sequence[float], ys: Sequence[float], x_of, y_of, css_class: str, colour: str) -> str:
    stride = max(1, math.ceil(len(xs) / MAX_POINTS))
    picked = list(range(0, len(xs), stride))
    if picked[-1] != len(xs) - 1:
        picked.append(len(xs) - 1)
    points = " ".join(f"{x_of(xs[i]):.1f},{y_of(ys[i]):.1f}" for i in picked)
    return (f"<polyline class='{css_class}' points='{points}' fill='none' stroke='{colour}' stroke-width='1.6' "
            f"stroke-linejoin='round'/>")


def _axis_labels(low: float, high: float, x: float, anchor: str, colour: str) -> str:
    return "".join(
        f"<text x='{x:.0f}' y='{y:.0f}' font-size='11' text-anchor='{anchor}' fill='{colour}'>"
        f"{html.escape(f'{value:.3g}')}</text>"
        for value, y in ((high, PAD_TOP + 10), (low, HEIGHT - PAD_BOTTOM)))
