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
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)


def settle(reason: str) -> None:
    """Freeze every object tracked now out of future collections.

    `gc.freeze()` is a constant-time list splice; `gc.get_freeze_count()` walks the frozen
    objects (about 25 ms here), so it is not called on this path.
    """
    gc.freeze()
    log.debug("heap settled (%s)", reason)


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
