"""The standalone app's side of the tab's :class:`~ti_studio.ui.host.Host`: a diffusers model, its own job queue.

The app trains on the model given with ``--model`` (a diffusers folder, a single-file checkpoint or a Hub repo id;
SD 1.5 by default, downloaded on first use). It is loaded when a run starts, not at startup, so the dataset stages
work without any model, and it is dropped when the run ends, so an idle app holds no model in memory.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any, Callable

from ..training.backend import TrainingBackend
from .host import HostSettings, JobProgress
from .job_state import JobState


class StandaloneHost:
    kind = "standalone"

    def __init__(self, settings: HostSettings, model: str, device: str = "auto"):
        self._settings = settings
        self._model = model
        self._device = device
        self.jobs = JobState()
        #: One job on the model at a time: the tab's jobs and the HTTP routes' share it, like the host's queue_lock.
        self.gpu_lock = threading.Lock()

    def settings(self) -> HostSettings:
        return self._settings

    def gpu_job(self, fn: Callable[..., list], outputs: int) -> Callable[..., list]:
        def run(task_id: str, *args: Any) -> list:
            self.jobs.queue(task_id)
            with self.gpu_lock:
                self.jobs.begin(task_id)
                try:
                    return fn(*args)
                finally:
                    self.jobs.end(task_id)

        return run

    def progress(self) -> JobProgress:
        return self.jobs

    def interrupt(self) -> None:
        self.jobs.interrupt()

    def model_label(self) -> str:
        return self._model

    def load_backend(self, model: str, precision: str) -> TrainingBackend:
        from ..backends.diffusers_backend import DiffusersBackend

        return DiffusersBackend.load(model.strip() or self._model, device=self._device, precision=precision)

    def release_backend(self, backend: TrainingBackend) -> None:
        import torch

        backend.close()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def embedding_names(self) -> set[str]:
        return set()

    def register_snapshots(self, folder: Path) -> str:
        return (f"The snapshots are in {folder}. To try them in WebUI, copy them into its embeddings folder, or "
                "export them below.")
