"""``train``: create and train an embedding on a dataset folder, standalone over diffusers."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from ..backends.diffusers_loading import DEFAULT_MODEL
from ..errors import UserError
from ..training.config import TrainConfig
from ..training.schedule import TUTORIAL
from ..training.trainer import StepReport, TrainCallbacks, check_run_folder, prepare_data, train



def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a Textual Inversion embedding on a dataset folder",
                                   description="Snapshots go to OUT/NAME/embeddings/NAME-STEP.safetensors.")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="diffusers folder, single-file .safetensors/.ckpt, or Hub repo id (default: SD 1.5)")
    parser.add_argument("--data", required=True, help="dataset folder: images with .txt captions")
    parser.add_argument("--name", required=True, help="the embedding's name: the word you will use in prompts")
    parser.add_argument("--vectors", type=int, default=2, help="vectors per token (default 2)")
    parser.add_argument("--init-text", default="", help="starting words (default blank: zero vectors)")
    parser.add_argument("--lr", default=TUTORIAL.text, help=f"learning-rate schedule (default {TUTORIAL.text!r})")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--size", type=int, help="training size in pixels (default: the model's native size)")
    parser.add_argument("--template", default="name_filewords", help="template name or .txt path")
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--preview-every", type=int, default=500, help="0 turns previews off")
    parser.add_argument("--preview-prompt", default="a photo of [name]")
    parser.add_argument("--out", default="ti-studio-runs", help="folder for runs (default ./ti-studio-runs)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its newest snapshot")
    parser.add_argument("--norm-control", choices=("off", "cap", "directional"), default=TrainConfig.norm_control)
    parser.add_argument("--no-shuffle-tags", action="store_true", help="keep caption tags in their order")
    parser.add_argument("--tag-dropout", type=float, default=0.0)
    parser.add_argument("--latent-sampling", choices=("once", "deterministic", "random"), default="once")
    parser.add_argument("--flip", action="store_true", help="also train on mirrored images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=("safetensors", "pt", "both"), default="safetensors")
    parser.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace, report) -> dict:
    config = TrainConfig(
        name=args.name, vectors=args.vectors, init_text=args.init_text, learning_rate=args.lr, steps=args.steps,
        batch_size=args.batch, grad_accum=args.grad_accum, size=args.size, template=args.template,
        save_every=args.save_every, preview_every=args.preview_every, preview_prompt=args.preview_prompt,
        norm_control=args.norm_control, shuffle_tags=not args.no_shuffle_tags, tag_dropout=args.tag_dropout,
        latent_sampling=args.latent_sampling, flip=args.flip, seed=args.seed, precision=args.precision,
        output_format=args.format,
    )
    run_dir = Path(args.out) / args.name
    # Bad data or a clash with an existing run is reported before minutes are spent loading the model.
    prepare_data(config, args.data)
    check_run_folder(config, run_dir, args.resume)
    from ..backends.diffusers_backend import DiffusersBackend

    report(f"loading {args.model}")
    backend = DiffusersBackend.load(args.model, device=args.device, precision=args.precision)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set()) if _main_thread() else None
    try:
        result = train(config, backend, args.data, run_dir, resume=args.resume,
                       callbacks=TrainCallbacks(on_step=_printer(report), should_stop=stop.is_set,
                                                on_status=report))
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    summary = {
        "run_dir": str(result.run_dir), "steps_done": result.steps_done, "finished": result.finished,
        "stopped_reason": result.stopped_reason, "snapshots": [str(path) for path in result.snapshots],
        "last_snapshot": str(result.last_good_snapshot) if result.last_good_snapshot else None,
    }
    if result.stopped_reason and result.stopped_reason != "interrupted":
        raise UserError(result.stopped_reason)
    report(f"{'finished' if result.finished else 'stopped'} at step {result.steps_done}; "
           f"snapshots in {result.run_dir / 'embeddings'}")
    return summary


def _printer(report):
    def on_step(step: StepReport) -> None:
        if step.snapshot or step.step == 0:
            fixed = f", fixed-noise loss {step.fixed_loss:.4f}" if step.fixed_loss is not None else ""
            saved = f" -> {step.snapshot.name}" if step.snapshot else ""
            report(f"step {step.step}/{step.total_steps}: loss {step.loss:.4f}, lr {step.learning_rate:g}, "
                   f"norm {step.norm:.3f}{fixed}{saved}")
    return on_step


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
