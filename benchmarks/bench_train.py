"""Training step time: our trainer against the UNet floor and a loop written like the diffusers example script.

    .venv/bin/python benchmarks/bench_train.py [--batch 1 4] [--steps 25]
    # on a GPU, the real SD1.5 architecture (random weights) at 512 px:
    .venv/bin/python benchmarks/bench_train.py --device cuda --real-sd15 --size 512 --precision bf16 --batch 1 4

Model (default): SD1-shaped, sized so the UNet dominates on 2 CPU cores, as in the trainer research's CPU
measurements: UNet channels (128, 256, 256), 1 layer per block, 8 heads, context 768 (25.1 M parameters); CLIP text
encoder hidden 768, 2 layers, 12 heads, the real 49,408-token vocabulary and tokenizer; VAE 32 channels on 4 levels
(8x); 256 px images. ``--real-sd15``: SD1.5's UNet, VAE and 12-layer text encoder. Seeded random weights with the
test model's "make trainable" treatment (``tests/tiny_sd.py``), written as a diffusers folder in a temporary
directory. Data: 8 crops of scikit-image's real photos, each a PNG with a caption ``.txt``.

Variants, all at the same batch and size:
- floor: the UNet alone, forward + backward to the conditioning ``[B, 77, 768]`` (weights frozen, SDPA). Also
  timed, apart from it: the text encoder's forward + backward to its token embeddings, which the floor leaves out.
- ours: the product's ``train()`` on ``DiffusersBackend.load(folder)``; a step is the wall time from the end of one
  ``on_step`` callback to the start of the next.
- baseline: diffusers ``examples/textual_inversion/textual_inversion.py`` re-written (SDPA, no checkpointing, fp32;
  on a GPU in half precision the text encoder stays fp32 under autocast, as accelerate runs it): a placeholder
  token added to the tokenizer, the whole token-embedding matrix trained with AdamW and every other row restored
  after each step, images read and VAE-encoded every step.
The machine's speed drifts (shared CPUs), so the floor is measured between every two steps of each trainer, untimed
there, and each trainer is divided by the floor of its own run. Steps 1-3 (warm-up) and the last one (ours saves a
snapshot there) are dropped, with the floor repetitions beside them; medians of the rest. Peak memory needs a
process per variant: each runs again, briefly, in a child process (``--only``) that reports its peak RSS (CUDA:
peak allocated memory). ``torch.set_flush_denormal(True)``: random weights can leave subnormal floats that slow a
CPU ~10x.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import photos  # noqa: E402  (test helper: real photos shipped by scikit-image)
from tiny_sd import make_trainable, save_diffusers_folder  # noqa: E402  (the test model's recipe)
from ti_studio.backends.diffusers_backend import DiffusersBackend  # noqa: E402
from ti_studio.training.config import TrainConfig  # noqa: E402
from ti_studio.training.trainer import TrainCallbacks, train  # noqa: E402

VARIANTS = ("floor", "ours", "baseline")
WARMUP_STEPS = 3
TEXT_WIDTH = 768
#: (photo, crop box, caption): crops of the real photos, all at least 256 px on their short side.
CROPS = [
    (photos.astronaut, (0, 0, 512, 512), "a woman in a space suit, flag, portrait"),
    (photos.astronaut, (96, 0, 416, 320), "a woman smiling, close-up"),
    (photos.astronaut, (0, 128, 512, 512), "a space suit, patches"),
    (photos.camera, (0, 0, 512, 512), "a man with a camera on a tripod, black and white"),
    (photos.camera, (120, 40, 440, 360), "a man in a coat, close-up, black and white"),
    (photos.coffee, (0, 0, 600, 400), "a cup of coffee on a table"),
    (photos.coffee, (120, 40, 460, 380), "a coffee cup, saucer, spoon"),
    (photos.coffee, (300, 0, 600, 300), "a table, wall"),
]
#: The first four of the example script's ``imagenet_templates_small``.
BASELINE_TEMPLATES = ["a photo of a {}", "a rendering of a {}", "a cropped photo of the {}", "the photo of a {}"]


# --- the model and the data --------------------------------------------------------------------------------------

def network_configs(real_sd15: bool, size: int) -> dict[str, dict]:
    """UNet, text encoder and VAE configs: SD1.5's, or the SD1-shaped CPU model's."""
    # diffusers' "attention_head_dim" of SD1 configs is the number of heads: 8
    unet = dict(sample_size=size // 8, cross_attention_dim=TEXT_WIDTH, attention_head_dim=8)
    text = dict(vocab_size=49408, hidden_size=TEXT_WIDTH, intermediate_size=3072, num_attention_heads=12,
                max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407,
                pad_token_id=49407, projection_dim=TEXT_WIDTH)
    vae = dict(latent_channels=4, sample_size=size, scaling_factor=0.18215,
               down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    if real_sd15:  # the UNet defaults are SD1's but for the context width
        text.update(num_hidden_layers=12)
        vae.update(block_out_channels=(128, 256, 512, 512), layers_per_block=2)
    else:
        unet.update(block_out_channels=(128, 256, 256), layers_per_block=1,
                    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
        text.update(num_hidden_layers=2)
        vae.update(block_out_channels=(32,) * 4, layers_per_block=1)
    return {"unet": unet, "text": text, "vae": vae}


def build_model(folder: Path, real_sd15: bool, size: int, seed: int = 0) -> Path:
    """A diffusers SD1 folder with seeded random weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    configs = network_configs(real_sd15, size)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text"]))
    unet, vae = UNet2DConditionModel(**configs["unet"]), AutoencoderKL(**configs["vae"])
    for network in (text_encoder, unet, vae):
        make_trainable(network)
    return save_diffusers_folder(folder, "sd1", text_encoder, unet, vae)


def write_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, (photo, box, caption) in enumerate(CROPS):
        photo().crop(box).save(folder / f"{index:02d}.png")
        (folder / f"{index:02d}.txt").write_text(caption, encoding="utf-8")
    return folder


# --- the floor ---------------------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def load_unet(model_dir: Path, device: torch.device, dtype: torch.dtype):
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet", torch_dtype=dtype)
    unet.requires_grad_(False).eval().to(device)
    unet.set_attn_processor(AttnProcessor2_0())
    return unet


class Floor:
    """The work no Textual Inversion trainer can skip, one repetition at a time, on frozen networks: the UNet's
    forward + backward to its conditioning (the floor), and apart from it the text encoder's forward + backward to
    its token embeddings (CLIP's modules called directly: token embeddings -> positions, causal layers, final norm).
    """

    def __init__(self, unet, batch: int, size: int, text_encoder=None, tokenizer=None):
        self.unet, self.text_encoder = unet, text_encoder
        self.device, self.dtype = unet.device, unet.dtype
        generator = torch.Generator().manual_seed(0)
        self.latents = torch.randn(batch, 4, size // 8, size // 8, generator=generator).to(self.device, self.dtype)
        self.noise = torch.randn(self.latents.shape, generator=generator).to(self.device)
        self.timesteps = torch.randint(0, 1000, (batch,), generator=generator).to(self.device)
        self.conditioning = torch.randn(batch, 77, TEXT_WIDTH, generator=generator).to(self.device, self.dtype)
        if tokenizer is not None:
            self.ids = tokenizer([CROPS[0][2]] * batch, padding="max_length", max_length=77,
                                 return_tensors="pt").input_ids.to(self.device)
        self.unet_times: list[float] = []
        self.text_times: list[float] = []
        for _ in range(2):  # warm-up
            self.repeat()
        self.unet_times.clear()
        self.text_times.clear()

    def repeat(self) -> None:
        self.unet_times.append(self._timed(self._unet))
        if self.text_encoder is not None:
            self.text_times.append(self._timed(self._text))

    def _timed(self, work) -> float:
        started = time.perf_counter()
        work()
        sync(self.device)
        return time.perf_counter() - started

    def _unet(self) -> None:
        conditioning = self.conditioning.detach().requires_grad_(True)
        prediction = self.unet(self.latents, self.timesteps, encoder_hidden_states=conditioning).sample
        torch.nn.functional.mse_loss(prediction.float(), self.noise).backward()

    def _text(self) -> None:
        text_model = self.text_encoder.text_model
        tokens = text_model.embeddings.token_embedding(self.ids).detach().requires_grad_(True)
        hidden = text_model.embeddings(inputs_embeds=tokens)
        batch, length = hidden.shape[:2]
        causal = torch.full((length, length), torch.finfo(hidden.dtype).min, device=self.device,
                            dtype=hidden.dtype).triu(1).expand(batch, 1, length, length)
        hidden = text_model.encoder(inputs_embeds=hidden, causal_attention_mask=causal)[0]
        text_model.final_layer_norm(hidden).float().square().mean().backward()


# --- the trainers ------------------------------------------------------------------------------------------------

def time_ours(backend: DiffusersBackend, data_dir: Path, batch: int, size: int, steps: int,
              between: Callable[[], None] | None = None) -> list[float]:
    """Seconds per optimizer step of the product's ``train()``: from the end of one ``on_step`` callback to the
    start of the next. ``between`` runs inside each callback, so it is interleaved with the steps but not timed."""
    marks: list[tuple[float, float]] = []

    def on_step(report) -> None:
        started = time.perf_counter()
        if between:
            between()
        marks.append((started, time.perf_counter()))

    config = TrainConfig(name="benchtoken", steps=steps, batch_size=batch, size=size, save_every=steps,
                         preview_every=0)
    with tempfile.TemporaryDirectory() as run_dir:
        train(config, backend, data_dir, run_dir, callbacks=TrainCallbacks(on_step=on_step))
    return [marks[step][0] - marks[step - 1][1] for step in range(1, len(marks))]


class Baseline:
    """The diffusers example's Textual Inversion loop (``examples/textual_inversion/textual_inversion.py``),
    re-written without accelerate: same placeholder-token set-up, optimizer, per-step work and row restore."""

    def __init__(self, model_dir: Path, device: torch.device, dtype: torch.dtype, vectors: int = 2):
        from diffusers import AutoencoderKL, DDPMScheduler
        from diffusers.models.attention_processor import AttnProcessor2_0
        from transformers import CLIPTextModel, CLIPTokenizer

        self.device, self.dtype = device, dtype
        self.tokenizer = CLIPTokenizer.from_pretrained(model_dir, subfolder="tokenizer")
        self.scheduler = DDPMScheduler.from_pretrained(model_dir, subfolder="scheduler")
        self.text_encoder = CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder").to(device)
        self.vae = AutoencoderKL.from_pretrained(model_dir, subfolder="vae", torch_dtype=dtype).to(device)
        self.unet = load_unet(model_dir, device, dtype)
        self.vae.requires_grad_(False)
        self.vae.set_attn_processor(AttnProcessor2_0())

        tokens = ["<bench>"] + [f"<bench>_{i}" for i in range(1, vectors)]
        self.tokenizer.add_tokens(tokens)
        self.token_ids = self.tokenizer.convert_tokens_to_ids(tokens)
        self.placeholder = " ".join(tokens)
        self.text_encoder.resize_token_embeddings(len(self.tokenizer))
        rows = self.text_encoder.get_input_embeddings().weight.data
        rows[self.token_ids] = rows[self.tokenizer.encode("face", add_special_tokens=False)[0]].clone()
        text_model = self.text_encoder.text_model
        for frozen in (text_model.encoder, text_model.final_layer_norm, text_model.embeddings.position_embedding):
            frozen.requires_grad_(False)
        self.text_encoder.train()

    def example(self, path: Path, size: int, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
        """The script's ``TextualInversionDataset.__getitem__``: read, resize (bicubic), random flip, tokenize."""
        image = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.array(image).astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)
        text = rng.choice(BASELINE_TEMPLATES).format(self.placeholder)
        ids = self.tokenizer(text, padding="max_length", truncation=True, max_length=77,
                             return_tensors="pt").input_ids[0]
        return pixels, ids

    def time_steps(self, data_dir: Path, batch: int, size: int, steps: int,
                   between: Callable[[], None] | None = None) -> list[float]:
        """Seconds per optimizer step; ``between`` runs before each step, untimed."""
        rng = random.Random(0)
        paths = sorted(data_dir.glob("*.png"))
        embeddings = self.text_encoder.get_input_embeddings()
        optimizer = torch.optim.AdamW(embeddings.parameters(), lr=5e-4, betas=(0.9, 0.999), weight_decay=1e-2,
                                      eps=1e-8)
        scaler = torch.amp.GradScaler(self.device.type) if self.dtype == torch.float16 else None
        autocast = torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        original = embeddings.weight.data.clone()
        keep = torch.ones(len(self.tokenizer), dtype=torch.bool)
        keep[min(self.token_ids):max(self.token_ids) + 1] = False
        times = []
        for _ in range(steps):
            if between:
                between()
            started = time.perf_counter()
            pixels, ids = map(torch.stack, zip(*(self.example(rng.choice(paths), size, rng) for _ in range(batch))))
            latents = self.vae.encode(pixels.to(self.device, self.dtype)).latent_dist.sample().detach()
            latents = latents * self.vae.config.scaling_factor
            noise = torch.randn_like(latents)
            timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (batch,), device=self.device)
            noisy = self.scheduler.add_noise(latents, noise, timesteps)
            with autocast:
                hidden = self.text_encoder(ids.to(self.device))[0].to(dtype=self.dtype)
            prediction = self.unet(noisy, timesteps, hidden).sample
            loss = torch.nn.functional.mse_loss(prediction.float(), noise.float(), reduction="mean")
            if scaler:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            optimizer.zero_grad()
            with torch.no_grad():
                embeddings.weight[keep] = original[keep]
            loss.detach().item()  # the script logs the loss every step
            times.append(time.perf_counter() - started)
        return times


def measured(samples: list[float]) -> list[float]:
    """Samples after the trainers' warm-up steps, without the last step (ours saves a snapshot there)."""
    return samples[WARMUP_STEPS:-1]


# --- running -----------------------------------------------------------------------------------------------------

def run_variant(variant: str, args, model_dir: Path, data_dir: Path, batch: int) -> None:
    """One variant alone, loading only what it needs: a child process's run, for its peak memory."""
    device, dtype = torch.device(args.device), PRECISIONS[args.precision]
    if variant == "floor":
        floor = Floor(load_unet(model_dir, device, dtype), batch, args.size)
        for _ in range(args.steps):
            floor.repeat()
    elif variant == "ours":
        backend = DiffusersBackend.load(model_dir, device=device, precision=args.precision)
        time_ours(backend, data_dir, batch, args.size, args.steps)
    else:
        Baseline(model_dir, device, dtype).time_steps(data_dir, batch, args.size, args.steps)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated memory. CPU: the process's peak RSS, VmHWM (``ru_maxrss`` would not do: Linux carries
    it over from the parent through fork and exec, so every child would report at least the parent's RSS)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB


def child_peak(variant: str, args, model_dir: Path, data_dir: Path, batch: int) -> float:
    """Peak memory of ``variant`` alone, from a fresh process running a short version of it."""
    command = [sys.executable, __file__, "--only", variant, "--batch", str(batch), "--model-dir", str(model_dir),
               "--data-dir", str(data_dir), "--steps", str(WARMUP_STEPS + 3), "--size", str(args.size),
               "--device", args.device, "--precision", args.precision]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_mb"]


def measure_batch(args, backend: DiffusersBackend, baseline: Baseline, model_dir: Path, data_dir: Path,
                  batch: int) -> dict:
    """Ours, then the baseline, each with a floor repetition (UNet, then text encoder) in every gap between two of
    its steps; ratios are taken against the floor repetitions of the same run. Then each variant's peak memory."""
    parts = backend._parts  # the very networks ours trains through
    result: dict = {"batch": batch}
    for name, run in (("ours", lambda between: time_ours(backend, data_dir, batch, args.size, args.steps, between)),
                      ("baseline", lambda between: baseline.time_steps(data_dir, batch, args.size, args.steps,
                                                                       between))):
        floor = Floor(parts.unet, batch, args.size, parts.text_encoder, parts.tokenizer)
        steps = measured(run(floor.repeat))
        result[name] = {"step": statistics.median(steps), "floor": statistics.median(measured(floor.unet_times)),
                        "text": statistics.median(measured(floor.text_times)), "steps": len(steps)}
    result["peak_mb"] = {variant: child_peak(variant, args, model_dir, data_dir, batch) for variant in VARIANTS}
    return result


def summary(result: dict) -> dict:
    """Seconds and ratios of one batch size: floor and text encoder as the mean of the two runs' medians, each
    trainer against the floor of its own run."""
    ours, base = result["ours"], result["baseline"]
    ours_ratio, base_ratio = ours["step"] / ours["floor"], base["step"] / base["floor"]
    return {
        "floor": statistics.mean([ours["floor"], base["floor"]]),
        "text": statistics.mean([ours["text"], base["text"]]),
        "ours/floor": ours_ratio, "baseline/floor": base_ratio, "baseline/ours": base_ratio / ours_ratio,
        "ours/(floor+text)": ours["step"] / (ours["floor"] + ours["text"]),
    }


def print_table(results: list[dict]) -> None:
    print("| variant | batch | median step s | floor s (same run) | / floor | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    summaries = [summary(result) for result in results]
    for result, numbers in zip(results, summaries):
        batch, peaks = result["batch"], result["peak_mb"]
        floor, text = numbers["floor"], numbers["text"]
        print(f"| floor: UNet fwd + bwd to the conditioning | {batch} | {floor:.3f} | | 1.00 | {peaks['floor']:.0f} |")
        print(f"| text encoder fwd + bwd to the tokens (not in the floor) | {batch} | {text:.3f} | | "
              f"{text / floor:.2f} | |")
        for variant, label in (("ours", "ours (`train()`)"), ("baseline", "baseline (diffusers example loop)")):
            run = result[variant]
            print(f"| {label} | {batch} | {run['step']:.3f} | {run['floor']:.3f} | {numbers[variant + '/floor']:.2f} | "
                  f"{peaks[variant]:.0f} |")
    for result, numbers in zip(results, summaries):
        print(f"batch {result['batch']}: ours/floor {numbers['ours/floor']:.3f} (target <= 1.10), "
              f"baseline/ours {numbers['baseline/ours']:.2f} (target >= 1.5), "
              f"ours/(floor + text encoder) {numbers['ours/(floor+text)']:.3f}")


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=25, help="trainer steps per run (3 warm-up, last dropped)")
    parser.add_argument("--size", type=int, default=256, help="training square, px")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    parser.add_argument("--real-sd15", action="store_true", help="SD1.5's architecture instead of the CPU model")
    parser.add_argument("--only", choices=VARIANTS, help="(child process) run one variant, print its peak memory")
    parser.add_argument("--model-dir", type=Path, help="(child process) the model folder")
    parser.add_argument("--data-dir", type=Path, help="(child process) the dataset folder")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_flush_denormal(True)
    device, dtype = torch.device(args.device), PRECISIONS[args.precision]
    if args.only:
        run_variant(args.only, args, args.model_dir, args.data_dir, args.batch[0])
        print(json.dumps({"peak_mb": peak_memory_mb(device)}))
        return
    with tempfile.TemporaryDirectory() as temp:
        model_dir = build_model(Path(temp) / "model", args.real_sd15, args.size)
        data_dir = write_dataset(Path(temp) / "data")
        backend = DiffusersBackend.load(model_dir, device=device, precision=args.precision)
        baseline = Baseline(model_dir, device, dtype)
        unet_params = sum(p.numel() for p in backend._parts.unet.parameters()) / 1e6
        print(f"{'SD1.5' if args.real_sd15 else 'SD1-shaped CPU'} model (UNet {unet_params:.1f} M params), "
              f"{args.size} px, {args.device} {args.precision}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads", flush=True)
        results = []
        for batch in args.batch:
            results.append(measure_batch(args, backend, baseline, model_dir, data_dir, batch))
            print(json.dumps(results[-1]), flush=True)
        print_table(results)


if __name__ == "__main__":
    main()
