"""One-line messages for the tab: what went wrong and what to do, never a stack trace.

Every event handler of the tab runs through :func:`guarded`. Errors the user can act on get their own sentence;
anything else is logged with its traceback (for a bug report) and shown as one line that points to the console.
"""

from __future__ import annotations

import errno
import functools
import html
import logging
from typing import Any, Callable

from ..errors import UserError

log = logging.getLogger("ti_studio")


def describe(error: BaseException) -> str:
    """The sentence the user sees for ``error``."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return f"The disk is full: free some space and try again (nothing was half-written). ({error.filename or ''})"
    if isinstance(error, PermissionError):
        return f"Permission denied: {error.filename or error}"
    if type(error).__name__ == "OutOfMemoryError" or isinstance(error, MemoryError):
        return ("Out of memory: close other programs or generations, lower the batch size or the training size, "
                "and try again")
    log.error("TI Studio: unexpected error", exc_info=error)
    return f"Unexpected error ({type(error).__name__}: {error}). The console has the details."


def error_html(message: str) -> str:
    return f"<div class='ti-studio-error'>{html.escape(message)}</div>"


def info_html(message: str) -> str:
    return f"<div class='ti-studio-info'>{html.escape(message)}</div>"


def guarded(outputs: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a handler with ``outputs`` outputs (the last one an HTML status) answer errors in its status.

    On error every other output is left as it was (``gr.update()``), so nothing the user typed is lost.
    """

    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def run(*args: Any) -> Any:
            try:
                return handler(*args)
            except Exception as error:  # noqa: BLE001 - every error becomes a message; unexpected ones are logged
                message = error_html(describe(error))
                if outputs == 1:
                    return message
                import gradio as gr

                return [gr.update() for _ in range(outputs - 1)] + [message]

        return run

    return wrap
