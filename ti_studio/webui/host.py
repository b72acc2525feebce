"""The host calls the HTTP routes need, each importing ``modules.*`` inside the function (see the package doc).

Kept apart from :mod:`.routes` so the routes take plain values (credentials, a lock) and never import the host:
the standalone app and the tests can build the same router with their own.
"""

from __future__ import annotations

from contextlib import AbstractContextManager


def api_enabled() -> bool:
    """Whether the host serves its own HTTP API: ``--api``, or ``--nowebui`` (API only).

    The host adds its ``/sdapi/v1/`` routes only then (webui.py L51, L111-112; api_only L26-38). Without either, a
    user who runs ``--listen`` expects no file-reading API on the network, so we add none either.
    """
    from modules import shared

    return bool(shared.cmd_opts.api or shared.cmd_opts.nowebui)


def api_credentials() -> dict[str, str] | None:
    """``user -> password`` from ``--api-auth`` (``"user:pass,user2:pass2"``), or None when the API is open."""
    from modules import shared

    return parse_api_auth(shared.cmd_opts.api_auth)


def parse_api_auth(text: str | None) -> dict[str, str] | None:
    """Read ``--api-auth`` as the host does (modules/api/api.py L201-205: pairs split on ``,``, then on ``:``).

    The host itself fails at startup on a pair without ``:``; a password may hold ``:`` here.
    """
    if not text:
        return None
    return dict(pair.split(":", 1) for pair in text.split(","))


def gpu_lock() -> AbstractContextManager:
    """The host's GPU queue lock (``modules.call_queue.queue_lock``), held by the UI's GPU jobs and the API's
    generation routes (call_queue.py L8, L21-46; modules/api/api.py L467, L537, L572-639: txt2img, img2img,
    extras, interrogate).

    Anything of ours that may run on the GPU takes it too, so it waits for a generation instead of competing with
    it for VRAM.
    """
    from modules.call_queue import queue_lock

    return queue_lock
