"""`--screenshot`: drive the window to a settled state, save a PNG of it, and quit.

Used by `make screenshots` (under Xvfb) to produce the README's pictures from a real indexed
folder and a real answer.  `evaluate` shows the Evaluate tab's report of the newest stored run
(and fails when there is none).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

if TYPE_CHECKING:
    from ftrag_desktop.app.main_window import MainWindow

log = logging.getLogger(__name__)
SETTLE_PAUSE_MS = 600  # let the last repaint and any layout animation finish


def take_screenshot_when_settled(
    window: MainWindow, path: str, *, ask: str | None, show: str, timeout_ms: int
) -> None:
    state = {"asked": False, "done": False}

    def save_and_quit(code: int = 0) -> None:
        if state["done"]:
            return
        state["done"] = True
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(path)
        if not ok:
            log.error("could not save the screenshot to %s", path)
        window.close()
        QApplication.exit(code if ok else 1)

    def on_settled() -> None:
        if state["done"]:
            return
        if ask and not state["asked"]:
            state["asked"] = True
            window.tabs.setCurrentIndex(0)
            window.chat.question_submitted.emit(ask)
            return
        if show == "library":
            window.tabs.setCurrentWidget(window.library)
            window.controller.refresh_status()
            QTimer.singleShot(SETTLE_PAUSE_MS * 2, save_and_quit)
        elif show == "evaluate":
            # The Evaluate tab with the report of the newest stored run.
            report = window.evaluate.report
            report.report_shown.connect(
                lambda *_: QTimer.singleShot(SETTLE_PAUSE_MS, save_and_quit)
            )
            report.runs_listed.connect(lambda ids: None if ids else save_and_quit(1))
            window.tabs.setCurrentWidget(window.evaluate)
            window.evaluate.show_report()
        elif show == "viewer":
            window.viewer.opened.connect(
                lambda *_: QTimer.singleShot(SETTLE_PAUSE_MS, save_and_quit)
            )
            window.viewer.failed.connect(lambda *_: save_and_quit(1))
            if not window.open_first_cited_source():
                save_and_quit(1)
        else:
            QTimer.singleShot(SETTLE_PAUSE_MS, save_and_quit)

    window.settled.connect(on_settled)
    QTimer.singleShot(timeout_ms, lambda: save_and_quit(1))
