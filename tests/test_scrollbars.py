"""The flat scroll bars (`app/scrollbars.py`): the busiest views use them, and they paint."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QScrollArea, QWidget

from ftrag_desktop.app.chat_view import ChatView
from ftrag_desktop.app.scrollbars import FLAT, flatten
from ftrag_desktop.app.sources_panel import SourcesPanel


def test_the_chat_and_sources_scroll_bars_are_flat(qtbot: Any) -> None:
    chat, sources = ChatView(), SourcesPanel()
    for w in (chat, sources):
        qtbot.addWidget(w)
    for area in (chat._scroll, sources._scroll):
        assert area.verticalScrollBar().styleSheet() == FLAT


def test_a_flat_bar_paints_its_handle_in_the_palette_and_the_groove_in_base(qtbot: Any) -> None:
    area = QScrollArea()
    qtbot.addWidget(area)
    content = QWidget()
    content.setFixedSize(100, 2000)
    area.setWidget(content)
    area.resize(200, 400)
    flatten(area)
    area.show()
    qtbot.waitExposed(area)
    bar = area.verticalScrollBar()
    image = bar.grab().toImage()
    palette = bar.palette()
    x = bar.width() // 2
    handle = image.pixelColor(x, bar.height() // 20)  # the handle sits at the top
    groove = image.pixelColor(x, bar.height() - 5)
    assert handle.rgb() == palette.color(QPalette.ColorRole.Mid).rgb()
    assert groove.rgb() == palette.color(QPalette.ColorRole.Base).rgb()
    assert bar.width() == 12
