"""HTTP routes under ``/ti-studio/v1/``: crop, recrop, tag, the caption editor, training jobs and compare.

Each route calls the same core function as the CLI, so a route's JSON is the CLI's ``--json`` summary. Paths in
requests are the user's local paths, read and written as the user running the WebUI: the host's own API has the
same trust model, and :func:`ti_studio.webui.on_app_started` adds these routes only where the host serves its API.

Errors: :class:`UserError` (bad input the user can fix: a missing folder, a bad size) answers 400
``{"detail": message}``; a body that does not fit the schema answers FastAPI's 422, as the host's API does;
anything else propagates to the host, which logs it and answers 500.

Crop and tag are synchronous: a request answers when the whole folder is done. The handlers are plain ``def``, so
FastAPI runs them in its thread pool and the server keeps answering meanwhile. Training runs for hours, so unlike
the host's synchronous ``/sdapi/v1/train/embedding`` it is a job (:mod:`ti_studio.training.jobs`): ``POST train``
checks the request and answers 202 with an id at once (a bad request is a 400 and starts nothing), ``GET
train/{id}`` reports progress, ``POST train/{id}/interrupt`` stops it with a resumable snapshot; an unknown id
is a 404.

This module imports no host code: the host's credentials, GPU lock and training jobs are passed to
:func:`create_router`.
"""

import dataclasses
from contextlib import AbstractContextManager
from pathlib import Path
from secrets import compare_digest
from typing import Callable, Literal, Mapping, Optional

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, validator

from ..captions import Append, CaptionStore, Chain, Dedupe, Prepend, Remove, Replace, Sort, TagEdit
from ..compare.comparison import compare_run
from ..compare.xyz import DEFAULT_Y_VALUES, XyzPreset
from ..crop.cropper import CropConfig, crop_folder, recrop
from ..crop.detectors import DETECTORS
from ..crop.framing import FACE_FRACTIONS, CropBox, FramingConfig
from ..errors import UserError
from ..tagging.postprocess import TagOptions, WriteMode
from ..tagging.tagger import TagConfig, tag_folder
from ..training.config import LatentSampling, NormControl, OutputFormat, Precision, TrainConfig
from ..training.jobs import JobState, TrainJobRequest, TrainJobs, TrainJobStatus, UnknownJobError

PREFIX = "/ti-studio/v1"

_FRAMINGS = tuple(FACE_FRACTIONS)
_DEFAULT_FRAMING = next(name for name, share in FACE_FRACTIONS.items() if share == FramingConfig.face_fraction)


# --- requests and responses -------------------------------------------------------------------------------------


class CropRequest(BaseModel):
    """``POST crop``: one square crop per photo of ``src`` (only read) into the dataset folder ``out``."""

    src: str
    out: str
    size: int = CropConfig.size
    detector: Literal[DETECTORS] = CropConfig.detector  # type: ignore[valid-type]  # the core's tuple of names
    framing: Literal[_FRAMINGS] = _DEFAULT_FRAMING  # type: ignore[valid-type]
    faces: Literal["largest", "all"] = CropConfig.faces
    no_face: Literal["skip", "centre"] = CropConfig.no_face
    recursive: bool = CropConfig.recursive


class FileReason(BaseModel):
    file: str
    reason: str


class FileWarning(BaseModel):
    file: str
    warning: str


class CropResponse(BaseModel):
    """The crop summary (:meth:`ti_studio.crop.cropper.CropSummary.to_json`)."""

    detector: str
    notice: Optional[str]
    written: int
    photos: int
    stopped: bool
    skipped: list[FileReason]
    warnings: list[FileWarning]
    outputs: list[str]


def _positive(value):
    if value is not None and value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _fraction(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError("must be between 0 and 1")
    return value


# Constraints are validators rather than ``Field(gt=...)``: pydantic 1 turns those into constrained types whose
# hypothesis-plugin registration crashes under the hypothesis the tests use (and would in any host that has it).


class Box(BaseModel):
    """A square in the original photo's full-resolution pixels (it may reach past the photo: padded)."""

    left: float
    top: float
    side: float

    _side_positive = validator("side", allow_reuse=True)(_positive)


class RecropRequest(BaseModel):
    """``POST recrop``: re-export the crop ``name`` of ``dataset`` with a new box and/or size; no detection runs."""

    dataset: str
    name: str
    box: Optional[Box] = None
    size: Optional[int] = None

    _size_positive = validator("size", allow_reuse=True)(_positive)


class RecropResponse(BaseModel):
    output: str
    size: int
    box: Box
    flags: list[str]
    warnings: list[str]
    adjusted: bool


class TagRequest(BaseModel):
    """``POST tag``: WD14 tags for every photo of ``folder``, written to ``<stem>.txt`` beside each."""

    folder: str
    model: str = TagConfig.model
    general: float = TagOptions.general_threshold
    character: float = TagOptions.character_threshold
    mcut_general: bool = TagOptions.mcut_general
    mcut_character: bool = TagOptions.mcut_character
    exclude: list[str] = []
    mode: WriteMode = TagConfig.mode
    batch: int = TagConfig.batch_size

    _thresholds = validator("general", "character", allow_reuse=True)(_fraction)
    _batch_positive = validator("batch", allow_reuse=True)(_positive)


class TagResponse(BaseModel):
    """The tag summary (:meth:`ti_studio.tagging.tagger.TagRun.summary`)."""

    tagged: int
    skipped: list[FileReason]
    failed: list[FileReason]
    provider: str
    model: str
    notice: Optional[str]


class TagCountRow(BaseModel):
    tag: str
    count: int


class StatsResponse(BaseModel):
    """The frequency table: ``count`` captions (of ``images``) hold ``tag``, most frequent first."""

    images: int
    tags: list[TagCountRow]


class CaptionEditRequest(BaseModel):
    """``POST captions/edit``: one undoable operation over every caption of ``dataset``.

    Applied in the CLI's fixed order: remove, replace (``{old: new}``, an empty ``new`` removes), dedupe, sort,
    prepend, append, so a prepended trigger word is not sorted away.
    """

    dataset: str
    remove: list[str] = []
    replace: dict[str, str] = {}
    dedupe: bool = False
    sort: Optional[Literal["alpha", "frequency"]] = None
    prepend: list[str] = []
    append: list[str] = []


class CaptionEditResponse(BaseModel):
    """``backup``: the folder holding the captions' old bytes; None when no caption changed (nothing to undo)."""

    changed: int
    backup: Optional[str]


class DatasetRequest(BaseModel):
    dataset: str


class UndoResponse(BaseModel):
    """``skipped``: captions changed since the operation, left alone; their old text stays in ``kept_backup``."""

    undone: str
    changed: int
    skipped: list[str]
    kept_backup: Optional[str]


class TrainRequest(BaseModel):
    """``POST train``: train the embedding ``name`` on ``dataset``; the run folder is ``run_dir`` (snapshots in
    ``run_dir/embeddings/NAME-STEP.*``). ``model``: what to train on where the server loads models itself (the
    WebUI trains on its loaded model and ignores it). The other fields are :class:`TrainConfig`'s, which checks
    them (a bad value is a 400 naming the setting)."""

    dataset: str
    run_dir: str
    model: str = ""
    precision: Precision = TrainConfig.precision
    resume: bool = False
    name: str
    vectors: int = TrainConfig.vectors
    init_text: str = TrainConfig.init_text
    learning_rate: str = TrainConfig.learning_rate
    steps: int = TrainConfig.steps
    batch_size: int = TrainConfig.batch_size
    grad_accum: int = TrainConfig.grad_accum
    size: Optional[int] = TrainConfig.size
    template: str = TrainConfig.template
    save_every: int = TrainConfig.save_every
    preview_every: int = TrainConfig.preview_every
    preview_prompt: str = TrainConfig.preview_prompt
    shuffle_tags: bool = TrainConfig.shuffle_tags
    tag_dropout: float = TrainConfig.tag_dropout
    latent_sampling: LatentSampling = TrainConfig.latent_sampling
    flip: bool = TrainConfig.flip
    seed: int = TrainConfig.seed
    norm_control: NormControl = TrainConfig.norm_control
    output_format: OutputFormat = TrainConfig.output_format


#: The request fields that are :class:`TrainConfig` settings (the rest say where and on what to train).
_CONFIG_FIELDS = {field.name for field in dataclasses.fields(TrainConfig)} & set(TrainRequest.__fields__)


class TrainStarted(BaseModel):
    id: str


class TrainStatusResponse(BaseModel):
    """A job's status (:class:`ti_studio.training.jobs.TrainJobStatus`); times are seconds since the epoch."""

    id: str
    state: JobState
    step: int
    total_steps: int
    run_dir: str
    message: str
    loss: Optional[float]
    learning_rate: Optional[float]
    norm: Optional[float]
    fixed_loss: Optional[float]
    snapshots: list[str]
    last_snapshot: Optional[str]
    started: Optional[float]
    ended: Optional[float]


class CompareRequest(BaseModel):
    """``POST compare``: the txt2img X/Y/Z preset over the snapshots of the run folder ``run_dir`` at ``steps``
    (default: spread over the run, plus the best), against the prompt variations ``y_values`` ([] for none).
    ``export_to``: copy the chosen snapshots there (the WebUI's embeddings folder) under their comparison names."""

    run_dir: str
    steps: Optional[list[int]] = None
    y_values: list[str] = list(DEFAULT_Y_VALUES)
    prompt_template: str = XyzPreset.prompt_template
    negative_prompt: str = ""
    seed: int = XyzPreset.seed
    export_to: Optional[str] = None


class ComparedSnapshot(BaseModel):
    name: str  # the comparison name the preset uses
    step: int
    file: str
    loss: Optional[float]
    fixed_loss: Optional[float]
    norm: Optional[float]


class CompareResponse(BaseModel):
    """The comparison (:meth:`ti_studio.compare.comparison.Comparison.to_json`)."""

    infotext: str
    snapshots: list[ComparedSnapshot]
    exported: list[str]


# --- the router -------------------------------------------------------------------------------------------------


def create_router(credentials: Optional[Mapping[str, str]], gpu_lock: AbstractContextManager,
                  jobs: Optional[TrainJobs] = None) -> APIRouter:
    """The routes, behind HTTP Basic auth when ``credentials`` (user -> password) are given.

    ``gpu_lock`` is held while tagging, which may run on the GPU (the host passes its ``queue_lock``). The training
    routes exist only with ``jobs``, which knows how to load the model to train on (and holds its own GPU lock).
    """
    dependencies = [Depends(basic_auth(credentials))] if credentials else []
    router = APIRouter(prefix=PREFIX, tags=["TI Studio"], dependencies=dependencies, route_class=_UserErrorRoute)

    @router.post("/crop", response_model=CropResponse)
    def crop(request: CropRequest) -> dict:
        """Crop a photo folder (synchronous: answers when every photo is done)."""
        return crop_folder(request.src, request.out, _crop_config(request)).to_json()

    @router.post("/recrop", response_model=RecropResponse)
    def recrop_one(request: RecropRequest) -> dict:
        box = CropBox(left=request.box.left, top=request.box.top, side=request.box.side) if request.box else None
        record = recrop(request.dataset, request.name, box=box, size=request.size)
        return {"output": record.output, "size": record.size, "box": record.box.to_json(), "flags": record.flags,
                "warnings": record.warnings, "adjusted": record.adjusted}

    @router.post("/tag", response_model=TagResponse)
    def tag(request: TagRequest) -> dict:
        """Tag a folder under the GPU lock (synchronous: answers when every photo is done)."""
        config = _tag_config(request)
        with gpu_lock:
            return tag_folder(request.folder, config).summary()

    @router.get("/captions/stats", response_model=StatsResponse)
    def caption_stats(dataset: str) -> dict:
        store = CaptionStore(dataset)
        rows = [{"tag": row.tag, "count": row.count} for row in store.stats()]
        return {"images": len(store.images), "tags": rows}

    @router.post("/captions/edit", response_model=CaptionEditResponse)
    def caption_edit(request: CaptionEditRequest) -> dict:
        edit = _caption_edit(request)
        result = CaptionStore(request.dataset).apply(edit)
        return {"changed": len(result.changes), "backup": str(result.backup) if result.backup else None}

    @router.post("/captions/undo", response_model=UndoResponse)
    def caption_undo(request: DatasetRequest) -> dict:
        store = CaptionStore(request.dataset)
        result = store.undo()
        return {
            "undone": result.entry.description,
            "changed": len(result.restored),
            "skipped": [path.relative_to(store.root).as_posix() for path in result.skipped],
            "kept_backup": str(result.kept_backup) if result.kept_backup else None,
        }

    @router.post("/compare", response_model=CompareResponse)
    def compare(request: CompareRequest) -> dict:
        return compare_run(request.run_dir, steps=request.steps, y_values=request.y_values,
                           prompt_template=request.prompt_template, negative_prompt=request.negative_prompt,
                           seed=request.seed, export_to=request.export_to).to_json()

    if jobs is not None:
        _add_training_routes(router, jobs)
    return router


def _add_training_routes(router: APIRouter, jobs: TrainJobs) -> None:
    @router.post("/train", status_code=202, response_model=TrainStarted)
    def start_training(request: TrainRequest) -> dict:
        """Check the request and start the run in the background; poll ``GET train/{id}``."""
        return {"id": jobs.start(_train_job_request(request))}

    @router.get("/train/{job_id}", response_model=TrainStatusResponse)
    def training_status(job_id: str) -> dict:
        return _known_job(jobs.status, job_id).to_json()

    @router.post("/train/{job_id}/interrupt", response_model=TrainStatusResponse)
    def interrupt_training(job_id: str) -> dict:
        """Stop after the current step, saving a resumable snapshot; answers the status (still running until the
        step ends: poll for ``interrupted``)."""
        return _known_job(jobs.interrupt, job_id).to_json()


def basic_auth(credentials: Mapping[str, str]) -> Callable[..., None]:
    """A dependency that checks HTTP Basic credentials as the host's API does (modules/api/api.py L279-284).

    A missing or wrong pair answers 401 with ``WWW-Authenticate: Basic``. The password is always compared, with
    :func:`secrets.compare_digest` on UTF-8 bytes: timing does not tell a known user from an unknown one, and a
    non-ASCII password in ``--api-auth`` cannot turn every request into a 500 (``compare_digest`` raises on
    non-ASCII ``str``).
    """

    def check(given: HTTPBasicCredentials = Depends(HTTPBasic())) -> None:
        expected = credentials.get(given.username)
        password_ok = compare_digest(given.password.encode(), (expected or "").encode())
        if expected is None or not password_ok:
            raise HTTPException(status_code=401, detail="Incorrect username or password",
                                headers={"WWW-Authenticate": "Basic"})

    return check


class _UserErrorRoute(APIRoute):
    """A route that answers a :class:`UserError` with 400 ``{"detail": message}``; other exceptions pass through.

    Done per route, not with ``app.exception_handler``, so the host's app and other extensions' routes are untouched.
    """

    def get_route_handler(self) -> Callable:
        handle = super().get_route_handler()

        async def handle_user_errors(request: Request) -> Response:
            try:
                return await handle(request)
            except UserError as exc:
                return JSONResponse(status_code=400, content={"detail": str(exc)})

        return handle_user_errors


def _crop_config(request: CropRequest) -> CropConfig:
    return CropConfig(
        size=request.size, detector=request.detector,
        framing=FramingConfig(face_fraction=FACE_FRACTIONS[request.framing]),
        faces=request.faces, no_face=request.no_face, recursive=request.recursive,
    )


def _tag_config(request: TagRequest) -> TagConfig:
    options = TagOptions(
        general_threshold=request.general, character_threshold=request.character,
        mcut_general=request.mcut_general, mcut_character=request.mcut_character,
        exclude=tuple(tag.strip() for tag in request.exclude if tag.strip()),
    )
    return TagConfig(model=request.model, options=options, mode=request.mode, batch_size=request.batch)


def _train_job_request(request: TrainRequest) -> TrainJobRequest:
    config = TrainConfig(**request.dict(include=_CONFIG_FIELDS))
    return TrainJobRequest(config=config, dataset=Path(request.dataset), run_dir=Path(request.run_dir),
                           model=request.model, resume=request.resume)


def _known_job(lookup: Callable[[str], TrainJobStatus], job_id: str) -> TrainJobStatus:
    """``lookup(job_id)``, with an unknown id answered 404 (it names no resource) rather than 400."""
    try:
        return lookup(job_id)
    except UnknownJobError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


def _caption_edit(request: CaptionEditRequest) -> TagEdit:
    """The request's edits as one undoable chain; none at all is a :class:`UserError`."""
    edits: list[TagEdit] = []
    if request.remove:
        edits.append(Remove(tuple(request.remove)))
    edits += [Replace(old, new) for old, new in request.replace.items()]
    if request.dedupe:
        edits.append(Dedupe())
    if request.sort:
        edits.append(Sort(request.sort))
    if request.prepend:
        edits.append(Prepend(tuple(request.prepend)))
    if request.append:
        edits.append(Append(tuple(request.append)))
    return Chain(tuple(edits))
