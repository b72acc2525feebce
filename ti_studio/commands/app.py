"""``app``: the TI Studio tab as a standalone web app on 127.0.0.1 (no WebUI needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..backends.diffusers_loading import DEFAULT_MODEL


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "app", help="open the TI Studio tab in the browser, without WebUI",
        description="Starts without loading a model: cropping and tagging need none. Training loads --model when "
                    "a run starts (SD 1.5 is downloaded on first use).")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="diffusers folder, single-file .safetensors/.ckpt, or Hub repo id (default: SD 1.5)")
    parser.add_argument("--port", type=int, default=7870)
    parser.add_argument("--projects", default="ti-studio-projects",
                        help="folder holding one subfolder per project (default ./ti-studio-projects)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.set_defaults(handler=run_app)


def run_app(args: argparse.Namespace, report) -> dict:
    from ..ui.app import serve

    serve(model=args.model, port=args.port, projects_root=Path(args.projects).resolve(), device=args.device)
    return {"stopped": True}
