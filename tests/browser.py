"""Browser tests: a server in a subprocess, and Debian's Chromium driven through Playwright.

Use it from a test module as a pytest plugin, which brings the ``chromium`` and ``page`` fixtures::

    pytest_plugins = ["browser"]
    pytestmark = pytest.mark.browser

    @pytest.fixture(scope="module")
    def server(chromium):  # asks for the browser first, so a missing one skips before the server starts
        port = free_port()
        with running_server([sys.executable, "tests/my_server.py", str(port)], port=port,
                            env={"PYTHONPATH": str(REPO_ROOT)}) as running:
            yield running

    def test_something(page, server):
        page.goto(server.url)
        ...
        screenshot(page, "something-done")

Playwright launches ``/usr/bin/chromium`` (``tools/setup.sh`` installs Debian's package), never a browser of its
own (``playwright install`` downloads from outside the package registries). Without that browser, or without the
``playwright`` package, the fixtures skip the test and name what is missing. Pages reach only the local server:
every other request is aborted, so a test never waits on the network (gradio's page asks for web fonts).

PYTEST_DONT_REWRITE: test modules import helpers from here before pytest loads it as a plugin, which would otherwise
warn that it is too late to rewrite its asserts (its one assert carries its own message).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Sequence
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
#: Playwright adds a fresh temporary --user-data-dir (removed on close) to these. They keep the browser from
#: reaching out on its own (updates, sync, QUIC probes) and let it run as root in a container (--no-sandbox)
#: without a GPU or a large /dev/shm.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1280, "height": 900}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def missing_browser() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if not CHROMIUM.is_file():
        return f"Chromium is not installed at {CHROMIUM} (Debian package 'chromium'; tools/setup.sh installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the 'playwright' Python package is missing (pip install -r requirements-dev.txt)"
    return None


def free_port() -> int:
    """A TCP port that is free now (the server binds it a moment later; another process taking it first is unlikely)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    _log: IO[bytes]

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr together)."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")


@contextmanager
def running_server(command: Sequence[str], port: int, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT,
                   timeout: float = 60.0) -> Iterator[Server]:
    """Run ``command`` (with ``env`` added to this process's environment) until the block ends.

    Returns once something accepts connections on 127.0.0.1:``port``; raises with the server's output if it exits
    first or does not answer within ``timeout`` seconds. On leaving, the server is terminated (killed if it does not
    stop within 10 s).
    """
    # Output goes to a file, not a pipe: nobody reads a pipe while the test runs, and a full one would block the server.
    with tempfile.TemporaryFile() as log:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        process = subprocess.Popen(list(command), cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        server = Server(process, f"http://127.0.0.1:{port}/", log)
        try:
            _wait_for_port(server, port, timeout)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_port(server: Server, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with code {server.process.returncode} before answering on port "
                               f"{port}; its output:\n{server.output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer on port {port} within {timeout:.0f} s; its output:\n"
                                   f"{server.output()}") from None
            time.sleep(0.1)


def screenshot(page, name: str) -> Path:
    """Save the whole page as ``test-artifacts/screenshots/<name>.png`` and return the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path


def _local_only(route) -> None:
    if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
        route.continue_()
    else:
        route.abort()


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole session (a Playwright ``Browser``); skips when it cannot run here."""
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, request):
    """A fresh page (own context: no cookies or storage shared between tests) that may load only local URLs.

    When the test ends the page is saved as a screenshot named after it, and uncaught script errors on the page fail
    the test: they are bugs in our scripts or in how the page was built.
    """
    context = chromium.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.route("**/*", _local_only)
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda error: errors.append(str(error)))
    yield new_page
    screenshot(new_page, request.node.name)
    context.close()
    assert not errors, "uncaught errors on the page:\n" + "\n".join(errors)


def field(page, elem_id: str):
    """The text input of the gradio component ``elem_id`` (a Textbox renders a textarea, a Number an input)."""
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def wait_text(page, selector: str, text: str, timeout: float = 90, hidden_too: bool = False) -> str:
    """Wait until ``selector``'s text holds ``text``, and return its text. ``hidden_too``: also count text that is
    not shown (``textContent``, for a stage or tab the page is not showing)."""
    read = "textContent" if hidden_too else "innerText"
    page.wait_for_function(f"([s, t]) => (document.querySelector(s)?.{read} || '').includes(t)",
                           arg=[selector, text], timeout=timeout * 1000)
    return page.inner_text(selector)


def open_project(page, name: str) -> None:
    """Pick (or create) the project ``name`` in the tab's project box."""
    project = page.locator("#ti_studio_project input")
    project.fill(name)
    project.press("Enter")


def open_stage(page, title: str) -> None:
    page.locator("#ti_studio_stages button", has_text=title).click()


def train_and_watch(page, name: str, steps: int, save_every: int, preview_every: int, screenshot_name: str,
                    poll_seconds: float = 0.3, on_poll=None) -> list[int]:
    """Wait for the Train stage to show the project's embedding ``name``, fill it (learning rate 0.03, 64 px), press
    Train and watch the live loss chart until the status says "Finished" (at most 180 s). Returns the chart's point
    count at each poll that showed it; the third such poll is screenshotted as ``screenshot_name``.
    ``on_poll(page)`` runs at every poll, for what else to watch."""
    page.wait_for_function("(name) => document.querySelector('#ti_studio_train_name textarea, "
                           "#ti_studio_train_name input').value === name", arg=name)
    for elem_id, value in (("ti_studio_train_steps", steps), ("ti_studio_train_save_every", save_every),
                           ("ti_studio_train_preview_every", preview_every), ("ti_studio_train_lr", "0.03")):
        field(page, elem_id).fill(str(value))
    page.locator("#ti_studio_train_advanced").get_by_text("Advanced", exact=True).click()
    field(page, "ti_studio_train_size").fill("64")
    page.click("#ti_studio_train_run")
    points_seen: list[int] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and "Finished" not in page.inner_text("#ti_studio_train_status"):
        if on_poll is not None:
            on_poll(page)
        points = page.eval_on_selector_all("#ti_studio_train_progress polyline.ti-studio-chart-loss",
                                           "lines => lines.map(l => l.getAttribute('points'))")
        if points:
            points_seen.append(len(points[0].split()))
            if len(points_seen) == 3:
                screenshot(page, screenshot_name)
        time.sleep(poll_seconds)
    return points_seen
