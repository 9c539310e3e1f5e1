"""The Settings dialog (pytest-qt, offscreen): edit, inline validation, test connection against
the Ollama-protocol test server and a dead port, accept, restore defaults; and the main
window's Settings action."""

from __future__ import annotations

import copy
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QToolBar

from ftrag_desktop.app.main_window import MainWindow
from ftrag_desktop.app.settings_dialog import SettingsDialog
from ftrag_desktop.config import Settings, save_settings
from ftrag_desktop.core.llm import ModelInfo
from ftrag_desktop.paths import Home
from tests.ollama_server import VERSION

WAIT = 60_000


def model(name: str, *, embedding: bool = False) -> ModelInfo:
    return ModelInfo(name, "llama", "3B", "Q4_K_M", 1, "", "", embedding)


MODELS = [
    model("llama3.2:latest"),
    model("qwen2.5:7b"),
    model("nomic-embed-text:latest", embedding=True),
    model("all-minilm:latest", embedding=True),
]


@pytest.fixture
def live() -> Settings:
    return Settings(
        ollama_host="http://127.0.0.1:11434",
        chat_model="llama3.2:latest",
        embed_model="nomic-embed-text:latest",
        excluded_patterns=["*.log"],
        watched_folders=["/home/me/Papers"],
    )


@pytest.fixture
def dialog(qtbot: Any, live: Settings) -> Iterator[SettingsDialog]:
    dlg = SettingsDialog(live, MODELS)
    qtbot.addWidget(dlg)
    dlg.show()
    yield dlg


def combo_items(combo: Any) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_opens_with_the_current_values(dialog: SettingsDialog, live: Settings) -> None:
    assert dialog.host_edit.text() == live.ollama_host
    assert dialog.chat_model.currentText() == "llama3.2:latest"
    assert dialog.embed_model.currentText() == "nomic-embed-text:latest"
    assert combo_items(dialog.chat_model) == ["llama3.2:latest", "qwen2.5:7b"]
    assert combo_items(dialog.embed_model) == ["", "nomic-embed-text:latest", "all-minilm:latest"]
    assert (dialog.chunk_size.value(), dialog.chunk_overlap.value()) == (1000, 150)
    assert dialog.top_k.value() == live.top_k
    assert dialog.search_mode.currentData() == "hybrid"
    assert dialog.num_ctx.value() == 0 and "Automatic" in dialog.num_ctx.text()
    assert dialog.temperature.value() == pytest.approx(live.temperature)
    assert dialog.excluded_patterns.toPlainText() == "*.log"
    assert dialog.ok_button.isEnabled() and dialog.ok_button.text() == "Save"
    assert not dialog.notice.isVisible()
    assert dialog.settings() == live  # nothing edited: the same values


def test_invalid_values_show_a_message_and_disable_ok(dialog: SettingsDialog) -> None:
    dialog.host_edit.setText("localhost:11434")
    assert "Start the address with http://" in dialog.error_text("ollama_host")
    assert not dialog.ok_button.isEnabled()

    dialog.host_edit.setText("http://localhost:11434")
    assert dialog.error_text("ollama_host") == ""
    assert dialog.ok_button.isEnabled()

    dialog.chunk_overlap.setValue(700)
    assert "at most half the chunk size (500" in dialog.error_text("chunk_overlap")
    assert not dialog.ok_button.isEnabled()
    dialog.chunk_size.setValue(2000)  # fixing the other field clears the message
    assert dialog.error_text("chunk_overlap") == "" and dialog.ok_button.isEnabled()

    dialog.chat_model.setEditText("")
    assert "Choose a chat model" in dialog.error_text("chat_model")
    dialog.chat_model.setEditText("qwen2.5:7b")

    dialog.num_ctx.setValue(1000)
    assert "Use 0 (automatic)" in dialog.error_text("num_ctx")
    dialog.num_ctx.setValue(8192)

    dialog.excluded_patterns.setPlainText("*.log\n[unclosed")
    assert "Line 2, '[unclosed'" in dialog.error_text("excluded_patterns")
    assert not dialog.ok_button.isEnabled()
    dialog.accept()  # the Enter key, or a script: refused while invalid
    assert dialog.result() != QDialog.DialogCode.Accepted and dialog.isVisible()

    dialog.excluded_patterns.setPlainText("*.log\n# notes\n\ndrafts/")
    assert dialog.error_text("excluded_patterns") == ""
    assert dialog.ok_button.isEnabled()


def test_changes_that_need_a_reindex_say_so_before_saving(dialog: SettingsDialog) -> None:
    dialog.temperature.setValue(0.8)
    assert not dialog.notice.isVisible() and dialog.ok_button.text() == "Save"

    dialog.chunk_size.setValue(600)
    assert dialog.notice.isVisible()
    assert "split into passages again" in dialog.notice.text()
    assert dialog.ok_button.text() == "Save and re-index"

    dialog.chunk_size.setValue(1000)
    assert not dialog.notice.isVisible()

    dialog.excluded_patterns.setPlainText("*.log\nprivate/")
    assert "files that are now excluded leave the index" in dialog.notice.text()
    dialog.embed_model.setEditText("all-minilm:latest")
    assert "new embedding model" in dialog.notice.text()


def test_a_model_ollama_lacks_is_pointed_out(dialog: SettingsDialog) -> None:
    assert not dialog.chat_model_note.isVisible()
    dialog.chat_model.setEditText("mistral")
    assert dialog.chat_model_note.isVisible()
    assert "ollama pull mistral" in dialog.chat_model_note.text()
    assert dialog.ok_button.isEnabled()  # a hint, not an error: it can be pulled later


def test_accepting_returns_new_settings_and_leaves_the_live_ones(
    qtbot: Any, dialog: SettingsDialog, live: Settings
) -> None:
    before = copy.deepcopy(live)
    dialog.host_edit.setText("http://10.0.0.7:11434")
    dialog.chat_model.setEditText("qwen2.5:7b")
    dialog.embed_model.setEditText("")  # none: keyword search only
    dialog.chunk_size.setValue(1200)
    dialog.chunk_overlap.setValue(200)
    dialog.top_k.setValue(9)
    dialog.search_mode.setCurrentIndex(dialog.search_mode.findData("keyword"))
    dialog.num_ctx.setValue(16384)
    dialog.temperature.setValue(0.55)
    dialog.system_prompt.setPlainText("Answer in one sentence.")
    dialog.excluded_patterns.setPlainText("*.log\n\n  drafts/\n")
    with qtbot.waitSignal(dialog.accepted, timeout=WAIT):
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Accepted

    new = dialog.settings()
    assert new is not live and live == before  # never mutated
    assert new.ollama_host == "http://10.0.0.7:11434"
    assert (new.chat_model, new.embed_model) == ("qwen2.5:7b", "")
    assert (new.chunk_size, new.chunk_overlap, new.top_k) == (1200, 200, 9)
    assert new.search_mode == "keyword"
    assert (new.num_ctx, new.temperature) == (16384, 0.55)
    assert new.system_prompt == "Answer in one sentence."
    assert new.excluded_patterns == ["*.log", "drafts/"]
    assert new.watched_folders == live.watched_folders
    assert new.watched_folders is not live.watched_folders


def test_restore_defaults(dialog: SettingsDialog, live: Settings) -> None:
    dialog.top_k.setValue(20)
    dialog.system_prompt.setPlainText("Custom.")
    dialog.host_edit.setText("bad")
    dialog.restore_button.click()
    defaults = Settings()
    restored = dialog.settings()
    assert restored.top_k == defaults.top_k and restored.system_prompt == ""
    assert restored.ollama_host == "" and restored.chat_model == defaults.chat_model
    assert restored.excluded_patterns == [] and restored.temperature == defaults.temperature
    assert restored.watched_folders == live.watched_folders  # the library is not a setting
    assert dialog.ok_button.isEnabled() and dialog.error_text("ollama_host") == ""
    assert "Automatic" in dialog.num_ctx.text()


def test_test_connection_shows_the_version_and_the_models(
    qtbot: Any, dialog: SettingsDialog, ollama_server: Any
) -> None:
    dialog.host_edit.setText(ollama_server.url)
    with qtbot.waitSignal(dialog.probe_finished, timeout=WAIT) as probe:
        qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
        assert not dialog.test_button.isEnabled()  # one probe at a time
    assert probe.args[0] is True
    status = dialog.probe_status.text()
    assert f"Ollama {VERSION}" in status and ollama_server.url in status
    assert dialog.test_button.isEnabled()
    # The lists now come from that server (the server has smollm2; the list passed in had not).
    assert "smollm2:135m" in combo_items(dialog.chat_model)
    assert "all-minilm:latest" in combo_items(dialog.embed_model)
    assert dialog.chat_model.currentText() == "llama3.2:latest"  # the choice is kept
    assert [r.path for r in ollama_server.requests if r.method == "GET"] == [
        "/api/version",
        "/api/tags",
    ]


def test_test_connection_against_a_dead_port_shows_the_error(
    qtbot: Any, dialog: SettingsDialog
) -> None:
    url = f"http://127.0.0.1:{dead_port()}"
    dialog.host_edit.setText(url)
    with qtbot.waitSignal(dialog.probe_finished, timeout=WAIT) as probe:
        dialog.test_button.click()
    assert probe.args[0] is False
    status = dialog.probe_status.text()
    assert f"Cannot reach Ollama at {url}" in status
    assert "Start Ollama" in status  # the hint comes along
    assert dialog.ok_button.isEnabled()  # unreachable is not invalid: it may start later


def test_test_connection_refuses_an_invalid_address_without_a_request(
    qtbot: Any, dialog: SettingsDialog
) -> None:
    dialog.host_edit.setText("ollama.local")
    with qtbot.waitSignal(dialog.probe_finished, timeout=1000) as probe:
        dialog.test_button.click()
    assert probe.args[0] is False and "http://" in dialog.probe_status.text()


# ---- the main window's action --------------------------------------------------------------


@pytest.fixture
def window(qtbot: Any, ftrag_home: Path, ollama_server: Any) -> Iterator[MainWindow]:
    ollama_server.embed_backend = "hash"
    home = Home(ftrag_home)
    save_settings(home.settings_file, Settings(ollama_host=ollama_server.url))
    win = MainWindow(home)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.controller.engine is not None, timeout=WAIT)
    yield win
    win.close()
    assert [t.name for t in threading.enumerate() if t.name.startswith("ftrag")] == []


def test_settings_action_opens_the_dialog_and_hands_the_result_to_the_controller(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied: list[Settings] = []
    monkeypatch.setattr(window.controller, "apply_settings", applied.append, raising=False)
    action = window._settings_action
    assert QKeySequence("Ctrl+,") in action.shortcuts()
    toolbar = window.findChild(QToolBar, "main-toolbar")
    assert toolbar is not None and action in toolbar.actions()

    engine = window.controller.engine
    assert engine is not None
    live = copy.deepcopy(engine.settings)
    action.trigger()
    dialog = window.settings_dialog
    assert dialog is not None and dialog.isVisible()
    action.trigger()  # a second press brings the same dialog forward
    assert window.settings_dialog is dialog

    dialog.temperature.setValue(1.1)
    dialog.chat_model.setEditText("smollm2:135m")
    with qtbot.waitSignal(dialog.finished, timeout=WAIT):
        dialog.ok_button.click()
    assert len(applied) == 1
    assert applied[0].temperature == 1.1 and applied[0].chat_model == "smollm2:135m"
    assert engine.settings == live  # the window leaves applying to the controller
    assert window._current_model() == "smollm2:135m"
    assert window.settings_dialog is None


def test_cancelling_the_dialog_applies_nothing(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied: list[Settings] = []
    monkeypatch.setattr(window.controller, "apply_settings", applied.append, raising=False)
    window._settings_action.trigger()
    dialog = window.settings_dialog
    assert dialog is not None
    dialog.top_k.setValue(3)
    with qtbot.waitSignal(dialog.finished, timeout=WAIT):
        dialog.reject()
    assert applied == []
