"""Double of ``modules/sd_hijack.py`` (v1.10.1): the hijack that holds the embedding database and splices
embeddings into the text encoder's token embeddings, and the switch for cross-attention optimizations.

- ``model_hijack = StableDiffusionModelHijack()`` (L393); its ``embedding_db`` is an ``EmbeddingDatabase`` (L181);
  ``fixes`` (L169) is set by the prompt wrapper to ``[[(offset, Embedding), ...] per prompt]`` just before the
  text transformer runs, and consumed (reset to None) by ``EmbeddingsWithFixes`` (L347-349).
- ``EmbeddingsWithFixes(wrapped, embeddings, textual_inversion_key='clip_l')`` (L340-366) replaces the text
  encoder's token-embedding layer: it embeds the ids with ``wrapped`` and writes ``embedding.vec`` (cast by
  ``devices.cond_cast_unet``) over the ``emb_len`` positions after ``offset`` (``offset + 1``: the prompt's first
  token follows BOS), cut to the chunk, in the token embeddings' dtype.
- ``undo_optimizations()`` (L103-110) puts back ldm's original ``CrossAttention.forward`` (and friends);
  ``apply_optimizations(option=None)`` (L59-100) installs the chosen optimized one (the host applies them when a
  model loads, L250). The double keeps which of the two is installed in ``crossattention_forward``.
"""

import torch

from modules import devices
from modules.textual_inversion.textual_inversion import EmbeddingDatabase

#: Stands for ``ldm.modules.attention.CrossAttention.forward``: "optimized" once a model is loaded (L250).
crossattention_forward = "optimized"


def apply_optimizations(option=None):
    global crossattention_forward
    undo_optimizations()
    crossattention_forward = "optimized"
    return "double"


def undo_optimizations():
    global crossattention_forward
    crossattention_forward = "original"


class StableDiffusionModelHijack:
    fixes = None

    def __init__(self):
        self.embedding_db = EmbeddingDatabase()


class EmbeddingsWithFixes(torch.nn.Module):
    def __init__(self, wrapped, embeddings, textual_inversion_key="clip_l"):
        super().__init__()
        self.wrapped = wrapped
        self.embeddings = embeddings
        self.textual_inversion_key = textual_inversion_key

    def forward(self, input_ids):
        batch_fixes, self.embeddings.fixes = self.embeddings.fixes, None
        inputs_embeds = self.wrapped(input_ids)
        if not batch_fixes or not any(batch_fixes):
            return inputs_embeds
        rows = []
        for fixes, row in zip(batch_fixes, inputs_embeds):
            for offset, embedding in fixes:
                vec = devices.cond_cast_unet(embedding.vec)
                count = min(row.shape[0] - offset - 1, vec.shape[0])
                row = torch.cat([row[:offset + 1], vec[:count], row[offset + 1 + count:]]).to(inputs_embeds.dtype)
            rows.append(row)
        return torch.stack(rows)


model_hijack = StableDiffusionModelHijack()
