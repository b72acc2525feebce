"""Double of ``modules/textual_inversion/textual_inversion.py`` (v1.10.1): ``Embedding`` and the part of
``EmbeddingDatabase`` that registers embeddings, finds them in prompts and reloads.

- ``Embedding(vec, name, step=None)`` (L39-52): ``vec`` is ``[vectors, width]`` (SD1/SD2); ``vectors`` (the count the
  prompt wrapper reserves token slots for, sd_hijack_clip.py L161), ``shape`` and ``shorthash`` start empty.
- ``EmbeddingDatabase`` (L111-256):
  - ``register_embedding_by_name(embedding, model, name)`` (L126-150) tokenizes ``name`` with
    ``model.cond_stage_model.tokenize([name])[0]`` and files ``(ids, embedding)`` under the first id, longest ids
    first. A name already present is first removed from that list by matching ``Embedding.name`` (not the key).
    ``embedding=None`` unregisters the name. ``register_embedding(embedding, model)`` (L123-124) uses its name.
  - ``get_expected_shape()`` (L152-155): the width of ``encode_embedding_init_text(",", 1)`` of the loaded model.
  - ``add_embedding_dir(path)`` (L120-121) adds a folder to ``embedding_dirs``.
  - ``load_textual_inversion_embeddings(force_reload=False)`` (L212-244) clears ``ids_lookup``,
    ``word_embeddings`` and ``skipped_embeddings`` and registers what the embedding folders hold, in new objects:
    a reload drops a trainer's ``Embedding`` that is not on disk. The double's folders always count as changed.
    Loading a folder (L194-210 ``load_from_dir``, L157-192 ``load_from_file``) walks it; the double reads only
    ``.safetensors`` files (the "diffuser concept" branch of ``create_embedding_from_data``, L300-308: one tensor,
    a 1-D one unsqueezed) and files an embedding whose width is not ``expected_shape`` under
    ``skipped_embeddings``.
  - ``find_embedding_at_position(tokens, offset)`` (L245-256): the embedding whose ids start at ``offset`` and its
    length in tokens, or ``(None, None)``.
"""

import os

import safetensors.torch
import torch

from modules import shared


class Embedding:
    def __init__(self, vec, name, step=None):
        self.vec = vec
        self.name = name
        self.step = step
        self.shape = None
        self.vectors = 0
        self.shorthash = None


class EmbeddingDatabase:
    def __init__(self):
        self.ids_lookup = {}
        self.word_embeddings = {}
        self.skipped_embeddings = {}
        self.expected_shape = -1
        self.embedding_dirs = {}

    def add_embedding_dir(self, path):
        self.embedding_dirs[path] = path

    def register_embedding(self, embedding, model):
        return self.register_embedding_by_name(embedding, model, embedding.name)

    def register_embedding_by_name(self, embedding, model, name):
        ids = model.cond_stage_model.tokenize([name])[0]
        first_id = ids[0]
        entries = self.ids_lookup.setdefault(first_id, [])
        if name in self.word_embeddings:
            entries = [entry for entry in entries if entry[1].name != name]
        if embedding is not None:
            entries = entries + [(ids, embedding)]
        self.ids_lookup[first_id] = sorted(entries, key=lambda entry: len(entry[0]), reverse=True)
        if embedding is None:
            self.word_embeddings.pop(name, None)
            if not self.ids_lookup[first_id]:
                del self.ids_lookup[first_id]
            return None
        self.word_embeddings[name] = embedding
        return embedding

    def get_expected_shape(self):
        return shared.sd_model.cond_stage_model.encode_embedding_init_text(",", 1).shape[1]

    def load_textual_inversion_embeddings(self, force_reload=False):
        self.ids_lookup.clear()
        self.word_embeddings.clear()
        self.skipped_embeddings.clear()
        self.expected_shape = self.get_expected_shape()
        for path in self.embedding_dirs.values():
            for root, _, files in os.walk(path, followlinks=True):
                for filename in files:
                    name, ext = os.path.splitext(filename)
                    if ext.upper() != ".SAFETENSORS":
                        continue
                    data = safetensors.torch.load_file(os.path.join(root, filename), device="cpu")
                    assert len(data.keys()) == 1, 'embedding file has multiple terms in it'
                    vec = next(iter(data.values())).detach().to(torch.float32)
                    if len(vec.shape) == 1:
                        vec = vec.unsqueeze(0)
                    embedding = Embedding(vec, name)
                    embedding.vectors, embedding.shape = vec.shape
                    if self.expected_shape == -1 or self.expected_shape == embedding.shape:
                        self.register_embedding(embedding, shared.sd_model)
                    else:
                        self.skipped_embeddings[name] = embedding

    def find_embedding_at_position(self, tokens, offset):
        for ids, embedding in self.ids_lookup.get(tokens[offset], []):
            if tokens[offset:offset + len(ids)] == ids:
                return embedding, len(ids)
        return None, None
