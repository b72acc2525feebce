"""Double of ``modules/call_queue.py`` (v1.10.1): ``queue_lock`` and ``wrap_gradio_gpu_call``.

- ``queue_lock = fifo_lock.FIFOLock()`` (L8) wakes waiters in arrival order and is used as ``with queue_lock:`` by
  the UI's GPU calls and the HTTP API; a plain ``threading.Lock`` offers the same protocol, and the order of
  waiters does not matter to the adapter's tests.
- ``wrap_gradio_gpu_call(func, extra_outputs=None)`` (L21-46): a first argument shaped ``"task(...)"`` is the task
  id, queued in ``progress``; under ``queue_lock`` it runs ``state.begin(job=id)``, the call (with the task id
  still among its arguments), ``progress.record_results``/``finish_task`` and ``state.end()``. The outer wrappers
  (L49-62 ``wrap_gradio_call``, L65-110 ``wrap_gradio_call_no_job``) reset ``interrupted``/``job_count`` afterwards
  and turn an exception into ``extra_outputs + ["<div class='error'>Type: message</div>"]`` (default extra outputs
  ``[None, '']``); the timing HTML they append to the last output is left out.
"""

import html
import threading
from functools import wraps

queue_lock = threading.Lock()


def wrap_gradio_gpu_call(func, extra_outputs=None):
    from modules import progress, shared

    @wraps(func)
    def f(*args, **kwargs):
        if args and type(args[0]) == str and args[0].startswith("task(") and args[0].endswith(")"):
            id_task = args[0]
            progress.add_task_to_queue(id_task)
        else:
            id_task = None
        with queue_lock:
            shared.state.begin(job=id_task)
            progress.start_task(id_task)
            try:
                res = func(*args, **kwargs)
                progress.record_results(id_task, res)
            finally:
                progress.finish_task(id_task)
            shared.state.end()
        return res

    @wraps(func)
    def g(*args, **kwargs):
        try:
            res = list(f(*args, **kwargs))
        except Exception as e:
            res = (extra_outputs if extra_outputs is not None else [None, '']) + [
                f"<div class='error'>{html.escape(f'{type(e).__name__}: {e}')}</div>"]
        finally:
            shared.state.interrupted = False
            shared.state.job_count = 0
            shared.state.job = ""
        return tuple(res)

    return g
