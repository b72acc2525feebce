"""``compare RUN_DIR``: the txt2img X/Y/Z preset comparing a run's snapshots against prompt variations."""

from __future__ import annotations

import argparse
import sys

from ..compare.comparison import compare_run
from ..compare.xyz import DEFAULT_Y_VALUES
from ..errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="print the txt2img X/Y/Z preset comparing a run's snapshots",
        description="Paste the printed text into txt2img's prompt box and press the 'read generation parameters' "
                    "button (the arrow under Generate); the snapshots must be in the WebUI's embeddings folder "
                    "under their comparison names (--export does that).")
    parser.add_argument("run_dir", help="a run folder written by train (OUT/NAME)")
    parser.add_argument("--steps", help="snapshot steps to compare, e.g. 500,1000,1500 (default: spread + best)")
    parser.add_argument("--y", default=",".join(DEFAULT_Y_VALUES),
                        help='Y axis prompt variations, comma-separated ("" for none)')
    parser.add_argument("--prompt", default="a photo of [name], [y]", help="[name] and [y] are filled in")
    parser.add_argument("--negative", default="")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--export", metavar="DIR",
                        help="copy the chosen snapshots into DIR (e.g. the WebUI's embeddings folder) "
                             "under their comparison names")
    parser.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace, _report) -> dict:
    """stdout carries exactly the preset (ready to pipe or paste), so every note goes to stderr."""
    comparison = compare_run(args.run_dir, steps=_steps(args.steps), y_values=args.y.split(","),
                             prompt_template=args.prompt, negative_prompt=args.negative, seed=args.seed,
                             export_to=args.export)
    if comparison.exported:
        print(f"copied {len(comparison.exported)} snapshots into {args.export}", file=sys.stderr)
    for snapshot in comparison.snapshots:
        fixed = f"{snapshot.fixed_loss:.4f}" if snapshot.fixed_loss is not None else "-"
        norm = f"{snapshot.norm:.3f}" if snapshot.norm is not None else "-"
        print(f"{snapshot.compare_name}: step {snapshot.step}, fixed-noise loss {fixed}, norm {norm}",
              file=sys.stderr)
    if not args.json:
        print(comparison.infotext)  # the preset itself is the command's output (in the summary under --json)
    return comparison.to_json()


def _steps(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--steps must be whole numbers separated by commas, got {text!r}") from None
