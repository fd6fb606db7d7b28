"""The sink every byte renderer writes through: short writes are finished, a failure
is final."""

from __future__ import annotations

import errno
import io
import os
import threading

import pytest

from c2ws.render.sink import ByteSink


class ShortWrites(io.RawIOBase):
    """A raw stream like a file on a nearly full disk: each write takes at most ``step``
    bytes, and once ``capacity`` bytes are in, a write fails with ENOSPC."""

    def __init__(self, step: int, capacity: int | None = None) -> None:
        self.data = bytearray()
        self.step = step
        self.capacity = capacity
        self.calls = 0

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        self.calls += 1
        view = memoryview(b)  # type: ignore[arg-type]
        room = len(view) if self.capacity is None else self.capacity - len(self.data)
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        taken = min(self.step, len(view), room)
        self.data += view[:taken]
        return taken


def test_a_short_write_is_finished() -> None:
    raw = ShortWrites(step=7)
    sink = ByteSink(raw)
    assert sink.write(b"0123456789" * 100) == 1000
    assert bytes(raw.data) == b"0123456789" * 100


def test_after_a_failure_nothing_more_reaches_the_stream() -> None:
    raw = ShortWrites(step=100, capacity=250)
    sink = ByteSink(raw)
    with pytest.raises(OSError) as first:
        sink.write(b"x" * 400)
    assert first.value.errno == errno.ENOSPC and len(raw.data) == 250
    raw.capacity = None  # space freed: still nothing more, or the cut line would not be last
    calls = raw.calls
    for again in (lambda: sink.write(b"y\n"), sink.flush):
        with pytest.raises(OSError) as later:
            again()
        assert later.value.errno == errno.ENOSPC
    assert raw.calls == calls and bytes(raw.data) == b"x" * 250


def test_a_shared_sink_shares_its_failure() -> None:
    sink = ByteSink(ShortWrites(step=1, capacity=0))
    assert ByteSink.of(sink) is sink
    with pytest.raises(OSError):
        sink.write(b"x")
    assert ByteSink.of(sink).failure is not None


def test_a_non_blocking_stream_that_cannot_take_more_is_waited_for() -> None:
    """A raw non-blocking stream says "would block" by returning None, not a count."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    data = os.urandom(1 << 20)  # far more than a pipe holds
    received = bytearray()

    def read() -> None:
        while chunk := os.read(read_end, 65536):
            received.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with open(write_end, "wb", buffering=0) as raw:
        ByteSink(raw).write(data)
    reader.join(60)
    os.close(read_end)
    assert bytes(received) == data
