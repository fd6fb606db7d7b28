"""How a streaming command sets up CPython's cyclic garbage collector for its process.

The command line owns its process; a program that imports :mod:`c2ws` owns its own and
is left alone.

Every message is a few container objects (the decoded dict, its envelope, its event)
alive from the socket read until its batch is written, and freed by reference counting:
nothing on the message path makes cycles.  With CPython's default generation-0 threshold
(700) a burst with a few thousand messages in flight starts a collection every hundred
or so messages, promotes the messages still in flight, and so pulls in full collections
over everything the CLI imported.  Measured on a 200,000-message burst to /dev/null:
1,393 young and 11 full collections, 0.32 s of the run's 1.7 s of CPU.  With the
settings below: 2 young collections, no full one, under 0.01 s.

- ``gc.freeze()``: what startup made (modules, typer and rich objects) lives for the
  whole run; in the permanent generation it is skipped by every later collection.
- generation 0 at :data:`YOUNG_THRESHOLD` net allocations: more than a burst holds in
  flight at the default ``--max-buffer``, so in-flight messages are mostly gone by the
  time a collection looks at them.  Cycles (rare: exceptions, tracebacks) are still
  collected, in steps of at most that many objects, so memory stays bounded.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 50_000


def tune_for_streaming() -> None:
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
