"""Double of ``modules/shared_state.py`` (v1.10.1): ``State``, the progress of the one running job.

Kept: the fields ``/internal/progress`` reports and the adapter writes (L12-28), ``interrupt()`` (L79-81),
``begin(job)`` (L110-128: resets the fields, ``job_count = -1``), ``end()`` (L129-135) and
``assign_current_image(image)`` (L164-168: sets ``current_image`` and bumps ``id_live_preview``). The host's
``begin`` also calls ``devices.torch_gc()``; the double has nothing to free.
"""

import time


class State:
    skipped = False
    interrupted = False
    stopping_generation = False
    job = ""
    job_no = 0
    job_count = 0
    current_image = None
    id_live_preview = 0
    textinfo = None
    time_start = None

    def interrupt(self):
        self.interrupted = True

    def begin(self, job: str = "(unknown)"):
        self.time_start = time.time()
        self.job_count = -1
        self.job_no = 0
        self.current_image = None
        self.id_live_preview = 0
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.textinfo = None
        self.job = job

    def end(self):
        self.job = ""
        self.job_count = 0

    def assign_current_image(self, image):
        self.current_image = image
        self.id_live_preview += 1
