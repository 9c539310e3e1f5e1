"""Background threads of the app's process run at a lower priority than the GUI thread."""

from __future__ import annotations

import threading

from PySide6.QtCore import QThreadPool

from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.priority import (
    BACKGROUND_NICENESS,
    QT_THREADS,
    lower_other_threads,
    niceness_of,
)


def _main_tid() -> int:
    tid = threading.main_thread().native_id
    assert tid is not None
    return tid


def _native_id_of_a_thread_that_waits() -> tuple[threading.Thread, threading.Event, int]:
    started, stop = threading.Event(), threading.Event()
    ids: list[int] = []

    def wait() -> None:
        ids.append(threading.get_native_id())
        started.set()
        stop.wait(10)

    thread = threading.Thread(target=wait, name="ftrag-test-priority")
    thread.start()
    started.wait(5)
    return thread, stop, ids[0]


def test_other_threads_are_lowered_and_the_gui_thread_is_not() -> None:
    main = _main_tid()
    before = niceness_of(main)
    thread, stop, tid = _native_id_of_a_thread_that_waits()
    try:
        assert niceness_of(tid) == before  # a new thread inherits its creator's
        assert lower_other_threads() >= 1
        assert niceness_of(tid) == max(before or 0, BACKGROUND_NICENESS)
        assert niceness_of(main) == before
        assert lower_other_threads() == 0  # already low: nothing to do, never raised back
    finally:
        stop.set()
        thread.join()


def test_threads_named_as_spared_are_left_alone() -> None:
    thread, stop, tid = _native_id_of_a_thread_that_waits()
    before = niceness_of(tid)
    try:
        with open(f"/proc/self/task/{tid}/comm", encoding="utf-8") as f:
            name = f.read().strip()
        lower_other_threads(spare=(name[:3],))
        assert niceness_of(tid) == before
        lower_other_threads(spare=QT_THREADS)
        assert niceness_of(tid) == max(before or 0, BACKGROUND_NICENESS)
    finally:
        stop.set()
        thread.join()


def test_a_background_operation_runs_below_the_gui_thread(qtbot) -> None:  # type: ignore[no-untyped-def]
    seen: list[object] = []
    run_in_background(lambda: niceness_of(threading.get_native_id()), on_done=seen.append)
    qtbot.waitUntil(lambda: bool(seen))
    main = niceness_of(_main_tid())
    assert main is not None
    assert seen == [max(main, BACKGROUND_NICENESS)]
    assert QThreadPool.globalInstance().waitForDone(5000)
