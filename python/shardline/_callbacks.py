"""The thread that runs done callbacks of RecordFutures (and so wakes asyncio
awaiters), one per process, started with the first producer.

Producer threads never run Python code: a completed future that has
callbacks is put on a native queue, which this thread drains with the GIL
released while it waits.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Optional

from ._native import CallbackQueue

_LOGGER = logging.getLogger("shardline")
_lock = threading.Lock()
_queue: Optional[CallbackQueue] = None
_thread: Optional[threading.Thread] = None


def _run(queue: CallbackQueue) -> None:
    while True:
        items = queue.take(1.0)
        if items is None:
            return
        _call(items)
        # Let go of the futures and callbacks now, not when the next batch
        # comes: a callback may hold on to large objects.
        del items


def _call(items: list) -> None:
    for future, callbacks in items:
        for callback in callbacks:
            try:
                callback(future)
            except BaseException:  # noqa: BLE001 - like concurrent.futures
                _LOGGER.exception("exception calling callback for %r", future)


def queue() -> CallbackQueue:
    """The callback queue of this process, starting its thread if needed."""
    global _queue, _thread
    with _lock:
        if _queue is None:
            _queue = CallbackQueue()
            _thread = threading.Thread(
                target=_run, args=(_queue,), name="shardline-callbacks", daemon=True
            )
            _thread.start()
        return _queue


def stop(timeout: float = 5.0) -> None:
    """Runs the callbacks still queued, then stops the thread."""
    global _queue, _thread
    with _lock:
        q, t = _queue, _thread
        _queue = _thread = None
    if q is not None:
        q.stop()
    if t is not None:
        t.join(timeout)


def _after_fork_in_child() -> None:
    # The thread does not exist in the child; a new producer starts a new one.
    global _queue, _thread, _lock
    _lock = threading.Lock()
    _queue = _thread = None


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(stop)
