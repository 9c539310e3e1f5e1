"""The indexing panel's progress lines change several times a second: a change must stay in
its own label, not make the window's layouts recompute (that cost ~12 ms each time)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

from ftrag_desktop.app.indexing_panel import IndexingPanel
from ftrag_desktop.app.throttle import PROGRESS_EVERY_MS
from ftrag_desktop.core.events import SyncProgress, SyncSummary


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
    # the last update is shown (within the panel's redraw interval)
    qtbot.waitUntil(lambda: "1,443 of 5,000 files" in panel.detail_label.text(), timeout=2000)
    assert panel.detail_label.isVisibleTo(window) and panel.detail_label.width() > 100
    qtbot.waitUntil(lambda: panel.current_label.text().startswith("Now: f39.txt"), timeout=2000)
    assert requests.count == 0


def test_a_flood_of_progress_is_redrawn_a_few_times_a_second_ending_on_the_newest(
    qtbot: Any,
) -> None:
    """A sync sends one progress event per file (thousands a minute under churn): the panel
    redraws at most once per PROGRESS_EVERY_MS, and a finished sync is not overwritten by
    progress still waiting."""
    panel = IndexingPanel()
    qtbot.addWidget(panel)
    panel.show()
    texts: list[str] = []
    set_text = panel.detail_label.setText

    def recording_set_text(text: str) -> None:
        texts.append(text)
        set_text(text)

    panel.detail_label.setText = recording_set_text  # type: ignore[method-assign]
    for i in range(1, 2001):
        panel.show_sync_progress(SyncProgress(i, 2000, f"/docs/f{i}.txt", 50.0, 1.0))
        if i % 100 == 0:
            QApplication.processEvents()
    assert texts[0].startswith("1 of 2,000 files")  # the first at once
    assert len(texts) <= 3  # not 2,000
    qtbot.waitUntil(lambda: panel.detail_label.text().startswith("2,000 of 2,000"), timeout=2000)
    qtbot.waitUntil(lambda: panel.current_label.text() == "Now: f2000.txt", timeout=2000)

    # The first is shown now or waits; the second waits, then the sync finishes.
    panel.show_sync_progress(SyncProgress(5, 10, "/docs/late.txt", 1.0, 5.0))
    panel.show_sync_progress(SyncProgress(6, 10, "/docs/later.txt", 1.0, 4.0))
    panel.show_sync_finished(
        SyncSummary(
            root="/docs", indexed=10, unchanged=0, removed=0, renamed=0, failed=0, seconds=1.0
        )
    )
    done = panel.detail_label.text()
    assert done.startswith("docs: done (10 indexed)")
    qtbot.wait(PROGRESS_EVERY_MS * 2)
    assert panel.detail_label.text() == done  # the waiting progress was dropped
    assert panel.current_label.isHidden()


def test_the_index_line_names_a_shared_index_instead_of_a_size(qtbot: Any) -> None:
    panel = IndexingPanel()
    qtbot.addWidget(panel)
    base = {"documents_total": 3, "chunks": 7, "embedding_model": ""}
    panel.show_index({**base, "index_bytes": 2_621_440, "index_location": "/home/a/index"})
    assert "Index size: <b>2.5 MB</b>" in panel.index_label.text()  # 2.5 MiB
    shared = "s3://team/idx (shared, read-only; aws_region=eu<west>)"
    panel.show_index({**base, "index_bytes": 0, "index_location": shared})
    text = panel.index_label.text()
    assert (
        "Shared index: <b>s3://team/idx (shared, read-only; aws_region=eu&lt;west&gt;)</b>" in text
    )
    assert "Index size" not in text and "3 documents · 7 passages" in text
