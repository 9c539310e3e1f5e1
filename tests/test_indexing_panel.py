"""The indexing panel's progress lines change several times a second: a change must stay in
its own label, not make the window's layouts recompute (that cost ~12 ms each time)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

from ftrag_desktop.app.indexing_panel import IndexingPanel
from ftrag_desktop.core.events import SyncProgress


class LayoutRequests(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self.count += 1
        return False


def test_progress_updates_do_not_relayout_the_window(qtbot: Any) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    panel = IndexingPanel()
    QVBoxLayout(window).addWidget(panel)
    window.resize(700, 400)
    window.show()
    qtbot.waitExposed(window)
    panel.set_busy(True)
    QApplication.processEvents()
    requests = LayoutRequests()
    for widget in (window, panel):
        widget.installEventFilter(requests)
    for i in range(1, 40):
        name = "x" * (i % 13)  # texts of every length, and the file line shown and hidden
        panel.show_sync_progress(
            SyncProgress(i * 37, 5000, f"/docs/{name}/f{i}.txt" if i % 5 else "", 2.0 * i, 900.0)
        )
        QApplication.processEvents()
    assert requests.count == 0
    assert "1,443 of 5,000 files" in panel.detail_label.text()  # the last update is shown
    assert panel.detail_label.isVisibleTo(window) and panel.detail_label.width() > 100
    assert panel.current_label.text().startswith("Now: f39.txt")
