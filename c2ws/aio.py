"""``c2ws.astream()``: the same stream for asyncio programs::

    async with c2ws.astream([12345678]) as s:
        async for msg in s:
            ...
            await s.ack(msg)          # with auto_ack=False

The same engine underneath (:class:`~c2ws.streaming.Stream`: no second protocol or
reconnect implementation).  The engine has one consumer, so every call into it (start,
each request, acknowledgements and their commit, close) runs on ONE thread per stream,
an executor thread the event loop awaits: the loop is never blocked, and an idle stream
waits on a condition, costing no CPU.  ``on_event`` and a cursor store run on that
thread too (reach the loop with ``loop.call_soon_threadsafe``; open an SQLite connection
for :class:`~c2ws.cursors.SqliteCursors` with ``check_same_thread=False`` and leave it
to the stream while it runs).

Cancelling the task that waits for a message ends the stream cleanly: the wait is cut
short, then the stream is closed (unsubscribe, close 1000) before the cancellation
propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar

from c2ws.streaming import Batch, Message, Stream, StreamEnd, stream

if TYPE_CHECKING:
    from c2ws.events import SubscriptionKey

__all__ = ["AsyncStream", "astream"]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_ENDED: Final = object()


class AsyncStream:
    """A :class:`~c2ws.streaming.Stream` for asyncio: ``async with`` starts it and
    closes it cleanly; ``async for`` yields its typed messages; :meth:`ack`,
    :meth:`batches` and :meth:`aclose` are awaitable.  Iterating without ``async with``
    starts it on the first request; then only :meth:`aclose` (or the stream's own end)
    closes it."""

    def __init__(self, sync: Stream) -> None:
        self.sync = sync
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    # --- the executor --------------------------------------------------------------------

    async def _run(self, function: Callable[..., _T], *args: object) -> _T:
        """``function(*args)`` on the stream's thread; cancelled: the stream ends."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix="c2ws-astream")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, function, *args)
        try:
            return await future
        except asyncio.CancelledError:
            # The thread may be waiting for messages: cut that short, then close on the
            # same thread (after the call it is in), before the cancellation goes on.
            self.sync.interrupt()
            await asyncio.shield(self.aclose(clean=False))
            raise

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> AsyncStream:
        """Connect and subscribe (see :meth:`Stream.start`)."""
        await self._run(self.sync.start)
        return self

    async def aclose(self, *, clean: bool = True) -> None:
        """Close the stream (see :meth:`Stream.close`) and its thread.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        executor = self._executor
        if executor is None:
            self.sync.close(clean=clean)
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, lambda: self.sync.close(clean=clean))
        finally:
            executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncStream:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose(clean=exc_type is None)

    # --- consuming ------------------------------------------------------------------------

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Message:
        message = await self._run(self._next_message)
        if message is _ENDED:
            raise StopAsyncIteration
        return message  # type: ignore[return-value]

    def _next_message(self) -> Message | object:
        try:
            return next(self.sync)
        except StopIteration:
            return _ENDED

    async def batches(self, *, include_empty: bool = False) -> AsyncIterator[Batch]:
        """The messages batch by batch (see :meth:`Stream.batches`)."""
        while True:
            batch = await self._run(self.sync.next_batch)
            if batch is None:
                return
            if batch or include_empty:
                yield batch

    async def ack(self, item: Message | Batch) -> None:
        """Acknowledge ``item`` and everything before it (see :meth:`Stream.ack`); the
        commit to the cursor store runs on the stream's thread."""
        await self._run(self.sync.ack, item)

    # --- reports ----------------------------------------------------------------------------

    @property
    def end_reason(self) -> StreamEnd | None:
        """Why the stream ended (see :attr:`Stream.end_reason`)."""
        return self.sync.end_reason

    @property
    def delivered(self) -> int:
        """Signal/Position messages delivered (what ``count`` counts)."""
        return self.sync.delivered

    @property
    def cursors(self) -> Mapping[SubscriptionKey, int]:
        """The acknowledged cursor of each stream."""
        return self.sync.cursors


def _async_of(make: Callable[_P, Stream]) -> Callable[_P, AsyncStream]:
    def astream(*args: _P.args, **kwargs: _P.kwargs) -> AsyncStream:
        return AsyncStream(make(*args, **kwargs))

    astream.__doc__ = (
        "An :class:`AsyncStream`: :func:`c2ws.stream` for asyncio, with the same "
        "parameters (settings are checked, and ConfigError raised, at once)."
    )
    return astream


astream = _async_of(stream)
