"""Double of ``modules/progress.py`` (v1.10.1): the task bookkeeping ``wrap_gradio_gpu_call`` does (L16-57).

``add_task_to_queue(id)`` puts the id in ``pending_tasks``; ``start_task(id)`` makes it ``current_task``;
``finish_task(id)`` moves it to ``finished_tasks``; ``record_results(id, res)`` keeps the result.
"""

import time
from collections import OrderedDict

current_task = None
pending_tasks = OrderedDict()
finished_tasks = []
recorded_results = []


def add_task_to_queue(id_job):
    pending_tasks[id_job] = time.time()


def start_task(id_task):
    global current_task
    current_task = id_task
    pending_tasks.pop(id_task, None)


def finish_task(id_task):
    global current_task
    if current_task == id_task:
        current_task = None
    finished_tasks.append(id_task)


def record_results(id_task, res):
    recorded_results.append((id_task, res))
