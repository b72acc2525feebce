"""The standalone app's copy of the host's job progress: ``shared.state`` plus its ``/internal/progress`` route.

The tab's JavaScript polls ``./internal/progress`` with the same request and reads the same response in both
hosts (A1111: modules/progress.py L59-141), so one script serves both and the standalone app needs no other
progress mechanism.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import dataclass, field

from PIL import Image


@dataclass
class _Job:
    task_id: str
    started: float = field(default_factory=time.monotonic)
    total: int = 0
    done: int = 0
    text: str = ""
    image: Image.Image | None = None
    image_id: int = 0


class JobState:
    """The one job running now (jobs run one at a time, like the host's GPU queue), plus finished task ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: _Job | None = None
        self._queued: set[str] = set()
        self._finished: set[str] = set()
        self._interrupted = threading.Event()

    # --- the job's side (JobProgress) ---

    def start(self, total: int, text: str) -> None:
        with self._lock:
            if self._job:
                self._job.total, self._job.done, self._job.text = max(total, 0), 0, text

    def advance(self, done: int, text: str | None = None, image: Image.Image | None = None) -> None:
        with self._lock:
            if not self._job:
                return
            self._job.done = done
            if text is not None:
                self._job.text = text
            if image is not None:
                self._job.image = image
                self._job.image_id += 1

    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    def interrupt(self) -> None:
        self._interrupted.set()

    # --- the queue's side ---

    def queue(self, task_id: str) -> None:
        with self._lock:
            self._queued.add(task_id)

    def begin(self, task_id: str) -> None:
        with self._lock:
            self._queued.discard(task_id)
            self._job = _Job(task_id)
            self._interrupted.clear()

    def end(self, task_id: str) -> None:
        with self._lock:
            self._finished.add(task_id)
            if self._job and self._job.task_id == task_id:
                self._job = None

    # --- the browser's side ---

    def report(self, task_id: str, preview_id: int = -1, live_preview: bool = True) -> dict:
        """The host's ``ProgressResponse`` for ``task_id``."""
        with self._lock:
            job = self._job if self._job and self._job.task_id == task_id else None
            if job is None:
                return {"active": False, "queued": task_id in self._queued, "completed": task_id in self._finished,
                        "progress": None, "eta": None, "live_preview": None, "id_live_preview": -1,
                        "textinfo": "Waiting..." if task_id in self._queued else None}
            progress = job.done / job.total if job.total else 0.0
            elapsed = time.monotonic() - job.started
            eta = elapsed / progress - elapsed if progress > 0 else None
            preview = None
            if live_preview and job.image is not None and job.image_id != preview_id:
                preview = _data_url(job.image)
            return {"active": True, "queued": False, "completed": False, "progress": min(progress, 1.0), "eta": eta,
                    "live_preview": preview, "id_live_preview": job.image_id, "textinfo": job.text}


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
