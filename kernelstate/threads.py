"""The process thread pool behind ``execute(schedule="thread")``, ``onload(threaded=True)`` and ``schedule_task(threaded=True)``.

The size rule, in one place: the pool belongs to the process and has
``ks.config.nthreads`` threads (None or 0: ``min(32, CPUs + 4)``). The value is
read when the pool is first used and applied again whenever it is set at
process level (``ks.extension(nthreads=N)`` in a kernel or a ``--setup``
script, ``ks.config.set("nthreads", N, process=True)``), so it may be set
before or after first use. ``kernelstate serve --num-threads N`` and
``ks.serve(..., num_threads=N)`` set that same process value when the server
starts; it stays after the server stops. App code cannot change it (a
process-only option: setting it inside a session logs a warning).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor


def pool_size(nthreads: int | None) -> int:
    """The number of threads ``ks.config.nthreads`` stands for (None or 0: ``min(32, CPUs + 4)``)."""
    return nthreads or min(32, (os.cpu_count() or 1) + 4)


class _Pool:
    """The process thread pool.

    Its size is the process value of ``ks.config.nthreads``: read when the pool
    is first used, and applied again whenever that value is set (``resize``),
    so setting it before or after first use both work. On a resize, new work
    goes to a pool of the new size; work already queued or running finishes on
    the old one.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._size: int | None = None
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """How many worker threads the pool has (or will have when first used)."""
        with self._lock:
            if self._size is not None:
                return self._size
        from ._config import config

        return pool_size(config.process_value("nthreads"))

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                from ._config import config

                self._size = pool_size(config.process_value("nthreads"))
                self._executor = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="kernelstate")
            return self._executor

    def resize(self, nthreads: int | None) -> None:
        """Give the pool ``pool_size(nthreads)`` threads from now on (None: shut it down until next use)."""
        with self._lock:
            old = self._executor
            if old is None:
                return
            if nthreads is None:
                self._executor, self._size = None, None
            else:
                size = pool_size(nthreads)
                if size == self._size:
                    return
                self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="kernelstate")
                self._size = size
        old.shutdown(wait=False)


thread_pool = _Pool()
