"""`Latest`: the first value shown at once, a burst after it shown once as its newest value
when the interval ends, and nothing left waiting after `drop()`."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject

from ftrag_desktop.app.throttle import Latest


def test_a_burst_is_shown_once_as_its_newest_value(qtbot: Any) -> None:
    owner = QObject()
    shown: list[int] = []
    latest: Latest[int] = Latest(shown.append, 80, owner)
    for value in range(1, 101):
        latest.push(value)
    assert shown == [1]
    assert latest.pending()
    qtbot.waitUntil(lambda: shown == [1, 100], timeout=2000)
    assert not latest.pending()
    qtbot.wait(200)  # quiet: nothing more is shown
    assert shown == [1, 100]
    latest.push(101)  # after a quiet interval: at once
    assert shown == [1, 100, 101]


def test_drop_forgets_the_waiting_value(qtbot: Any) -> None:
    owner = QObject()
    shown: list[str] = []
    latest: Latest[str] = Latest(shown.append, 50, owner)
    latest.push("first")
    latest.push("stale")
    latest.drop()
    qtbot.wait(150)
    assert shown == ["first"]
