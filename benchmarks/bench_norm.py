"""Norm control, measured: what each mode does to the embedding's norm, the loss, and the rest of the prompt.

    .venv/bin/python benchmarks/bench_norm.py [--steps 300] [--seeds 0,1,2]

On the tiny diffusers SD1 of the tests (random weights, the real CLIP tokenizer) and 8 real photo crops, with the
tutorial's schedule ("0.05:10, 0.02:20, 0.01:60, 0.005:200, 0.002:500, 0.001:3000, 0.0005"), 2 vectors initialised
from "woman", each mode trains from the same seed. Reported per mode (mean over seeds):

- norm / vocabulary: the vectors' mean norm over the vocabulary's mean token norm (a real word is 1x);
- fixed-loss fall: the deterministic evaluation loss (fixed images, noise, timesteps) at the end vs step 0;
- prompt drift: 1 - cosine similarity of the text encoder's states for everything after the embedding in
  "a photo of NAME wearing a red hat, on a beach", trained vectors vs the init word's vectors. A swollen token
  dominates the layer norms and attention of what follows it (the research's "ignores my prompt"): higher drift
  means the rest of the prompt is heard less like itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import photos  # noqa: E402
import tiny_sd  # noqa: E402
from ti_studio.backends.diffusers_backend import DiffusersBackend  # noqa: E402
from ti_studio.training.config import TrainConfig  # noqa: E402
from ti_studio.training.embedding_file import load_embedding  # noqa: E402
from ti_studio.training.run_files import read_loss_log  # noqa: E402
from ti_studio.training.schedule import TUTORIAL  # noqa: E402
from ti_studio.training.trainer import train  # noqa: E402

NAME = "tiface"
PROBE = f"a photo of {NAME} wearing a red hat, on a beach"
PREFIX_TOKENS = 3  # "a photo of"


def make_dataset(folder: Path) -> None:
    folder.mkdir()
    sources = [photos.astronaut(), photos.camera()]
    for index in range(8):
        image = sources[index % 2]
        left, top = (index * 37) % 150, (index * 53) % 150
        image.crop((left, top, left + 362, top + 362)).save(folder / f"{index}.png")
        (folder / f"{index}.txt").write_text("1girl, short hair, smile", encoding="utf-8")


def prompt_drift(backend: DiffusersBackend, trained: torch.Tensor, start: torch.Tensor) -> float:
    with torch.no_grad():
        after = 1 + PREFIX_TOKENS + trained.shape[0]  # BOS, "a photo of", the embedding's slots
        learned = backend.encode_prompts([PROBE], NAME, {"emb_params": trained})[0, after:]
        reference = backend.encode_prompts([PROBE], NAME, {"emb_params": start})[0, after:]
    return float(1 - torch.nn.functional.cosine_similarity(learned, reference, dim=-1).mean())


def measure(backend, dataset: Path, runs: Path, mode: str, seed: int, steps: int) -> dict:
    config = TrainConfig(name=NAME, vectors=2, init_text="woman", learning_rate=TUTORIAL.text, steps=steps,
                         save_every=steps, preview_every=0, size=64, norm_control=mode, seed=seed)
    result = train(config, backend, dataset, runs / f"{mode}-{seed}")
    fixed = [row["fixed_loss"] for row in read_loss_log(result.run_dir / "loss.csv") if row["fixed_loss"] is not None]
    trained = load_embedding(result.last_good_snapshot).vectors["emb_params"]
    start = backend.init_vectors("woman", 2)["emb_params"].cpu()
    vocabulary = backend.text_encoders()[0].vocabulary_norm
    return {"norm": float(trained.norm(dim=1).mean()) / vocabulary, "fall": 1 - fixed[-1] / fixed[0],
            "drift": prompt_drift(backend, trained, start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backend = DiffusersBackend.load(tiny_sd.build_tiny_sd(tmp / "model", "sd1"), device="cpu")
        make_dataset(tmp / "data")
        print(f"tiny SD1, 8 photos at 64 px, {args.steps} steps, tutorial schedule, seeds {seeds}")
        print("| norm control | norm / vocabulary | fixed-loss fall | prompt drift |")
        print("|---|---|---|---|")
        for mode in ("off", "cap", "directional"):
            results = [measure(backend, tmp / "data", tmp / "runs", mode, seed, args.steps) for seed in seeds]
            mean = {key: statistics.mean(r[key] for r in results) for key in results[0]}
            print(f"| {mode} | {mean['norm']:.2f}x | {mean['fall']:.2%} | {mean['drift']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
