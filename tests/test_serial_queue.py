"""SerialQueue: background operations on one resource finish in the order they were submitted."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QThreadPool

from ftrag_desktop.app.workers import SerialQueue, run_in_background
from ftrag_desktop.errors import UserError


def _slow(value: int, delay: float = 0.3) -> int:
    time.sleep(delay)
    return value


def test_a_pool_alone_can_finish_out_of_order(qtbot) -> None:  # type: ignore[no-untyped-def]
    # Why the queue exists: without it a slow listing lands after a quick save.  A pool of
    # its own with two threads, so that the machine's core count does not decide.
    pool = QThreadPool()
    pool.setMaxThreadCount(2)
    seen: list[object] = []
    run_in_background(lambda: _slow(1), on_done=seen.append, pool=pool)
    run_in_background(lambda: 2, on_done=seen.append, pool=pool)
    qtbot.waitUntil(lambda: len(seen) == 2)
    assert seen == [2, 1]
    assert pool.waitForDone(5000)


def test_operations_run_one_at_a_time_in_order_and_errors_do_not_stop_the_queue(qtbot) -> None:  # type: ignore[no-untyped-def]
    queue = SerialQueue()
    seen: list[object] = []
    running = 0
    overlap = []
    lock = threading.Lock()

    def op(value: int, delay: float) -> int:
        nonlocal running
        with lock:
            running += 1
            overlap.append(running)
        time.sleep(delay)
        with lock:
            running -= 1
        return value

    def broken() -> int:
        raise UserError("the store is read-only")

    queue.submit(lambda: op(1, 0.3), on_done=seen.append)
    queue.submit(broken, on_done=seen.append, on_error=lambda m: seen.append(f"error: {m}"))
    queue.submit(lambda: op(3, 0.0), on_done=seen.append)
    assert queue.pending() == 3
    qtbot.waitUntil(lambda: len(seen) == 3)
    assert seen == [1, "error: the store is read-only", 3]
    assert max(overlap) == 1
    assert queue.pending() == 0
    assert QThreadPool.globalInstance().waitForDone(5000)


def test_a_callback_may_submit_more_and_it_runs_after_what_was_already_waiting(qtbot) -> None:  # type: ignore[no-untyped-def]
    queue = SerialQueue()
    seen: list[object] = []

    def then_more(value: object) -> None:
        seen.append(value)
        queue.submit(lambda: "from the callback", on_done=seen.append)

    queue.submit(lambda: _slow(1, 0.1), on_done=then_more)
    queue.submit(lambda: 2, on_done=seen.append)
    qtbot.waitUntil(lambda: len(seen) == 3)
    assert seen == [1, 2, "from the callback"]
    assert QThreadPool.globalInstance().waitForDone(5000)
