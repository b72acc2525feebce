"""Tagging a folder: load the model once, score photos in batches, write one ``<stem>.txt`` caption per photo.

Speed comes from keeping the model busy. Decoding and resizing a phone photo costs tens of milliseconds of CPU, as
much as a batched forward pass on a GPU, so a thread pool prepares the next photos while ``session.run`` works on
the current batch (Pillow and onnxruntime both release the GIL); the old extensions did one photo at a time, open
-> resize -> run -> write, leaving the model idle for half the run. v3 models take any batch size; the v2 exports
have batch 1 baked into the graph, which we read from the model and respect.

A bad photo never stops the batch: it becomes one line in the report and an entry in the result's ``failed`` list.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from ..errors import UserError
from ..fileio import write_text
from ..images import ImageError, list_photos, open_photo
from ..onnx_session import OnnxModel, load_model
from .labels import Labels, load_labels
from .models import DEFAULT_MODEL, ModelFiles, resolve_model
from ..captions import caption_file, read_caption
from .postprocess import Prediction, TagOptions, WriteMode, merge_caption, select_tags
from .preprocess import InputSpec, input_spec, prepare_image

Report = Callable[[str], None]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TagConfig:
    """Everything a tagging run needs besides the folder. ``model``: a registry name, Hub repo id or folder.

    ``fast_decode`` lets libjpeg decode large JPEGs at 1/2-1/8 scale (still at least the model's side): several
    times less CPU per photo, at the price of input pixels that differ slightly from the reference preprocessing.
    ``write=False`` computes captions without touching any file (previews, benchmarks).
    """

    model: str = DEFAULT_MODEL
    options: TagOptions = field(default_factory=TagOptions)
    mode: WriteMode = "overwrite"
    batch_size: int = 8
    recursive: bool = False
    device: str = "auto"
    fast_decode: bool = False
    write: bool = True
    cache_dir: str | None = None
    endpoint: str | None = None  # a Hub mirror (WebUI setting); None = HF_ENDPOINT or huggingface.co


@dataclass(frozen=True)
class TaggedImage:
    """One photo's outcome: the caption text written (or that would be) and the confidences behind it."""

    path: Path
    caption_path: Path
    caption: str
    prediction: Prediction


@dataclass(frozen=True)
class FileIssue:
    """A photo that was skipped or failed, with a one-line reason; ``file`` is relative to the tagged folder."""

    file: str
    reason: str


@dataclass
class TagRun:
    """The result of :func:`tag_folder`."""

    model: str
    provider: str
    notice: str | None
    tagged: list[TaggedImage] = field(default_factory=list)
    skipped: list[FileIssue] = field(default_factory=list)
    failed: list[FileIssue] = field(default_factory=list)

    def summary(self) -> dict:
        """The CLI's ``--json`` summary."""
        return {
            "tagged": len(self.tagged),
            "skipped": [vars(issue) for issue in self.skipped],
            "failed": [vars(issue) for issue in self.failed],
            "provider": self.provider,
            "model": self.model,
            "notice": self.notice,
        }


class Tagger:
    """A loaded WD14 model: the onnxruntime session, its labels, and what its input and output look like."""

    def __init__(self, files: ModelFiles, device: str = "auto"):
        self.files = files
        self.labels: Labels = load_labels(files.labels)
        try:
            self.onnx: OnnxModel = load_model(files.model, device=device)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types: a damaged or foreign file
            reason = (str(exc).strip().splitlines() or ["no details"])[0][:200]
            raise UserError(f"{files.model}: onnxruntime cannot load it ({reason}); fetch the file again") from None
        session = self.onnx.session
        shape = session.get_inputs()[0].shape
        if len(shape) != 4 or shape[3] != 3:
            raise UserError(f"{files.model}: not a WD14-style tagger (input shape {shape}, expected [batch, H, W, 3])")
        self.input: InputSpec = input_spec(session)
        output = session.get_outputs()[0]
        self.output_name: str = output.name
        width = output.shape[-1] if output.shape else None
        if isinstance(width, int) and width != len(self.labels):
            raise UserError(
                f"{files.model} scores {width} tags but {files.labels} lists {len(self.labels)}: "
                f"the two files come from different models"
            )

    @property
    def provider(self) -> str:
        return self.onnx.providers[0]

    def batch_size(self, wanted: int) -> int:
        """The batch to run: ``wanted``, unless the graph has a fixed batch (v2 models: 1)."""
        return self.input.fixed_batch or max(1, wanted)

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """Scores ``[N, K]`` (sigmoid, 0-1) for a prepared batch ``[N, side, side, 3]``.

        A graph with a fixed batch larger than N (the last, partial batch of a run) gets blank images as filler,
        whose rows are dropped.
        """
        count, fixed = len(batch), self.input.fixed_batch
        if fixed and count < fixed:
            batch = np.concatenate([batch, np.zeros((fixed - count, *batch.shape[1:]), batch.dtype)])
        return self.onnx.session.run([self.output_name], {self.input.name: batch})[0][:count]

    def predict(self, images: Iterable[Image.Image], options: TagOptions = TagOptions()) -> list[Prediction]:
        """Tag in-memory RGB images (the UI's single-image preview); runs in chunks of the model's batch size."""
        prepared = [prepare_image(image, self.input.side) for image in images]
        step = self.batch_size(len(prepared))
        results: list[Prediction] = []
        for start in range(0, len(prepared), step):
            for row in self.scores(np.stack(prepared[start : start + step])):
                results.append(select_tags(row, self.labels, options))
        return results


_LOADED: dict[tuple[str, str], Tagger] = {}


def load_tagger(model: str = DEFAULT_MODEL, device: str = "auto", cache_dir: str | None = None,
                endpoint: str | None = None) -> Tagger:
    """The tagger for ``model`` on ``device``, loaded once per process (keyed by the model file's path).

    Downloads happen here, the first time; later calls reuse the cached files and session.
    """
    files = resolve_model(model, cache_dir=cache_dir, endpoint=endpoint)
    key = (os.fspath(files.model), device)
    if key not in _LOADED:
        _LOADED[key] = Tagger(files, device=device)
    return _LOADED[key]


def unload_taggers() -> None:
    """Drop every loaded session (frees its memory, VRAM included, once nothing else holds the tagger)."""
    _LOADED.clear()


def tag_folder(
    folder: str | os.PathLike,
    config: TagConfig = TagConfig(),
    report: Report = lambda line: None,
    progress: Progress | None = None,
) -> TagRun:
    """Tag every photo in ``folder`` and write ``<stem>.txt`` beside each according to ``config.mode``.

    Raises :class:`UserError` for a missing or photo-less folder and for a model that cannot be had; a photo that
    cannot be read is reported, listed in ``failed``, and the run goes on. ``progress(done, total)`` is called from
    this thread once per photo, whatever its outcome.
    """
    root = Path(folder)
    photos = list_photos(root, recursive=config.recursive)
    if not photos:
        raise UserError(f"no photos in {root}" + ("" if config.recursive else " (subfolders need --recursive)"))
    tagger = load_tagger(config.model, config.device, config.cache_dir, config.endpoint)
    run = TagRun(model=tagger.files.source, provider=tagger.provider, notice=tagger.onnx.notice)
    report(f"model {run.model}, running on {tagger.onnx.device}")
    if run.notice:
        report(f"note: {run.notice}")
    batch_size = tagger.batch_size(config.batch_size)
    if batch_size < config.batch_size:
        report(f"this model has a fixed batch of {batch_size}; running {batch_size} photo(s) at a time")

    ledger = _Ledger(run, root, len(photos), report, progress)
    todo: list[Path] = []
    for path, reason in _plan(photos, config.mode):
        if reason:
            ledger.skipped(path, reason)
        else:
            todo.append(path)

    writer = _CaptionWriter(config, ledger)
    batch: list[tuple[Path, np.ndarray]] = []

    def score() -> None:
        rows = tagger.scores(np.stack([array for _, array in batch]))
        for (path, _), row in zip(batch, rows):
            writer.submit(path, select_tags(row, tagger.labels, config.options))
        batch.clear()

    decode_side = tagger.input.side if config.fast_decode else None
    try:
        for path, item in _prepared(todo, tagger.input.side, decode_side, window=2 * batch_size + _workers()):
            if isinstance(item, ImageError):
                ledger.failed(path, str(item).removeprefix(f"{path.name}: "))
            else:
                batch.append((path, item))
                if len(batch) == batch_size:
                    score()
            writer.collect()
        if batch:
            score()
    finally:
        writer.close()
    report(
        f"tagged {len(run.tagged)}, skipped {len(run.skipped)}, failed {len(run.failed)}"
        f" ({run.model}, {tagger.onnx.device})"
    )
    return run


class _Ledger:
    """Records each photo's outcome in the run, reports it and advances progress: one place for all three."""

    def __init__(self, run: TagRun, root: Path, total: int, report: Report, progress: Progress | None):
        self.run, self.root, self.total, self.report, self.progress = run, root, total, report, progress
        self.done = 0

    def tagged(self, image: TaggedImage) -> None:
        self.run.tagged.append(image)
        self._step()

    def skipped(self, path: Path, reason: str) -> None:
        self.run.skipped.append(FileIssue(self._relative(path), reason))
        self.report(f"skipped {self._relative(path)}: {reason}")
        self._step()

    def failed(self, path: Path, reason: str) -> None:
        self.run.failed.append(FileIssue(self._relative(path), reason))
        self.report(f"failed {self._relative(path)}: {reason}")
        self._step()

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _step(self) -> None:
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total)


class _CaptionWriter:
    """Merges and writes captions on one background thread, so a slow disk (every write is fsynced) never keeps
    the model waiting; outcomes are handed to the ledger in submission order, from the caller's thread."""

    def __init__(self, config: TagConfig, ledger: _Ledger):
        self.config, self.ledger = config, ledger
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ti-tag-write")
        self.queue: deque[tuple[Path, Future]] = deque()

    def submit(self, photo: Path, prediction: Prediction) -> None:
        self.queue.append((photo, self.pool.submit(_caption, photo, prediction, self.config)))

    def collect(self, wait: bool = False) -> None:
        """Record finished writes (all of them, waiting, when ``wait``)."""
        while self.queue and (wait or self.queue[0][1].done()):
            photo, future = self.queue.popleft()
            try:
                self.ledger.tagged(future.result())
            except UserError as exc:
                self.ledger.failed(photo, str(exc))

    def close(self) -> None:
        try:
            self.collect(wait=True)
        finally:
            self.pool.shutdown(wait=True)


def _plan(photos: list[Path], mode: WriteMode) -> Iterator[tuple[Path, str | None]]:
    """Each photo with a reason to skip it, or ``None`` to tag it.

    Two photos with the same stem (``a.jpg``, ``a.png``) would share ``a.txt``: the first one in sorted order gets
    it, the others are skipped with a reason instead of silently overwriting each other. In ``skip`` mode a photo
    whose caption already has text is skipped without being decoded (an empty caption file counts as none).
    """
    owners: dict[Path, Path] = {}
    for photo in photos:
        target = caption_file(photo)
        if target in owners:
            yield photo, f"{target.name} is already the caption of {owners[target].name}"
            continue
        owners[target] = photo
        if mode == "skip" and _has_text(target):
            yield photo, "caption exists"
        else:
            yield photo, None


def _has_text(caption: Path) -> bool:
    try:
        return bool(read_caption(caption).strip())
    except UserError:
        return True  # text we cannot decode is still someone's caption: leave it alone


def _caption(photo: Path, prediction: Prediction, config: TagConfig) -> TaggedImage:
    target = caption_file(photo)
    existing = read_caption(target) if config.mode in ("append", "prepend") else None
    text = merge_caption(prediction.tags, existing, config.mode)
    if config.write:
        try:
            write_text(target, text)
        except OSError as exc:
            raise UserError(f"cannot write {target.name}: {exc.strerror or exc}") from None
    return TaggedImage(path=photo, caption_path=target, caption=text, prediction=prediction)


def _workers() -> int:
    """Preparation threads. Up to 8: a GPU model eats photos faster than a few cores can decode them. On a CPU model
    they do not crowd out inference, because :func:`_prepared` keeps only a bounded window of photos in flight: once
    the window is full the threads sleep until the model takes a batch."""
    return max(1, min(8, os.cpu_count() or 1))


def _prepare(path: Path, side: int, decode_side: int | None) -> np.ndarray:
    photo = open_photo(path, min_long_side=decode_side)
    return prepare_image(photo.image, side)


def _prepared(
    paths: list[Path], side: int, decode_side: int | None, window: int
) -> Iterator[tuple[Path, np.ndarray | ImageError]]:
    """Yield each path with its prepared array (or its :class:`ImageError`), in order, preparing up to ``window``
    photos ahead in a thread pool so decoding overlaps inference while memory stays bounded."""
    pool = ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="ti-tag-prep")
    queue: deque[tuple[Path, Future]] = deque()
    remaining = iter(paths)
    try:
        for path in remaining:
            queue.append((path, pool.submit(_prepare, path, side, decode_side)))
            if len(queue) >= window:
                break
        while queue:
            path, future = queue.popleft()
            following = next(remaining, None)
            if following is not None:
                queue.append((following, pool.submit(_prepare, following, side, decode_side)))
            try:
                yield path, future.result()
            except ImageError as exc:
                yield path, exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
