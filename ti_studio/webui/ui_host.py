"""The tab's :class:`~ti_studio.ui.host.Host` inside A1111 WebUI v1.10.1.

Long jobs are queued and reported exactly as the host's own Train tab does it (modules/ui.py L1037-1069): the
handler goes through ``call_queue.wrap_gradio_gpu_call`` (the GPU queue lock, ``shared.state.begin/end``, the task
id that ``requestProgress`` polls) and reports through ``shared.state`` (job_count, job_no, textinfo, the live
preview image); the Interrupt buttons call ``shared.state.interrupt()``. Training runs on ``shared.sd_model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PIL import Image

from ..training.backend import TrainingBackend
from ..ui.host import HostSettings
from .settings import read_settings


class HostProgress:
    """:class:`~ti_studio.ui.host.JobProgress` over ``shared.state`` (modules/shared_state.py L12-168)."""

    def start(self, total: int, text: str) -> None:
        from modules import shared

        shared.state.job_count = total
        shared.state.job_no = 0
        shared.state.textinfo = text

    def advance(self, done: int, text: str | None = None, image: Image.Image | None = None) -> None:
        from modules import shared

        shared.state.job_no = done
        if text is not None:
            shared.state.textinfo = text
        if image is not None:
            shared.state.assign_current_image(image)

    def interrupted(self) -> bool:
        from modules import shared

        return bool(shared.state.interrupted)


class WebuiHost:
    kind = "webui"

    def settings(self) -> HostSettings:
        return read_settings()

    def gpu_job(self, fn: Callable[..., list], outputs: int) -> Callable[..., list]:
        from modules.call_queue import wrap_gradio_gpu_call
        from gradio import update

        def without_task_id(task_id: str, *args: Any) -> list:
            return fn(*args)

        # On an error the host answers ``extra_outputs`` + an error HTML: our status is the last output.
        return wrap_gradio_gpu_call(without_task_id, extra_outputs=[update() for _ in range(outputs - 1)])

    def progress(self) -> HostProgress:
        return HostProgress()

    def interrupt(self) -> None:
        from modules import shared

        shared.state.interrupt()

    def model_label(self) -> str:
        from modules import shared

        info = getattr(shared.sd_model, "sd_checkpoint_info", None) if shared.sd_model is not None else None
        return getattr(info, "title", "") or "no checkpoint loaded"

    def load_backend(self, model: str, precision: str) -> TrainingBackend:
        """The host's loaded checkpoint (``model`` is unused: the user picks the checkpoint at the top of WebUI)."""
        from .sd_model_backend import load_sd_model_backend

        return load_sd_model_backend(precision)

    def release_backend(self, backend: TrainingBackend) -> None:
        """Unfreeze, restore the host's optimizations and VAE placement, unregister the temporary embedding."""
        backend.close()

    def embedding_names(self) -> set[str]:
        from modules import sd_hijack

        return set(sd_hijack.model_hijack.embedding_db.word_embeddings)

    def register_snapshots(self, folder: Path) -> str:
        """Load ``folder`` as an extra embeddings folder (textual_inversion.py L111-256: ``add_embedding_dir``, then a
        forced reload), so the snapshot names work in txt2img at once. The host forgets extra folders on restart."""
        from modules import sd_hijack

        database = sd_hijack.model_hijack.embedding_db
        database.add_embedding_dir(str(folder))
        database.load_textual_inversion_embeddings(force_reload=True)
        names = [path.stem for path in folder.iterdir()]
        loaded = [name for name in names if name in database.word_embeddings]
        skipped = [name for name in names if name in database.skipped_embeddings]
        message = f"{len(loaded)} snapshots loaded for txt2img from {folder}."
        if skipped:
            message += (f" {len(skipped)} were skipped: they do not fit the loaded checkpoint (trained on another "
                        "model family).")
        return message

    def connect_send_to_txt2img(self, button: Any, infotext: Any) -> None:
        """The host's paste-parameters binding (infotext_utils.py L23-33, L135-137): it must be registered while the
        host builds its UI (inside ``on_ui_tabs``), since ``create_ui`` resets the list before and connects it after."""
        from modules import infotext_utils

        infotext_utils.register_paste_params_button(
            infotext_utils.ParamBinding(paste_button=button, tabname="txt2img", source_text_component=infotext))
