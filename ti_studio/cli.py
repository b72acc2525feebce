"""``python -m ti_studio <stage> ...``: the stable command-line contract (DESIGN §4).

Exit 0 on success, exit 2 with one line on stderr for bad input (:class:`UserError`), ``--json`` prints a
machine-readable summary on stdout. Human lines (progress, per-file notes) go to stdout, or to stderr under
``--json`` so they never mix with the summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from . import __version__
from .errors import UserError

#: Subcommand modules under ``ti_studio.commands``, in the order the product's stages run.
COMMANDS = ("crop", "tag", "captions", "train", "compare", "app")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="python -m ti_studio", description="TI Studio: photos to embeddings.")
    parser.add_argument("--version", action="version", version=f"ti_studio {__version__}")
    subparsers = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name in COMMANDS:
        importlib.import_module(f"ti_studio.commands.{name}").register(subparsers)
    for sub in subparsers.choices.values():
        sub.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stream = sys.stderr if args.json else sys.stdout
    report: Callable[[str], None] = lambda line: print(line, file=stream, flush=True)
    try:
        summary = args.handler(args, report)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    return 0
