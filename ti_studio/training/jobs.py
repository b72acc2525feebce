"""Training runs as background jobs: start one, poll its status, interrupt it.

A run takes minutes to hours, longer than an HTTP request should stay open, so the HTTP API (and the tab) start it
here and poll. Everything the user can get wrong (settings, dataset, run folder) is checked in :meth:`TrainJobs.start`
and refused as a :class:`UserError` before a thread exists; only then does a daemon thread wait for the GPU lock,
load the model, train and give the model back. The lock is held for the whole run, model loading included: the
host's generations hold the same lock, so training waits for them instead of competing for VRAM, and they wait for
training.

One run at a time: the GPU lock would serialise runs anyway, and a queue of runs the user cannot see is a surprise.
Finished jobs stay listed (a few hundred bytes each) so a client that polls late still reads how its run ended.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from ..errors import UserError
from .backend import TrainingBackend
from .config import TrainConfig
from .trainer import StepReport, TrainCallbacks, TrainResult, check_run_folder, prepare_data, train

logger = logging.getLogger(__name__)

JobState = Literal["queued", "running", "finished", "interrupted", "failed"]
ACTIVE_STATES = ("queued", "running")


class UnknownJobError(UserError):
    """No job has this id (a typo, or the WebUI restarted since): the HTTP API answers 404."""


@dataclass(frozen=True)
class TrainJobRequest:
    """One run to start. ``config.precision`` is also what the model is loaded in."""

    config: TrainConfig
    dataset: Path
    run_dir: Path  # the run folder itself: snapshots go to run_dir/embeddings/<name>-<step>.*
    model: str = ""  # what ``load_backend`` loads: the app's model path or repo id; the host ignores it
    resume: bool = False


@dataclass
class TrainJobStatus:
    """A job as a poller sees it. Times are seconds since the epoch; ``started`` is when it got the GPU."""

    id: str
    state: JobState
    step: int  # optimizer steps done (on resume: counted from the run's start, not this job's)
    total_steps: int
    run_dir: Path
    message: str = ""  # one line: the current phase, or how the run ended
    loss: float | None = None
    learning_rate: float | None = None
    norm: float | None = None
    fixed_loss: float | None = None  # the last snapshot's deterministic evaluation loss
    snapshots: list[Path] = field(default_factory=list)  # written by this job, oldest first
    last_snapshot: Path | None = None  # the newest good one: what to resume from or try in txt2img
    started: float | None = None
    ended: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(run_dir=str(self.run_dir), snapshots=[str(path) for path in self.snapshots],
                    last_snapshot=str(self.last_snapshot) if self.last_snapshot else None)
        return data


@dataclass
class _Job:
    request: TrainJobRequest
    status: TrainJobStatus
    stop: threading.Event = field(default_factory=threading.Event)


class TrainJobs:
    """The registry of training jobs; safe to call from any thread.

    ``load_backend(model, precision)`` gives the model to train on and ``release_backend(backend)`` gives it back
    (always called once the load succeeded); ``gpu_lock`` is the host's GPU queue lock or any lock.
    """

    def __init__(self, load_backend: Callable[[str, str], TrainingBackend],
                 release_backend: Callable[[TrainingBackend], None], gpu_lock: AbstractContextManager):
        self._load_backend = load_backend
        self._release_backend = release_backend
        self._gpu_lock = gpu_lock
        self._lock = threading.Lock()  # guards the two fields below and every job's status
        self._jobs: dict[str, _Job] = {}
        self._active: _Job | None = None

    def start(self, request: TrainJobRequest) -> str:
        """Check the request and start the run in the background; its job id. UserError when the settings, the
        dataset or the run folder are wrong, or another run is under way: then nothing has started."""
        with self._lock:
            self._refuse_if_busy()
        prepare_data(request.config, request.dataset)
        start_step = check_run_folder(request.config, request.run_dir, request.resume)
        job_id = uuid.uuid4().hex
        status = TrainJobStatus(id=job_id, state="queued", step=start_step,
                                total_steps=request.config.effective_steps, run_dir=request.run_dir,
                                message="waiting for the GPU")
        job = _Job(request=request, status=status)
        with self._lock:
            self._refuse_if_busy()  # another start may have passed its checks meanwhile
            self._jobs[job_id] = self._active = job
        threading.Thread(target=self._run, args=(job,), name=f"ti-studio-train-{job_id[:8]}", daemon=True).start()
        return job_id

    def status(self, job_id: str) -> TrainJobStatus:
        """A copy of the job's status (the training thread keeps updating the original)."""
        with self._lock:
            status = self._job(job_id).status
            return dataclasses.replace(status, snapshots=list(status.snapshots))

    def interrupt(self, job_id: str) -> TrainJobStatus:
        """Ask the run to stop after its current step (it saves a resumable snapshot first); a queued run ends as
        soon as it gets the GPU, without loading the model. Does nothing to a run that has ended."""
        with self._lock:
            job = self._job(job_id)
            if job.status.state in ACTIVE_STATES:
                job.stop.set()
                job.status.message = "interrupting"
        return self.status(job_id)

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJobError(f"no training job {job_id}")
        return job

    def _refuse_if_busy(self) -> None:
        if self._active is not None:
            raise UserError(f"a training run is already running (job {self._active.status.id}); interrupt it or "
                            f"wait for it to end")

    # --- the training thread ------------------------------------------------------------------------------------
    def _run(self, job: _Job) -> None:
        try:
            with self._gpu_lock:
                result = None if job.stop.is_set() else self._train(job)
        except UserError as exc:
            self._end(job, "failed", str(exc))
        except Exception as exc:  # a bug or a host failure: the poller gets one line, the console the traceback
            logger.exception("TI Studio: training job %s failed", job.status.id)
            self._end(job, "failed", _one_line(f"training failed: {type(exc).__name__}: {exc} (see the console)"))
        else:
            if result is None:
                self._end(job, "interrupted", "interrupted before it started")
            else:
                self._end(job, *_outcome(result), result=result)

    def _train(self, job: _Job) -> TrainResult:
        request = job.request
        self._update(job, state="running", started=time.time(), message=f"loading {request.model or 'the model'}")
        backend = self._load_backend(request.model, request.config.precision)
        try:
            callbacks = TrainCallbacks(on_step=lambda report: self._on_step(job, report), should_stop=job.stop.is_set,
                                       on_status=lambda text: self._update(job, message=text))
            return train(request.config, backend, request.dataset, request.run_dir, resume=request.resume,
                         callbacks=callbacks)
        finally:
            self._release_backend(backend)

    def _on_step(self, job: _Job, report: StepReport) -> None:
        with self._lock:
            status = job.status
            status.step, status.total_steps = report.step, report.total_steps
            status.loss, status.learning_rate, status.norm = report.loss, report.learning_rate, report.norm
            if report.fixed_loss is not None:
                status.fixed_loss = report.fixed_loss
            if report.snapshot is not None:
                status.snapshots.append(report.snapshot)
                status.last_snapshot = report.snapshot
            if not job.stop.is_set():
                status.message = f"step {report.step}/{report.total_steps}"

    def _update(self, job: _Job, **changes: Any) -> None:
        with self._lock:
            if job.stop.is_set():
                changes.pop("message", None)  # keep "interrupting" until the run has stopped
            for name, value in changes.items():
                setattr(job.status, name, value)

    def _end(self, job: _Job, state: JobState, message: str, result: TrainResult | None = None) -> None:
        """The final status; frees the slot for the next run in the same step, so a poller that sees the end can
        start another run at once."""
        with self._lock:
            status = job.status
            status.state, status.message, status.ended = state, message, time.time()
            if result is not None:
                status.step = result.steps_done
                status.snapshots = list(result.snapshots)
                status.last_snapshot = result.last_good_snapshot
            if self._active is job:
                self._active = None


def _outcome(result: TrainResult) -> tuple[JobState, str]:
    if result.finished:
        return "finished", f"finished at step {result.steps_done}; snapshots in {result.run_dir / 'embeddings'}"
    if result.stopped_reason == "interrupted":
        saved = f"; last snapshot {result.last_good_snapshot.name}" if result.last_good_snapshot else ""
        return "interrupted", f"interrupted at step {result.steps_done}{saved}; start it again with resume to continue"
    return "failed", str(result.stopped_reason)  # the loss became NaN/Inf: the reason names the last good snapshot


def _one_line(text: str) -> str:
    return " ".join(text.split())
