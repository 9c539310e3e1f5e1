"""The Models dialog (pytest-qt, offscreen) against the Ollama-protocol test server over HTTP.

The list with details and a fine-tune's lineage, sorting, pull with progress and with cancel,
delete after a confirmation, a GGUF import end to end (checks shown before upload, the steps,
success, the window's picker refreshed), import errors word for word with their hints, Ollama
down; and the main window's Models action, "Use in chat", and a conversation that switches
models between questions with every answer recording its model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QLabel, QMessageBox, QToolBar

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.main_window import MainWindow
from ftrag_desktop.app.models_dialog import ModelsDialog
from ftrag_desktop.app.models_ops import plain_text
from ftrag_desktop.app.models_table import COLUMNS, RECORD_ROLE
from ftrag_desktop.config import Settings, save_settings
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.llm import START_HINT, OllamaClient
from ftrag_desktop.core.model_import import MERGE_ADVICE, ImportRequest
from ftrag_desktop.core.models import ModelManager
from ftrag_desktop.paths import Home
from tests.gguf_files import write_junk, write_lora_gguf, write_model_gguf
from tests.ollama_server import ADAPTER_REFUSED, VERSION, OllamaTestServer

WAIT = 60_000


@pytest.fixture(autouse=True)
def ollama_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a local Ollama would keep its blobs: the import's disk check looks here."""
    path = tmp_path / "ollama-models"
    path.mkdir()
    monkeypatch.setenv("OLLAMA_MODELS", str(path))
    return path


def plain(label: QLabel) -> str:
    """What a rich-text label shows."""
    return plain_text(label.text())


def no_threads_left() -> None:
    pool = QThreadPool.globalInstance()
    assert pool.waitForDone(30_000)
    assert pool.activeThreadCount() == 0
    assert [t.name for t in threading.enumerate() if t.name.startswith("ftrag")] == []


@pytest.fixture
def home(ftrag_home: Path, ollama_server: OllamaTestServer) -> Home:
    ollama_server.embed_backend = "hash"
    h = Home(ftrag_home)
    save_settings(h.settings_file, Settings(ollama_host=ollama_server.url))
    return h


@pytest.fixture
def controller(home: Home) -> Iterator[AppController]:
    """A controller with its engine open, without the library process (not needed here)."""
    c = AppController(home)
    c.engine = Engine(home)
    yield c
    no_threads_left()
    c.shutdown()


class Current:
    """The chat's model, as the main window would report it."""

    def __init__(self, name: str = "llama3.2:latest") -> None:
        self.name = name

    def __call__(self) -> str:
        return self.name


def open_dialog(qtbot: Any, controller: AppController, current: Current) -> ModelsDialog:
    dialog = ModelsDialog(controller, current)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def wait_listed(qtbot: Any, dialog: ModelsDialog) -> None:
    qtbot.waitUntil(lambda: not dialog._loading and dialog.model.rowCount() > 0, timeout=WAIT)


def rows(dialog: ModelsDialog) -> dict[str, list[str]]:
    """The table as shown: name -> the text of every column."""
    proxy = dialog.proxy
    out = {}
    for row in range(proxy.rowCount()):
        record = proxy.index(row, 0).data(RECORD_ROLE)
        out[record.name] = [str(proxy.index(row, c).data()) for c in range(len(COLUMNS))]
    return out


def names_in_order(dialog: ModelsDialog) -> list[str]:
    proxy = dialog.proxy
    return [proxy.index(r, 0).data(RECORD_ROLE).name for r in range(proxy.rowCount())]


def server_models(server: OllamaTestServer) -> set[str]:
    with OllamaClient(server.url) as client:
        return {m.name for m in client.list_models()}


@pytest.fixture
def tuned(controller: AppController, tmp_path: Path) -> str:
    """A fine-tune of smollm2:135m imported through the core, as `ftrag models import` does."""
    engine = controller.engine
    assert engine is not None
    gguf = write_model_gguf(tmp_path / "smol-support.gguf")
    request = ImportRequest(gguf, "smol-support", base="smollm2:135m", num_ctx=4096)
    list(ModelManager(engine.client, engine.home).import_model(request))
    return "smol-support:latest"


# ---- the list ----------------------------------------------------------------------------------


def test_lists_the_models_with_details_and_a_fine_tune_with_its_base(
    qtbot: Any, controller: AppController, tuned: str, tmp_path: Path
) -> None:
    dialog = open_dialog(qtbot, controller, Current("llama3.2"))
    assert dialog.model.rowCount() == 0  # filled by a worker, not while constructing
    wait_listed(qtbot, dialog)

    table = rows(dialog)
    assert set(table) == {
        "all-minilm:latest",
        "llama3.2:latest",
        "nomic-embed-text:latest",
        "smollm2:135m",
        tuned,
    }
    name, family, params, quant, context, size, modified, badge = table["llama3.2:latest"]
    assert "in chat" in name  # the chat's model is marked
    assert (family, params, quant, context, size) == ("llama", "3.2B", "Q4_K_M", "128K", "2.0 GB")
    assert modified[:2] == "20" and len(modified) == len("2026-01-01 12:00")
    assert badge == ""
    assert table["nomic-embed-text:latest"][1] == "nomic-bert · embeddings"
    assert table[tuned][7] == "fine-tuned · smollm2:135m"
    assert table[tuned][4] == "2K (uses 4K)"  # trained context, then the num_ctx it runs with
    assert "Ollama " + VERSION in plain(dialog.summary) and "1 fine-tuned" in plain(dialog.summary)
    assert dialog.tabs.tabText(0) == "Installed (5)"

    # the lineage, in the tooltip and in the details of the selected row
    row = names_in_order(dialog).index(tuned)
    tip = dialog.proxy.index(row, 7).data(Qt.ItemDataRole.ToolTipRole)
    assert str(tmp_path / "smol-support.gguf") in tip and "sha256" in tip
    assert "num_ctx 4096" in tip and "Created" in tip and "from smollm2:135m" in tip
    assert dialog.select(tuned)
    details = dialog.details.toPlainText()
    assert "Imported from" in details and "from the file itself (chatml format)" in details
    assert dialog.use_button.isEnabled() and dialog.delete_button.isEnabled()
    assert dialog.select("nomic-embed-text")
    assert not dialog.use_button.isEnabled()  # an embedding model cannot answer

    # sorting uses the true values: bytes, not the text "2.0 GB" < "46 MB"
    dialog.table.sortByColumn(COLUMNS.index("Size"), Qt.SortOrder.DescendingOrder)
    assert names_in_order(dialog)[:2] == ["llama3.2:latest", "nomic-embed-text:latest"]
    assert names_in_order(dialog)[-1] == tuned
    dialog.table.sortByColumn(COLUMNS.index("Fine-tuned"), Qt.SortOrder.AscendingOrder)
    assert names_in_order(dialog)[0] == tuned
    dialog.filter_edit.setText("SMOL")
    assert names_in_order(dialog) == [tuned, "smollm2:135m"]


def test_ollama_down_says_so_with_the_hint_and_refresh_recovers(
    qtbot: Any, controller: AppController, ollama_server: OllamaTestServer
) -> None:
    ollama_server.down()
    dialog = open_dialog(qtbot, controller, Current())
    qtbot.waitUntil(lambda: dialog.banner_text() != "", timeout=WAIT)
    assert f"Cannot reach Ollama at {ollama_server.url}." in dialog.banner_text()
    assert START_HINT in dialog.banner_text()
    assert "did not answer" in plain(dialog.summary)
    assert dialog.model.rowCount() == 0

    ollama_server.up()
    dialog.refresh_button.click()
    wait_listed(qtbot, dialog)
    assert dialog.banner_text() == ""
    assert "llama3.2:latest" in rows(dialog)


# ---- pull and delete ---------------------------------------------------------------------------


def test_pull_shows_progress_then_the_model_is_listed_and_the_picker_refreshed(
    qtbot: Any, controller: AppController, ollama_server: OllamaTestServer
) -> None:
    ollama_server.token_delay_s = 0.15
    dialog = open_dialog(qtbot, controller, Current())
    wait_listed(qtbot, dialog)
    panel = dialog.pull_panel
    values: list[int] = []
    panel.progress.valueChanged.connect(values.append)
    picker: list[list[str]] = []
    controller.models_loaded.connect(lambda models: picker.append([m.name for m in models]))

    panel.name_combo.setCurrentText("qwen2.5:0.5b")
    with qtbot.waitSignal(panel.pulled, timeout=WAIT) as pulled:
        panel.pull_button.click()
        assert not panel.pull_button.isEnabled() and panel.cancel_button.isEnabled()
        qtbot.waitUntil(lambda: "of 398 MB" in panel.status_text(), timeout=WAIT)
        assert "Pulling qwen2.5:0.5b: pulling " in panel.status_text()
    assert pulled.args == ["qwen2.5:0.5b"]
    assert 250 in values and 500 in values  # the bar followed the bytes
    assert panel.status_text() == "qwen2.5:0.5b is installed."
    assert panel.pull_button.isEnabled() and not panel.cancel_button.isEnabled()

    qtbot.waitUntil(lambda: "qwen2.5:0.5b" in rows(dialog), timeout=WAIT)
    qtbot.waitUntil(lambda: dialog.selected_record() is not None, timeout=WAIT)
    assert dialog.selected_record().name == "qwen2.5:0.5b"  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: any("qwen2.5:0.5b" in names for names in picker), timeout=WAIT)


def test_cancel_a_pull_installs_nothing_and_says_so(
    qtbot: Any, controller: AppController, ollama_server: OllamaTestServer
) -> None:
    ollama_server.token_delay_s = 0.3
    dialog = open_dialog(qtbot, controller, Current())
    wait_listed(qtbot, dialog)
    panel = dialog.pull_panel
    panel.start("qwen2.5:0.5b")
    qtbot.waitUntil(lambda: "%)" in panel.status_text(), timeout=WAIT)
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=WAIT)
    assert panel.status_text().startswith("Pull of qwen2.5:0.5b cancelled: nothing was installed")
    assert ollama_server.wait_idle()  # the server's pull ended: the client closed the stream
    assert "qwen2.5:0.5b" not in server_models(ollama_server)
    assert "qwen2.5:0.5b" not in rows(dialog)


def test_closing_the_dialog_cancels_a_running_pull(
    qtbot: Any, controller: AppController, ollama_server: OllamaTestServer
) -> None:
    ollama_server.token_delay_s = 0.3
    dialog = open_dialog(qtbot, controller, Current())
    wait_listed(qtbot, dialog)
    dialog.pull_panel.start("qwen2.5:0.5b")
    qtbot.waitUntil(lambda: "%)" in dialog.pull_panel.status_text(), timeout=WAIT)
    dialog.close()
    no_threads_left()  # the worker stopped at the next progress line
    assert ollama_server.wait_idle()
    assert "qwen2.5:0.5b" not in server_models(ollama_server)


def test_pull_of_an_unknown_name_shows_ollamas_words_and_the_hint(
    qtbot: Any, controller: AppController
) -> None:
    dialog = open_dialog(qtbot, controller, Current())
    wait_listed(qtbot, dialog)
    panel = dialog.pull_panel
    panel.start("no-such-model")
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=WAIT)
    text = panel.status_text()
    assert "Ollama reported an error: pull model manifest: file does not exist" in text
    assert "Check the name: 'no-such-model' is not in the Ollama library" in text


def test_delete_asks_first_naming_the_model_and_warns_about_the_chat_model(
    qtbot: Any,
    controller: AppController,
    ollama_server: OllamaTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dialog = open_dialog(qtbot, controller, Current("llama3.2"))
    wait_listed(qtbot, dialog)
    asked: list[tuple[str, str]] = []
    answer = QMessageBox.StandardButton.No

    def question(_parent: Any, title: str, text: str, *_: Any) -> QMessageBox.StandardButton:
        asked.append((title, text))
        return answer

    monkeypatch.setattr(QMessageBox, "question", question)
    assert dialog.select("llama3.2")
    dialog.delete_button.click()  # answered No: nothing happens
    assert asked[0][0] == "Delete llama3.2:latest?"
    assert "Delete llama3.2:latest from Ollama?" in asked[0][1]
    assert "frees 2.0 GB" in asked[0][1]
    assert "The chat uses llama3.2:latest now" in asked[0][1]
    assert [r for r in ollama_server.requests if r.method == "DELETE"] == []

    answer = QMessageBox.StandardButton.Yes
    assert dialog.select("smollm2:135m")
    dialog.delete_button.click()
    assert "The chat uses" not in asked[1][1]  # not the chat's model: no warning
    qtbot.waitUntil(lambda: "smollm2:135m" not in rows(dialog), timeout=WAIT)
    assert dialog.status_text() == "Deleted smollm2:135m."
    assert "smollm2:135m" not in server_models(ollama_server)
    assert "llama3.2:latest" in server_models(ollama_server)


# ---- import ------------------------------------------------------------------------------------


def uploads(server: OllamaTestServer) -> list[str]:
    return [r.path for r in server.requests if r.method == "POST" and "/api/blobs/" in r.path]


def test_import_a_gguf_end_to_end_then_use_it(
    qtbot: Any, controller: AppController, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    gguf = write_model_gguf(tmp_path / "My-Support-Tune.Q8_0.gguf", padding_mb=2)
    dialog = open_dialog(qtbot, controller, Current())
    wait_listed(qtbot, dialog)
    dialog.tabs.setCurrentIndex(1)
    panel = dialog.import_panel
    assert panel.form.base_combo.findData("smollm2:135m") > 0
    assert panel.form.base_combo.findData("nomic-embed-text:latest") < 0  # not a possible base

    panel.form.source_edit.setText(str(gguf))
    assert panel.form.name_edit.text() == "my-support-tune.q8_0"  # suggested from the file name
    panel.form.name_edit.setText("support-tune")
    panel.form.base_combo.setCurrentIndex(panel.form.base_combo.findData("smollm2:135m"))
    panel.form.system_edit.setPlainText("Answer support questions briefly.")
    panel.form.num_ctx.setValue(4096)
    panel.form.temperature.setValue(0.3)
    panel.check_button.click()
    qtbot.waitUntil(lambda: "Architecture" in panel.checks_text(), timeout=WAIT)
    checks = panel.checks_text()
    assert "GGUF model (a whole model)" in checks and "llama" in checks
    assert "fine-tuned from smollm2:135m" in checks
    assert "from the file itself (chatml format)" in checks
    assert 'num_ctx 4096, temperature 0.3, stop ["<|im_end|>"]' in checks
    assert "above the 2048 tokens the model was trained on" in checks  # a note
    assert uploads(ollama_server) == []  # checked before a byte was uploaded

    picker: list[list[str]] = []
    controller.models_loaded.connect(lambda models: picker.append([m.name for m in models]))
    with qtbot.waitSignal(panel.imported, timeout=WAIT) as imported:
        panel.import_button.click()
        assert panel.cancel_button.isEnabled() and not panel.import_button.isEnabled()
    done = imported.args[0]
    assert done.model.name == "support-tune:latest"
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=WAIT)
    steps = panel.steps
    assert [steps.state(s) for s in ("validating", "hashing", "uploading")] == ["done"] * 3
    assert [steps.state(s) for s in ("creating", "verifying", "done")] == ["done"] * 3
    assert steps.detail("validating") == "passed"
    assert steps.detail("uploading").endswith("(100%)")
    assert steps.detail("creating") == "Ollama: success"
    assert "it answered: “I don't know.”" in steps.detail("verifying")
    assert "support-tune:latest is imported and answers" in plain(panel.result_label)
    assert panel.problem_text() == ""
    assert uploads(ollama_server) == [f"/api/blobs/sha256:{done.lineage.source_sha256}"]

    # the window's picker and this table both have it, with its base
    qtbot.waitUntil(lambda: any("support-tune:latest" in n for n in picker), timeout=WAIT)
    qtbot.waitUntil(lambda: "support-tune:latest" in rows(dialog), timeout=WAIT)
    assert rows(dialog)["support-tune:latest"][7] == "fine-tuned · smollm2:135m"
    assert panel.use_button.isVisible()
    with qtbot.waitSignal(dialog.model_chosen, timeout=WAIT) as chosen:
        panel.use_button.click()
    assert chosen.args == ["support-tune:latest"]


def test_a_second_import_of_the_same_file_skips_the_upload(
    qtbot: Any, controller: AppController, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    gguf = write_model_gguf(tmp_path / "tune.gguf")
    dialog = open_dialog(qtbot, controller, Current())
    wait_listed(qtbot, dialog)
    panel = dialog.import_panel
    for name in ("first", "second"):
        panel.form.source_edit.setText(str(gguf))
        panel.form.name_edit.setText(name)
        with qtbot.waitSignal(panel.imported, timeout=WAIT):
            panel.import_button.click()
        qtbot.waitUntil(lambda: not panel.is_busy(), timeout=WAIT)
    assert panel.steps.state("uploading") == "skipped"
    assert "already on the server" in panel.steps.detail("uploading")
    assert len(uploads(ollama_server)) == 1


def test_a_junk_file_is_refused_by_the_check_with_the_hint(
    qtbot: Any, controller: AppController, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    junk = write_junk(tmp_path / "model.gguf")
    dialog = open_dialog(qtbot, controller, Current())
    wait_listed(qtbot, dialog)
    panel = dialog.import_panel
    panel.form.source_edit.setText(str(junk))  # checked on its own once typing pauses
    qtbot.waitUntil(lambda: panel.problem_text() != "", timeout=WAIT)
    text = panel.problem_text()
    assert text.startswith(
        "model.gguf is not a GGUF file (its first bytes are not the GGUF signature)."
    )
    assert "What to do: Choose the .gguf file of the model itself." in text
    assert "This import would fail" in panel.checks_text()

    panel.import_button.click()  # importing anyway fails at the same check, and says where
    qtbot.waitUntil(lambda: not panel.is_busy() and panel.problem_text() != "", timeout=WAIT)
    assert "validate" in plain(panel.error_title).lower()
    assert panel.steps.state("validating") == "failed"
    assert panel.steps.state("uploading") == "pending"
    assert "is not a GGUF file" in panel.problem_text()
    assert uploads(ollama_server) == []


def test_an_adapter_refused_by_ollama_shows_its_words_and_the_merge_advice(
    qtbot: Any, controller: AppController, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    lora = write_lora_gguf(tmp_path / "lora.gguf")
    dialog = open_dialog(qtbot, controller, Current())
    wait_listed(qtbot, dialog)
    panel = dialog.import_panel
    panel.form.adapter_radio.setChecked(True)
    assert panel.form.folder_button.isVisibleTo(panel)
    panel.form.source_edit.setText(str(lora))
    panel.form.name_edit.setText("smol-lora")
    panel.form.base_combo.setCurrentIndex(panel.form.base_combo.findData("smollm2:135m"))
    panel.check()
    qtbot.waitUntil(lambda: "LoRA adapter (GGUF)" in panel.checks_text(), timeout=WAIT)
    assert "inherited from the base model" in panel.checks_text()
    assert f"Ollama {VERSION} may refuse to create adapter models" in panel.checks_text()

    panel.import_button.click()
    qtbot.waitUntil(lambda: not panel.is_busy() and panel.problem_text() != "", timeout=WAIT)
    text = panel.problem_text()
    assert f"Ollama reported an error: {ADAPTER_REFUSED}" in text  # word for word
    assert f"What to do: {MERGE_ADVICE}" in text
    assert "Create the model" in plain(panel.error_title)
    assert panel.steps.state("creating") == "failed"
    assert panel.steps.state("uploading") == "done"
    assert plain(panel.result_label) == "Nothing was imported."
    assert not panel.use_button.isVisible()
    assert "smol-lora:latest" not in server_models(ollama_server)


def test_cancel_an_import_mid_upload_leaves_nothing(
    qtbot: Any, controller: AppController, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    big = write_model_gguf(tmp_path / "big.gguf", padding_mb=24)
    ollama_server.upload_delay_s = 0.05
    dialog = open_dialog(qtbot, controller, Current())
    wait_listed(qtbot, dialog)
    panel = dialog.import_panel
    panel.form.source_edit.setText(str(big))
    panel.import_button.click()
    qtbot.waitUntil(lambda: panel.steps.state("uploading") == "running", timeout=WAIT)
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=WAIT)
    assert panel.steps.state("uploading") == "cancelled"
    assert plain(panel.result_label).startswith("Import cancelled. Nothing was left in Ollama")
    assert panel.problem_text() == ""  # a cancel is not an error
    assert ollama_server.wait_idle()
    assert "big:latest" not in server_models(ollama_server)
    assert ollama_server.bodies("/api/create") == []


def test_a_quick_answer_or_pull_reaches_listeners_connected_after_the_call(
    qtbot: Any, controller: AppController
) -> None:
    """The CI failure of 2026-11-29: a worker that finished before the window connected lost it."""
    answer = controller.ask("What is a flight control computer?", model="llama3.2", rag=False)
    pull = controller.pull_model("llama3.2")
    # The GUI thread is busy (not in the event loop) for longer than either job takes.
    time.sleep(1.5)
    completed: list[Any] = []
    finished: list[tuple[bool, str]] = []
    answer.completed.connect(completed.append)
    answer.failed.connect(lambda m: pytest.fail(m))
    pull.finished.connect(lambda ok, message: finished.append((ok, message)))
    qtbot.waitUntil(lambda: bool(completed) and bool(finished), timeout=WAIT)
    assert completed[0].answer.strip() != ""
    assert finished == [(True, "")]


# ---- the main window ---------------------------------------------------------------------------


@pytest.fixture
def window(qtbot: Any, home: Home) -> Iterator[MainWindow]:
    win = MainWindow(home)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.controller.engine is not None, timeout=WAIT)
    yield win
    win.close()
    no_threads_left()


def ask(qtbot: Any, win: MainWindow, question: str, answers: int) -> None:
    win.chat.question_submitted.emit(question)
    qtbot.waitUntil(
        lambda: (
            win._conv is not None
            and sum(m.role == "assistant" for m in win._conv.messages) == answers
            and not win._answering
        ),
        timeout=WAIT,
    )


# The offscreen platform cannot raise a window; a real display can.
@pytest.mark.qt_log_ignore("This plugin does not support raise")
def test_models_action_opens_the_dialog_and_a_conversation_switches_models(
    qtbot: Any, window: MainWindow
) -> None:
    action = window._models_action
    assert action.shortcut() == QKeySequence("Ctrl+Shift+M")
    toolbar = window.findChild(QToolBar, "main-toolbar")
    assert toolbar is not None and action in toolbar.actions()
    qtbot.waitUntil(lambda: window._models.count() > 1, timeout=WAIT)  # the picker is filled

    action.trigger()
    dialog = window.models_dialog
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    action.trigger()  # a second press brings the same dialog forward
    assert window.models_dialog is dialog
    wait_listed(qtbot, dialog)

    window._rag.setChecked(False)  # the model alone: no folder to index here
    window._set_current_model("llama3.2")
    ask(qtbot, window, "What is a flight control computer?", 1)
    assert dialog.select("smollm2:135m")
    dialog.use_button.click()  # "Use in chat"
    assert window._current_model() == "smollm2:135m"
    assert "smollm2:135m" in dialog.status_text()
    ask(qtbot, window, "And what does it do?", 2)

    conv = window._conv
    assert conv is not None
    answers = [m for m in conv.messages if m.role == "assistant"]
    assert [m.model for m in answers] == ["llama3.2:latest", "smollm2:135m"]
    assert conv.model == "smollm2:135m"
    engine = window.controller.engine
    assert engine is not None
    qtbot.waitUntil(
        lambda: (
            [m.model for m in engine.conversations.load(conv.id).messages if m.model]
            == ["llama3.2:latest", "smollm2:135m"]
        ),
        timeout=WAIT,
    )
    # every answer in the transcript shows the model that wrote it
    shown = [label.text() for label in window.chat.findChildren(QLabel)]
    assert "llama3.2:latest" in shown and "smollm2:135m" in shown

    with qtbot.waitSignal(dialog.finished, timeout=WAIT):
        dialog.close()
    assert window.models_dialog is None
