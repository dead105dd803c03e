"""DataLoader workers (and converter tasks) that outlive their parent process exit within seconds.

A worker whose training process died without cleanup (SIGKILL, a crash, ``os._exit``) can block for
good: its queue's feeder thread writes batches into a pipe nobody drains (forked siblings hold the read
end open, so the write never fails), and at exit multiprocessing joins that thread. torch's own watchdog
only ends the worker loop; the exit then hangs in that join. A thread per worker process polls the
parent instead and ends the process at once when it is gone: nothing of a dead trainer's epoch is
worth saving, and the read-ahead threads and shared memory go with the process. The converter's
forked tasks use the same watch (converter/executor.py), so this module does not import torch.
"""

from __future__ import annotations

import logging
import os
import threading

logger = logging.getLogger(__name__)

# Seconds between two looks at the parent: an orphaned worker is gone within about this long.
POLL_INTERVAL_S = 1.0

_watched_pid: int | None = None  # the process whose parent is watched (a fork gets its own watch)


def exit_with_parent() -> None:
    """In a DataLoader worker: end this process when its parent (the training process) is gone.
    Idempotent per process; a no-op outside DataLoader workers (a training process is never ended)."""
    from torch.utils.data import get_worker_info  # the reader's caller has torch loaded; a converter not

    global _watched_pid
    if _watched_pid == os.getpid() or get_worker_info() is None:
        return
    parent = os.getppid()
    if parent <= 1:
        return
    _watched_pid = os.getpid()
    watch_parent(parent)


def watch_parent(parent: int) -> None:
    """End this process (``os._exit(1)``) within about ``POLL_INTERVAL_S`` once ``parent`` is gone."""
    threading.Thread(target=_watch, args=(parent,), name="lerobot-wds-parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    event = threading.Event()
    while not event.wait(POLL_INTERVAL_S):
        if os.getppid() != parent:  # reparented: the training process is gone
            logger.warning("parent process %d is gone: process %d exits", parent, os.getpid())
            os._exit(1)
