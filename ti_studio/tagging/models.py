"""Which tagger to run: SmilingWolf's published models by short name, any other Hub repo, or a local folder.

Each model is a ``model.onnx`` plus its ``selected_tags.csv``. Hub files are pinned to a tag or commit because the
model cards ask downstream users to "use tagged releases rather than relying on the head of the repo"; they are
fetched through :func:`ti_studio.hub.download`, so they land in the Hugging Face cache once and honour
``HF_ENDPOINT`` mirrors. A local folder with the two files never touches the network (offline installs, models
placed by hand).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..hub import HubFile, download

MODEL_FILE = "model.onnx"
LABELS_FILE = "selected_tags.csv"


@dataclass(frozen=True)
class ModelSpec:
    """A published tagger. ``pr_threshold`` is the card's precision = recall general threshold: a hint for users
    who tune, not our default (the defaults stay the reference demo's 0.35 / 0.85 for every model)."""

    name: str
    repo_id: str
    revision: str
    pr_threshold: float


#: Revisions: the v2 repos carry a ``v2.0`` git tag (the one the A1111 taggers pin). For the v3 repos we could not
#: confirm a tag, so they are pinned to the commit whose files are the card's current release (swinv2/vit v3:
#: "v2.0" model files of 2024-03-16; eva02-large: its only release, v1.0).
REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("vit-v2", "SmilingWolf/wd-v1-4-vit-tagger-v2", "v2.0", 0.3537),
        ModelSpec("convnext-v2", "SmilingWolf/wd-v1-4-convnext-tagger-v2", "v2.0", 0.3685),
        ModelSpec("swinv2-v2", "SmilingWolf/wd-v1-4-swinv2-tagger-v2", "v2.0", 0.3771),
        ModelSpec("swinv2-v3", "SmilingWolf/wd-swinv2-tagger-v3", "805ca9892b4fdfbe3f06f9de3f0a07b3da8637ed", 0.2653),
        ModelSpec("vit-v3", "SmilingWolf/wd-vit-tagger-v3", "7f6b584d0bd3f55c4531f14ba3d4761b2bccdc0f", 0.2614),
        ModelSpec(
            "eva02-large-v3", "SmilingWolf/wd-eva02-large-tagger-v3", "b25b82a03f7282e41aa2f257a52c7583b710bd1c", 0.5296
        ),
    )
}

#: The model the TI tutorials use; fixed batch 1, so it is also the slowest per image on a GPU.
DEFAULT_MODEL = "vit-v2"

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


@dataclass(frozen=True)
class ModelFiles:
    """Local paths of a model's two files, and ``source``: how to name the model to the user."""

    model: Path
    labels: Path
    source: str


def resolve_model(
    ref: str | os.PathLike, cache_dir: str | os.PathLike | None = None, endpoint: str | None = None
) -> ModelFiles:
    """Find a model's files from ``ref``, tried in this order:

    1. an existing folder holding ``model.onnx`` and ``selected_tags.csv``;
    2. a registry name (``vit-v2``) or a registry repo id: its pinned revision is downloaded (or read from cache);
    3. any other ``owner/name`` Hub repo, optionally ``owner/name@revision`` (default ``main``).
    """
    text = os.fspath(ref)
    folder = Path(text).expanduser()
    if folder.is_dir():
        return _local(folder)
    spec = REGISTRY.get(text) or next((s for s in REGISTRY.values() if s.repo_id == text), None)
    if spec:
        source = f"{spec.name} ({spec.repo_id}@{spec.revision})"
        return _hub(spec.repo_id, spec.revision, source, cache_dir, endpoint)
    if _REPO_ID.match(text) and not folder.exists():
        repo_id, _, revision = text.partition("@")
        source = f"{repo_id}@{revision or 'main'}"
        return _hub(repo_id, revision or "main", source, cache_dir, endpoint)
    raise UserError(
        f"unknown tagger model {text!r}: give a folder with {MODEL_FILE} and {LABELS_FILE}, a Hub repo id "
        f"(owner/name), or one of: {', '.join(REGISTRY)}"
    )


def _local(folder: Path) -> ModelFiles:
    folder = folder.absolute()  # the session cache is keyed by path: a later chdir must not alias another model
    missing = [name for name in (MODEL_FILE, LABELS_FILE) if not (folder / name).is_file()]
    if missing:
        raise UserError(f"model folder {folder} has no {' or '.join(missing)}")
    return ModelFiles(model=folder / MODEL_FILE, labels=folder / LABELS_FILE, source=str(folder))


def _hub(repo_id: str, revision: str, source: str, cache_dir, endpoint) -> ModelFiles:
    # The small CSV first: a wrong repo or revision fails in a second, not after a 400 MB download.
    labels = download(HubFile(repo_id, LABELS_FILE, revision), cache_dir=cache_dir, endpoint=endpoint)
    model = download(HubFile(repo_id, MODEL_FILE, revision), cache_dir=cache_dir, endpoint=endpoint)
    return ModelFiles(model=model, labels=labels, source=source)
