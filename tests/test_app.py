"""The first app window: opens offscreen, loads the library off the GUI thread, searches."""

from __future__ import annotations

from pathlib import Path

from ftrag_desktop.app.main_window import MainWindow
from ftrag_desktop.config import Settings, save_settings
from ftrag_desktop.paths import Home


def test_window_indexes_watched_folder_and_searches(
    qtbot,
    tmp_path: Path,
    ftrag_home: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    ollama_server.embed_backend = "hash"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nCapybaras enjoy warm springs.\n")
    home = Home(ftrag_home)
    save_settings(
        home.settings_file, Settings(ollama_host=ollama_server.url, watched_folders=[str(docs)])
    )
    window = MainWindow(home)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: "1 documents indexed" in window._library_label.text(), timeout=30000)
    assert "connected" in window._ollama_label.text()
    window._query.setText("capybaras")
    window._on_search_clicked()
    qtbot.waitUntil(lambda: "a.md" in window._sources.toPlainText(), timeout=10000)
    window._on_query_return_pressed()
    qtbot.waitUntil(lambda: "[1]" in window._answer.toPlainText(), timeout=10000)
    qtbot.waitUntil(lambda: "cited" in window._sources.toPlainText(), timeout=10000)
    window.close()
