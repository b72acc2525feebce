"""``compare RUN_DIR``: the txt2img X/Y/Z preset comparing a run's snapshots against prompt variations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import fileio
from ..backends.diffusers_loading import DEFAULT_MODEL
from ..compare.comparison import Comparison, compare_run
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
    parser.add_argument("--grid", metavar="OUT.png",
                        help="also render the comparison grid standalone (snapshots x Y values) into this image")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="for --grid: diffusers folder, single-file .safetensors/.ckpt, or Hub repo id "
                             "(default: SD 1.5)")
    parser.add_argument("--device", default="auto", help="for --grid: auto, cpu, cuda, cuda:1 ...")
    parser.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace, _report) -> dict:
    """stdout carries exactly the preset (ready to pipe or paste), so every note goes to stderr."""
    grid_path = _grid_path(args.grid) if args.grid else None
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
        print(comparison.infotext, flush=True)  # the preset itself is the command's output (under --json: summary)
    summary = comparison.to_json()
    if grid_path is not None:
        _render(args, comparison, grid_path)
        summary["grid"] = str(grid_path)
    return summary


def _grid_path(text: str) -> Path:
    path = Path(text).expanduser()
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise UserError(f"--grid must name a .png, .jpg or .webp file, got {text!r}")
    if path.is_dir():
        raise UserError(f"--grid {text!r} is a folder; name the image file")
    return path


def _render(args: argparse.Namespace, comparison: Comparison, path: Path) -> None:
    """Render the grid the preset describes on ``--model`` and save it atomically (Ctrl-C leaves no file)."""
    from ..backends.diffusers_backend import DiffusersBackend
    from ..compare.grid import GridRequest, render_grid

    request = GridRequest.for_comparison(comparison)

    def note(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    note(f"loading {args.model}")
    backend = DiffusersBackend.load(args.model, device=args.device)
    image = render_grid(backend, request, progress=lambda done, total: note(f"grid: image {done}/{total}"))
    with fileio.atomic_path(path) as tmp:
        image.save(tmp, format=_FORMATS[path.suffix.lower()])
    note(f"saved the grid ({len(request.snapshots)} snapshots x {len(request.rows)} prompts) to {path}")


_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def _steps(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--steps must be whole numbers separated by commas, got {text!r}") from None
