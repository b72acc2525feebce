"""A tiny but complete diffusers Stable Diffusion folder, written offline with seeded random weights.

It has every part and file a real SD1/SD2-v model has (``model_index.json``; unet, vae, text_encoder, tokenizer and
scheduler subfolders), the real 49408-token CLIP vocabulary (the tokenizer must split words as in the host), an
8x-downsampling VAE (64 px images give 8x8 latents, as 512 px give 64x64) and a UNet that really listens to the
text: one training step on a CPU takes a few milliseconds.

Random tiny networks need care to be trainable at all. Default initialisation sets every norm layer to the
identity and many biases to zero; in a small network the conditioning's effect on the output then becomes too
small to train on (the embedding's gradient all but vanishes). All norm affines and zero-initialised parameters are
re-drawn, so every layer really transforms its input.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from clip_tokenizer import build_clip_tokenizer

KINDS = ("sd1", "sd2-v")
TEXT_WIDTH = {"sd1": 32, "sd2-v": 64}  # different widths, so a test catches width mix-ups (real: 768 / 1024)
IMAGE_SIZE = 64  # native size of the tiny models: the UNet's 8x8 sample size times the VAE's 8x


def weights_fingerprint(*networks: nn.Module) -> str:
    """A hash of every weight of ``networks``, bit for bit: equal before and after training means nothing but the
    embedding was trained."""
    digest = hashlib.sha256()
    for network in networks:
        for name, tensor in sorted(network.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_tiny_sd(folder: str | Path, kind: str = "sd1", seed: int = 0) -> Path:
    """Write the tiny model of ``kind`` ("sd1": epsilon, CLIP-L-like text encoder; "sd2-v": v-prediction,
    OpenCLIP-like text encoder with GELU and pad id 0) into ``folder`` and return it. Same seed, same weights."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder, unet, vae = _text_encoder(kind), _unet(kind), _vae()
        for network in (text_encoder, unet, vae):
            make_trainable(network)
    return save_diffusers_folder(folder, kind, text_encoder, unet, vae)


def save_diffusers_folder(folder: str | Path, kind: str, text_encoder: nn.Module, unet: nn.Module, vae: nn.Module
                          ) -> Path:
    """Write the networks as a diffusers SD folder of ``kind``, with the real CLIP tokenizer and the kind's
    scheduler (also the benchmarks' recipe for their larger random models)."""
    from diffusers import StableDiffusionPipeline

    folder = Path(folder)
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=_tokenizer(folder / "tokenizer", kind), unet=unet,
        scheduler=_scheduler(kind), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder


def _tokenizer(folder: Path, kind: str):
    from transformers import CLIPTokenizer

    build_clip_tokenizer(folder)  # writes vocab.json and merges.txt
    # SD2's tokenizer pads with "!" (id 0), SD1's with <|endoftext|>, as in the real models' tokenizer configs.
    pad = "!" if kind == "sd2-v" else "<|endoftext|>"
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token=pad, model_max_length=77)


def _text_encoder(kind: str):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=TEXT_WIDTH[kind], intermediate_size=2 * TEXT_WIDTH[kind],
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
        # SD2 uses OpenCLIP ViT-H's penultimate layer; diffusers bakes that in as a config with one layer fewer
        # (23 of 24), so the saved model's last layer is the one to use, exactly as for SD1.
        hidden_act="gelu" if kind == "sd2-v" else "quick_gelu",
        bos_token_id=49406, eos_token_id=49407, pad_token_id=0 if kind == "sd2-v" else 49407,
        projection_dim=TEXT_WIDTH[kind],
    ))


def _unet(kind: str):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH[kind], attention_head_dim=4,
        use_linear_projection=kind == "sd2-v",  # as in SD2's UNet
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16), sample_size=IMAGE_SIZE, scaling_factor=0.18215,
    )


def _scheduler(kind: str):
    from diffusers import DDPMScheduler

    return DDPMScheduler(  # Stable Diffusion's training schedule
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, steps_offset=1,
        prediction_type="v_prediction" if kind == "sd2-v" else "epsilon",
    )


@torch.no_grad()
def make_trainable(network: nn.Module) -> None:
    """Random norm affines and no all-zero parameter, so that every layer passes the conditioning on."""
    for module in network.modules():
        if isinstance(module, (nn.GroupNorm, nn.LayerNorm)) and module.weight is not None:
            module.weight.copy_(1 + 0.2 * torch.randn_like(module.weight))
            module.bias.copy_(0.1 * torch.randn_like(module.bias))
    for parameter in network.parameters():
        if not parameter.any():
            parameter.copy_(0.05 * torch.randn_like(parameter))
