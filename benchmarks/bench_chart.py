"""What the live loss chart costs training: the progress text of every step, drawn every step vs at most every
CHART_REDRAW_S (what the Train tab does; the browser polls twice a second).

    .venv/bin/python benchmarks/bench_chart.py [--steps 3000] [--step-ms 60] [--save-every 50]

A training run is simulated on a clock: each step takes ``--step-ms`` of training (60 ms: SD 1.5 at 512 px, batch 1,
on a fast GPU) plus the time its progress text really took to make here, measured with ``perf_counter``. The loss
rows are random but shaped like ``loss.csv`` (a fixed-noise loss at each snapshot). Baseline, in the same process:
the chart drawn at every step. Reported: the time spent on progress text over the run, and as a share of the run.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ti_studio.training.trainer import StepReport  # noqa: E402
from ti_studio.ui.loss_chart import chart_svg  # noqa: E402
from ti_studio.ui.train_tab import CHART_REDRAW_S, LiveChart, progress_html  # noqa: E402


def simulate(steps: int, step_s: float, save_every: int, throttled: bool) -> tuple[float, float]:
    """(seconds spent making progress text, simulated run length in seconds)."""
    clock = [0.0]
    chart = LiveChart(clock=lambda: clock[0])
    rng = random.Random(0)
    rows: list[dict] = []
    spent = 0.0
    for step in range(1, steps + 1):
        clock[0] += step_s
        saved = step % save_every == 0
        rows.append({"step": step, "loss": rng.random(), "norm": 0.3 + step * 1e-4,
                     "fixed_loss": rng.random() if saved else None})
        report = StepReport(step=step, total_steps=steps, loss=rows[-1]["loss"], learning_rate=0.005,
                            norm=rows[-1]["norm"], snapshot=Path(f"x-{step}.safetensors") if saved else None)
        start = time.perf_counter()
        svg = chart.svg(rows, now=saved) if throttled else chart_svg(rows)
        progress_html(report, svg)
        took = time.perf_counter() - start
        spent += took
        clock[0] += took
    return spent, clock[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--step-ms", type=float, default=60.0)
    parser.add_argument("--save-every", type=int, default=50)
    args = parser.parse_args()
    step_s = args.step_ms / 1000
    every, every_run = simulate(args.steps, step_s, args.save_every, throttled=False)
    ours, ours_run = simulate(args.steps, step_s, args.save_every, throttled=True)
    print(f"{args.steps} steps of {args.step_ms:g} ms, a snapshot every {args.save_every}, redraw limit "
          f"{CHART_REDRAW_S} s")
    print("| chart drawn | progress text, s | share of the run |")
    print("|---|---|---|")
    print(f"| every step (baseline) | {every:.2f} | {every / every_run:.2%} |")
    print(f"| at most every {CHART_REDRAW_S} s and at snapshots (ours) | {ours:.2f} | {ours / ours_run:.2%} |")
    print(f"baseline / ours: {every / ours:.1f}x")


if __name__ == "__main__":
    main()
