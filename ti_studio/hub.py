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


#: Seconds the reachability probe waits before a download is given up as offline.
PROBE_TIMEOUT_S = 3.0


def download(file: HubFile, cache_dir: str | os.PathLike | None = None, endpoint: str | None = None) -> Path:
    """Return a local path to ``file``, downloading it into the Hugging Face cache the first time.

    A file already in the cache is returned without any network request. Otherwise one short request checks that
    the endpoint answers at all before huggingface_hub is asked: it retries a failed connection five times with
    backoff (about 23 s when refused, over a minute when packets are dropped), far too long to make an offline
    user wait for an error or a fallback.

    Raises :class:`UserError` naming the file, the endpoint and what to do when it cannot be fetched (no network,
    a mirror without the file, a revision that does not exist).
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cache = os.fspath(cache_dir) if cache_dir else None
    cached = try_to_load_from_cache(file.repo_id, file.filename, cache_dir=cache, revision=file.revision)
    if isinstance(cached, str):
        return Path(cached)
    chosen = current_endpoint(endpoint)
    where = chosen or "https://huggingface.co"
    offline = _unreachable(where)
    try:
        if offline:
            raise ConnectionError(offline)
        return Path(hf_hub_download(repo_id=file.repo_id, filename=file.filename, revision=file.revision,
                                    cache_dir=cache, endpoint=chosen))
    except Exception as exc:  # noqa: BLE001 - network, HTTP and cache errors all mean "could not get the file"
        raise UserError(
            f"could not download {file.repo_id}/{file.filename}@{file.revision} from {where} "
            f"({type(exc).__name__}: {_first_line(exc)}); check the network, set HF_ENDPOINT to a mirror, "
            f"or pass a local model folder"
        ) from None


def _unreachable(url: str) -> str | None:
    """Why ``url`` cannot be used now (offline mode, no answer), or None. Proxies from the environment apply."""
    import requests
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set and the file is not in the cache"
    try:
        requests.head(url, timeout=PROBE_TIMEOUT_S)
    except requests.RequestException as exc:
        return f"{url} is unreachable ({type(exc).__name__})"
    return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no details"
