"""CPU priorities: the window's thread first, the app's own background work after it.

The scheduler shares the cores between threads, not processes.  The library process and the
parse workers are niced when they start (`service_process`, `parse.pool`), but the app's own
process also runs background threads: searches and answers on the worker pool, LanceDB's
Rust runtime threads (made by whichever thread first needs them, some at import), and the
library-events reader.  At the same priority as the GUI thread, they share the cores with
it equally when both are busy, and a tab's paint then spends about as long waiting for a core
as it spends running (`bench/churn.py --gui`).

On Linux a niceness belongs to a thread, and a thread inherits its creator's: so lowering
every thread except the GUI thread (and Qt's own) once, then each new worker as it starts,
keeps it so.  Making a thread nicer needs no privilege; making it less nice again would, so
nothing here ever does.  Elsewhere these are no-ops: on macOS the same call with a thread's
id would name a process.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

# Searches and answers the user waits for run here: above the library process and its
# parse workers (`service_process.CHILD_NICENESS`, `parse.pool.WORKER_NICENESS`).
BACKGROUND_NICENESS = 5
SWEEP_EVERY_S = 2.0
QT_THREADS = ("Q",)  # Qt names its threads after their class: QXcbEventQueue, QDBusConnection

_LINUX = sys.platform.startswith("linux")
_TASKS = "/proc/self/task"
_last_sweep = 0.0
_lowered = threading.local()


def lower_this_thread(niceness: int = BACKGROUND_NICENESS) -> None:
    """Lower the calling thread's priority to `niceness` (once per thread; never raises it)."""
    if getattr(_lowered, "done", False):
        return
    _lowered.done = True
    _lower(threading.get_native_id(), niceness)


def lower_other_threads(
    keep: int | None = None,
    niceness: int = BACKGROUND_NICENESS,
    *,
    every_s: float = 0.0,
    spare: tuple[str, ...] = QT_THREADS,
) -> int:
    """Lower every thread of this process except `keep` (the GUI thread's native id) and
    those whose name starts with one of `spare` (Qt's own: the X11 event reader that brings
    the window its input, D-Bus).

    With `every_s`, does nothing if the last sweep was less than that long ago (callers on a
    hot path).  Returns how many threads were lowered.
    """
    global _last_sweep
    now = time.monotonic()
    if every_s and now - _last_sweep < every_s:
        return 0
    _last_sweep = now
    if keep is None:
        keep = threading.main_thread().native_id
    try:
        tids = [int(name) for name in os.listdir(_TASKS)]
    except OSError:  # not Linux
        return 0
    return sum(
        _lower(tid, niceness) for tid in tids if tid != keep and not _name(tid).startswith(spare)
    )


def _name(tid: int) -> str:
    try:
        with open(f"{_TASKS}/{tid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def niceness_of(tid: int) -> int | None:
    """The niceness of thread `tid` of this process (None where that cannot be read)."""
    if not _LINUX:
        return None
    try:
        return os.getpriority(os.PRIO_PROCESS, tid)
    except (OSError, AttributeError):
        return None


def _lower(tid: int, niceness: int) -> bool:
    current = niceness_of(tid)
    if current is None or current >= niceness:
        return False
    with contextlib.suppress(OSError):  # the thread may have ended meanwhile
        os.setpriority(os.PRIO_PROCESS, tid, niceness)
        return True
    return False


__all__ = [
    "BACKGROUND_NICENESS",
    "QT_THREADS",
    "SWEEP_EVERY_S",
    "lower_other_threads",
    "lower_this_thread",
    "niceness_of",
]
