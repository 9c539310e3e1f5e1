"""Keeps Python's cyclic garbage collector off the GUI thread's critical path.

A full (generation 2) collection walks every tracked object. After startup the app holds about
170,000 of them (the modules and classes of PySide6, LanceDB, pyarrow, the ollama client), and
walking them takes about 200 ms on this machine: a visible freeze that came back every 10 to
15 s while a large folder was being indexed (`bench/gui_latency.py` found every stall over
50 ms lined up with one). Those objects live as long as the app, so `settle()` moves them into
the collector's permanent generation (`gc.freeze()`) once the window is up and again once the
library has opened. Reference counting still frees them; only the cycle search skips them.

Opening the library imports LanceDB on a worker thread: some 100,000 new objects in about a
second, which trigger full collections of their own while the window paints its first frames
(one 60 ms stall measured, the GUI thread waiting for the GIL that the collector held).
`collector_paused()` keeps the collector off while that runs, and freezes what it made.

While a folder is indexed or reorganised, each status report leaves thousands of rows that
live until the next report; the objects tracked outside the frozen set grow to a few hundred
thousand, and a full collection over them held the GUI thread 45-95 ms (`bench/churn.py
--gui`). `settle_young()` first collects the young generations (cheap: what is recent), then
freezes the rest, at most every `SETTLE_EVERY_S`. The cost: a cycle that becomes garbage after
it was frozen is never collected. The app's long-lived state (rows, documents) holds no
cycles and is freed by reference counting; widgets that are created and dropped (answers,
source cards) are the exception, bounded by what the user does.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)


def settle(reason: str) -> None:
    """Freeze every object tracked now out of future collections.

    `gc.freeze()` is a constant-time list splice; `gc.get_freeze_count()` walks the frozen
    objects (about 25 ms here), so it is not called on this path.
    """
    gc.freeze()
    log.debug("heap settled (%s)", reason)


SETTLE_EVERY_S = 15.0
_last_settled = [0.0]


def settle_young(reason: str) -> bool:
    """Collect the young generations, then freeze what is left (see the module docstring);
    at most every `SETTLE_EVERY_S` seconds.  True when it ran."""
    now = time.monotonic()
    if now - _last_settled[0] < SETTLE_EVERY_S:
        return False
    _last_settled[0] = now
    gc.collect(1)
    settle(reason)
    return True


@contextlib.contextmanager
def collector_paused(reason: str) -> Iterator[None]:
    """Run a burst of long-lived allocations (imports, opening the library) with the cyclic
    collector off, then `settle()`: what it made lives as long as the app."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        settle(reason)
        if was_enabled:
            gc.enable()
