"""What the tab needs from whoever serves it: A1111 WebUI (``ti_studio/webui/ui_host.py``) or the standalone app
(``ti_studio/ui/standalone_host.py``).

The tab itself is the same gradio code in both. Only these few things differ: where projects live and what the
settings say, how a long job is queued and reports progress (the host's ``shared.state`` and ``requestProgress``, or
the app's own copy of that protocol), which model training runs on, and how trained snapshots reach txt2img.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from PIL import Image

from ..training.backend import TrainingBackend


@dataclass(frozen=True)
class HostSettings:
    """The user's defaults (the host's Settings → TI Studio section; the app's command line)."""

    projects_root: Path
    detector: str = "auto"
    tagger_model: str = ""  # "" = the tagger's default model
    hub_mirror: str = ""  # "" = HF_ENDPOINT or huggingface.co


class JobProgress(Protocol):
    """Progress of the one long job running now, shown by the browser's progress poller.

    Mirrors the host's ``shared.state`` fields (``job_count``, ``job_no``, ``textinfo``, ``assign_current_image``,
    ``interrupted``), which is what its ``/internal/progress`` route reports.
    """

    def start(self, total: int, text: str) -> None:
        """A new phase of ``total`` units (photos, steps); resets the bar."""

    def advance(self, done: int, text: str | None = None, image: Image.Image | None = None) -> None:
        """``done`` of ``total`` units finished; ``text`` is HTML (with a newline, so the host shows it below the
        bar rather than inside it); ``image`` becomes the live preview."""

    def interrupted(self) -> bool:
        """The user pressed Interrupt."""


class Host(Protocol):
    #: "webui" or "standalone": the tab hides what one of them cannot do (the model picker, txt2img).
    kind: str

    def settings(self) -> HostSettings:
        ...

    def gpu_job(self, fn: Callable[..., list], outputs: int) -> Callable[..., list]:
        """Wrap a long job's event handler. The wrapped handler takes a task id (``"task(...)"``, made by the
        browser, which polls progress for it) before ``fn``'s own arguments, runs ``fn`` alone on the GPU, and
        always returns ``outputs`` values: an unexpected error becomes a one-line message in the last output."""
        ...

    def progress(self) -> JobProgress:
        """The progress of the job running now (valid inside a :meth:`gpu_job` handler)."""
        ...

    def interrupt(self) -> None:
        ...

    def model_label(self) -> str:
        """What training will run on, for the Train tab ("v1-5-pruned-emaonly.safetensors [6ce0161689]")."""
        ...

    def load_backend(self, model: str, precision: str) -> TrainingBackend:
        """The model to train on: the host's loaded one (``model`` ignored), or the app's ``model`` path or repo."""
        ...

    def release_backend(self, backend: TrainingBackend) -> None:
        """Give back what training allocated (the app drops its model; the host keeps its own and frees caches)."""
        ...

    def embedding_names(self) -> set[str]:
        """Names the host already knows as embeddings (a new run must not take one)."""
        ...

    def register_snapshots(self, folder: Path) -> str:
        """Make the snapshot files in ``folder`` usable in prompts; returns a one-line message for the user."""
        ...

    def connect_send_to_txt2img(self, button: Any, infotext: Any) -> None:
        """Make ``button`` paste the infotext of the ``infotext`` textbox into txt2img (inside the tab's Blocks).

        Called only where ``kind == "webui"``: the standalone app has no txt2img, and shows the infotext instead."""
        ...
