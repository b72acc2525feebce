"""Model files from the Hugging Face Hub (or a mirror), with a clear message when they cannot be had.

Chinese users typically reach the Hub through a mirror set in ``HF_ENDPOINT``; huggingface_hub reads that variable
only once, at import, so we pass the endpoint explicitly on every call. That way a mirror chosen later (a WebUI
setting, a test) is honoured too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


@dataclass(frozen=True)
class HubFile:
    """One file of one repository at a pinned revision (a tag or commit, never a moving branch)."""

    repo_id: str
    filename: str
    revision: str


def current_endpoint(endpoint: str | None = None) -> str | None:
    """The endpoint to use: an explicit one, else ``HF_ENDPOINT``, else huggingface_hub's default (``None``)."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None


def download(file: HubFile, cache_dir: str | os.PathLike | None = None, endpoint: str | None = None) -> Path:
    """Return a local path to ``file``, downloading it into the Hugging Face cache the first time.

    Raises :class:`UserError` naming the file, the endpoint and what to do when it cannot be fetched (no network,
    a mirror without the file, a revision that does not exist).
    """
    from huggingface_hub import hf_hub_download  # imported here: the host's startup must not pay for it

    chosen = current_endpoint(endpoint)
    try:
        return Path(
            hf_hub_download(
                repo_id=file.repo_id,
                filename=file.filename,
                revision=file.revision,
                cache_dir=os.fspath(cache_dir) if cache_dir else None,
                endpoint=chosen,
            )
        )
    except Exception as exc:  # noqa: BLE001 - network, HTTP and cache errors all mean "could not get the file"
        where = chosen or "https://huggingface.co"
        raise UserError(
            f"could not download {file.repo_id}/{file.filename}@{file.revision} from {where} "
            f"({type(exc).__name__}: {_first_line(exc)}); check the network, set HF_ENDPOINT to a mirror, "
            f"or pass a local model folder"
        ) from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no details"
