"""The real CLIP tokenizer (49408 tokens), built offline from the BPE merges that ship inside ``open_clip_torch``.

Stable Diffusion's tokenizer files live on the Hugging Face hub, which tests cannot reach. CLIP's vocabulary is not
stored anywhere else, but it is derived from the merges file by a fixed rule (CLIP's ``SimpleTokenizer``): the 256
byte-level characters, the same with ``</w>``, one token per merge for the first 48894 merges, then
``<|startoftext|>`` and ``<|endoftext|>``. ``transformers.CLIPTokenizer`` reads exactly that vocabulary and merge list,
so this gives the same ids as ``openai/clip-vit-large-patch14`` (``a photo`` -> 320, 1125).

``open_clip`` itself is not imported (it needs torchvision): only its data file is read.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
from pathlib import Path

from transformers import CLIPTokenizer
from transformers.models.clip.tokenization_clip import bytes_to_unicode

MERGES_USED = 49152 - 256 - 2  # 48894: the count CLIP's SimpleTokenizer and transformers' CLIPTokenizer both keep
VOCAB_SIZE = 49408


@functools.lru_cache(maxsize=1)
def _clip_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    package = importlib.util.find_spec("open_clip")
    if package is None or not package.submodule_search_locations:
        raise RuntimeError("open_clip_torch is not installed: it ships the CLIP BPE merges these tests need")
    bpe = Path(package.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.decompress(bpe.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1:MERGES_USED + 1]  # line 0 is the "#version" header
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [char + "</w>" for char in byte_chars]
    tokens += ["".join(merge.split()) for merge in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) == VOCAB_SIZE, len(tokens)
    return {token: index for index, token in enumerate(tokens)}, merges


def build_clip_tokenizer(folder: Path) -> CLIPTokenizer:
    """Write ``vocab.json`` and ``merges.txt`` into ``folder`` (once) and return a new tokenizer reading them.

    Each call returns a fresh tokenizer: ``load_textual_inversion`` adds tokens to the one it is given, and one test's
    tokens must not leak into the next. The files are written only if missing, so a shared folder costs nothing.
    """
    folder = Path(folder)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    if not (vocab_file.exists() and merges_file.exists()):
        vocab, merges = _clip_vocab_and_merges()
        folder.mkdir(parents=True, exist_ok=True)
        vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return CLIPTokenizer(str(vocab_file), str(merges_file))
