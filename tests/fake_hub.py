"""A tiny stand-in for the Hugging Face Hub's file endpoint, on 127.0.0.1, for download tests without network.

It answers what ``hf_hub_download`` (huggingface_hub 0.36) asks: ``HEAD {endpoint}/{repo_id}/resolve/{revision}/
{filename}`` must carry ``X-Repo-Commit``, an ``ETag`` and the ``Content-Length``; then a ``GET`` of the same URL
returns the bytes. A missing file is a 404 with ``X-Error-Code: EntryNotFound``, as the Hub says it. Point
``hf_hub_download(endpoint=hub.endpoint)`` (or ``HF_ENDPOINT``) at it. Every request, for any path, is recorded in
``requests``.

    with FakeHub({("org/model", "model.onnx"): data}) as hub:
        path = download(HubFile("org/model", "model.onnx", "main"), cache_dir=tmp, endpoint=hub.endpoint)
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import pytest

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
#: Commit reported for branch or tag names; a 40-hex revision is reported as itself.
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def online(monkeypatch):
    """huggingface_hub allowed to connect even where the environment sets HF_HUB_OFFLINE (our endpoints are local).

    Import it into a test module to use it: ``from fake_hub import online  # noqa: F401``.
    """
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@dataclass(frozen=True)
class Request:
    """One request received; the repository fields are ``None`` for a path that is not a file URL."""

    method: str
    path: str
    repo_id: str | None = None
    revision: str | None = None
    filename: str | None = None


class FakeHub:
    """Serves ``files`` (``{(repo_id, filename): bytes}``) at any revision until the ``with`` block ends."""

    def __init__(self, files: dict[tuple[str, str], bytes]):
        self.files = dict(files)
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(with_body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(with_body=True)

            def _answer(self, with_body: bool) -> None:
                path = unquote(urlparse(self.path).path)
                match = _RESOLVE.match(path)
                hub.requests.append(Request(self.command, path, *(match.groups() if match else ())))
                if not match:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                repo_id, revision, filename = match.groups()
                data = hub.files.get((repo_id, filename))
                commit = revision if _COMMIT.match(revision) else FAKE_COMMIT
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Repo-Commit", commit)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if with_body:
                    self.wfile.write(data)

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        return Handler
