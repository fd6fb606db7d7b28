"""The C heap's free pages given back during a long fast stream (c2ws/cli/heap.py)."""

from __future__ import annotations

import sys

import pytest

from c2ws import spec
from c2ws.cli.heap import HeapTrimmer, malloc_trim


def test_it_trims_once_per_every_messages_written_whatever_the_batch_sizes() -> None:
    calls: list[None] = []
    trimmer = HeapTrimmer(100, trim=lambda: calls.append(None))
    for size in (30, 30, 30):
        trimmer.written(size)
    assert calls == []  # 90 written
    trimmer.written(30)  # 120: the first trim; the count starts again
    assert len(calls) == 1
    trimmer.written(99)
    assert len(calls) == 1
    trimmer.written(250)  # one large batch: one trim, not one per 100
    assert len(calls) == 2
    assert trimmer.trims == 2


def test_an_idle_run_never_trims() -> None:
    calls: list[None] = []
    trimmer = HeapTrimmer(trim=lambda: calls.append(None))
    trimmer.written(0)
    trimmer.written(spec.HEAP_TRIM_EVERY_MESSAGES - 1)
    assert calls == []


def test_every_must_be_positive() -> None:
    with pytest.raises(ValueError):
        HeapTrimmer(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_glibc_malloc_trim_is_found_and_runs() -> None:
    trim = malloc_trim()
    if trim is None:  # a Linux without glibc (musl): nothing to trim with, said so
        pytest.skip("no malloc_trim in this C library")
    trim()
    trimmer = HeapTrimmer(1)
    trimmer.written(1)
    assert trimmer.trims == 1

