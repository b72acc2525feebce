"""HTTP routes for the dataset stages under ``/ti-studio/v1/``: crop, recrop, tag and the caption editor.

Each route calls the same core function as the CLI, so a route's JSON is the CLI's ``--json`` summary. Paths in
requests are the user's local paths, read and written as the user running the WebUI: the host's own API has the
same trust model, and :func:`ti_studio.webui.on_app_started` adds these routes only where the host serves its API.

Errors: :class:`UserError` (bad input the user can fix: a missing folder, a bad size) answers 400
``{"detail": message}``; a body that does not fit the schema answers FastAPI's 422, as the host's API does;
anything else propagates to the host, which logs it and answers 500.

Runs are synchronous: a crop or tag request answers when the whole folder is done, like the host's own
``/sdapi/v1/train/embedding``. The handlers are plain ``def``, so FastAPI runs them in its thread pool and the
server keeps answering meanwhile. Progress and interrupt come with the async job API of the tab.

This module imports no host code: the host's credentials and GPU lock are passed to :func:`create_router`.
"""

import threading
from contextlib import AbstractContextManager
from secrets import compare_digest
from typing import Callable, Literal, Mapping, Optional

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, validator

from ..captions import Append, CaptionStore, Chain, Dedupe, Prepend, Remove, Replace, Sort, TagEdit
from ..crop.cropper import CropConfig, crop_folder, recrop
from ..crop.detectors import DETECTORS
from ..crop.framing import FACE_FRACTIONS, CropBox, FramingConfig
from ..errors import UserError
from ..tagging.postprocess import TagOptions, WriteMode
from ..tagging.tagger import TagConfig, tag_folder

PREFIX = "/ti-studio/v1"

#: Caption edits and undos from concurrent requests would interleave their journal records (the store does not
#: coordinate writers), and FastAPI runs requests in parallel threads: one caption write at a time.
_CAPTION_WRITES = threading.Lock()

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


# --- the router -------------------------------------------------------------------------------------------------


def create_router(credentials: Optional[Mapping[str, str]], gpu_lock: AbstractContextManager) -> APIRouter:
    """The routes, behind HTTP Basic auth when ``credentials`` (user -> password) are given.

    ``gpu_lock`` is held while tagging, which may run on the GPU (the host passes its ``queue_lock``).
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
        with _CAPTION_WRITES:
            result = CaptionStore(request.dataset).apply(edit)
        return {"changed": len(result.changes), "backup": str(result.backup) if result.backup else None}

    @router.post("/captions/undo", response_model=UndoResponse)
    def caption_undo(request: DatasetRequest) -> dict:
        with _CAPTION_WRITES:
            store = CaptionStore(request.dataset)
            result = store.undo()
        return {
            "undone": result.entry.description,
            "changed": len(result.restored),
            "skipped": [path.relative_to(store.root).as_posix() for path in result.skipped],
            "kept_backup": str(result.kept_backup) if result.kept_backup else None,
        }

    return router


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
