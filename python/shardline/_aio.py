"""asyncio support for RecordFuture: ``await future``."""

from __future__ import annotations

import asyncio
from typing import Any, Generator


def _wake(afut: "asyncio.Future[None]") -> None:
    if not afut.done():
        afut.set_result(None)


def await_future(future: Any) -> Generator[Any, None, Any]:
    """The ``__await__`` of a RecordFuture.

    The done callback runs on Shardline's callback thread and only hands a
    wake-up to the event loop with ``call_soon_threadsafe``; the result is
    then read on the loop's thread.
    """
    if not future.done():
        loop = asyncio.get_running_loop()
        afut: asyncio.Future[None] = loop.create_future()

        def on_done(_: Any) -> None:
            try:
                loop.call_soon_threadsafe(_wake, afut)
            except RuntimeError:
                pass  # the loop is closed; nobody is waiting any more

        future.add_done_callback(on_done)
        yield from afut
    return future.result()
