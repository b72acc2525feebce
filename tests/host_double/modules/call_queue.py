"""Double of ``modules/call_queue.py`` (v1.10.1): ``queue_lock``, the one lock that serialises GPU jobs.

The host's is ``queue_lock = fifo_lock.FIFOLock()`` (call_queue.py L8): a lock that wakes waiters in arrival order,
used as ``with queue_lock:`` by the UI's GPU calls (L11-18, L21-46) and the HTTP API (webui.py L18-23 passes it to
``Api``). It offers ``acquire(blocking=True)``, ``release()`` and the ``with`` protocol (fifo_lock.py); a plain
``threading.Lock`` offers the same, and the order of waiters does not matter to the adapter's tests.
"""

import threading

queue_lock = threading.Lock()
