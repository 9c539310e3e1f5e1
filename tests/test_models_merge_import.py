"""Importing an outside LoRA adapter by merging it into its base GGUF first (pytest-qt, offscreen,
against the Ollama-protocol test server over HTTP).

Merge then import from the form (the base GGUF found behind an installed model), the "Merge into
the base and import" button after Ollama refuses the adapter, cancel in the middle of the merge
(no merged file, nothing in Ollama), and a base the adapter does not fit (the error word for
word, with its hint, before anything is written).  The models are tiny (two 576x576 layers), so
each merge takes well under a second.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.models_import import ImportPanel
from ftrag_desktop.core import merge_import
from ftrag_desktop.core.llm import OllamaClient
from ftrag_desktop.core.model_import import ImportRequest
from ftrag_desktop.core.models import Lineage, LineageStore, ModelManager, modelfile_sources
from ftrag_desktop.paths import Home
from tests import test_models_dialog as dialog_tests
from tests.gguf_files import write_lora_gguf, write_model_gguf, write_peft_adapter
from tests.ollama_server import ADAPTER_REFUSED, OllamaTestServer
from tests.test_models_dialog import (
    WAIT,
    Current,
    open_dialog,
    plain,
    rows,
    server_models,
    uploads,
    wait_listed,
)

# The dialog tests' own set-up: a data home on the test server, a controller with its engine
# open (and no thread left behind), and an empty Ollama model store.
home = dialog_tests.home
controller = dialog_tests.controller
ollama_models_dir = dialog_tests.ollama_models_dir

BASE = "tiny-base:latest"


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    """A folder of the user's, where model files were downloaded."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def tiny_base(controller: AppController, downloads: Path) -> str:
    """A small llama GGUF imported into the server, so its blob is a file behind its FROM."""
    engine = controller.engine
    assert engine is not None
    gguf = write_model_gguf(downloads / "tiny-base.gguf")
    list(ModelManager(engine.client, engine.home).import_model(ImportRequest(gguf, "tiny-base")))
    return BASE


@pytest.fixture
def adapter(tmp_path: Path) -> Path:
    """A GGUF LoRA for that base, in a folder of the user's."""
    folder = tmp_path / "my-adapters"
    folder.mkdir()
    return write_lora_gguf(folder / "support-lora.gguf")


def blob_of(server: OllamaTestServer, name: str) -> Path:
    with OllamaClient(server.url) as client:
        return Path(modelfile_sources(str(client.show(name)["modelfile"]))[0])


def merged_files(home: Home) -> list[str]:
    folder = home.root / "merged"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def open_panel(qtbot: Any, controller: AppController) -> tuple[Any, ImportPanel]:
    dialog = open_dialog(qtbot, controller, Current())
    wait_listed(qtbot, dialog)
    dialog.tabs.setCurrentIndex(1)
    return dialog, dialog.import_panel


def choose_base(panel: ImportPanel, name: str) -> None:
    combo = panel.form.base_combo
    index = combo.findData(name)
    assert index > 0, f"{name} is not offered as a base"
    combo.setCurrentIndex(index)


def wait_idle(qtbot: Any, panel: ImportPanel) -> None:
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=WAIT)


def test_merge_then_import_finds_the_base_gguf_and_records_the_adapter(
    qtbot: Any,
    controller: AppController,
    ollama_server: OllamaTestServer,
    home: Home,
    tiny_base: str,
    adapter: Path,
) -> None:
    dialog, panel = open_panel(qtbot, controller)
    form = panel.form
    form.adapter_radio.setChecked(True)
    assert not form.base_file_edit.isVisibleTo(panel)  # only when merging
    form.merge_radio.setChecked(True)
    assert form.is_merge() and form.base_file_edit.isVisibleTo(panel)
    form.source_edit.setText(str(adapter))
    form.name_edit.setText("support-tune")

    # A base whose GGUF is not on this machine: said so, and nothing is filled in.
    choose_base(panel, "smollm2:135m")
    qtbot.waitUntil(
        lambda: "is not readable on this machine" in form.base_file_hint.text(), timeout=WAIT
    )
    assert form.base_file() == ""
    assert "Choose the base model's .gguf file" in form.base_file_hint.text()

    # The installed base behind the adapter: its blob is found and read in place.
    choose_base(panel, tiny_base)
    qtbot.waitUntil(lambda: form.base_file() != "", timeout=WAIT)
    assert Path(form.base_file()) == blob_of(ollama_server, tiny_base)
    qtbot.waitUntil(lambda: "Base GGUF" in panel.checks_text(), timeout=WAIT)
    checks = panel.checks_text()
    assert "LoRA adapter (GGUF)" in checks and "merged, then imported as a GGUF" in checks
    assert "rank 4, alpha 16, changes 2 tensors" in checks
    assert f"fine-tuned from {tiny_base}" in checks
    assert "ftrag test model, 2.7 MB: the adapter fits it" in checks
    assert "support-tune-latest.gguf in the app's data folder (Q8_0" in checks
    assert merged_files(home) == [] and len(uploads(ollama_server)) == 1  # only the base's

    with qtbot.waitSignal(panel.imported, timeout=WAIT) as imported:
        panel.import_button.click()
        assert panel.steps.steps()[:2] == ("validating", "merging")
    wait_idle(qtbot, panel)
    done = imported.args[0]
    steps = panel.steps
    assert [steps.state(s) for s in steps.steps()] == ["done"] * 7
    assert steps.detail("merging").startswith("2 tensors merged (Q8_0)")
    assert "support-tune:latest is imported and answers" in plain(panel.result_label)
    assert "merged from the adapter support-lora.gguf" in plain(panel.result_label)

    # The merged file lives under the data home, not beside the user's adapter.
    merged = home.root / "merged" / "support-tune-latest.gguf"
    assert merged_files(home) == [merged.name]
    assert sorted(p.name for p in adapter.parent.iterdir()) == ["support-lora.gguf"]
    lineage = done.lineage
    assert (lineage.kind, lineage.source, lineage.base) == ("gguf", str(merged), tiny_base)
    assert lineage.source_sha256 == hashlib.sha256(merged.read_bytes()).hexdigest()
    record = lineage.merged_from
    assert record["adapter"] == str(adapter.resolve())
    assert record["adapter_sha256"] == hashlib.sha256(adapter.read_bytes()).hexdigest()
    assert record["base_gguf"] == str(blob_of(ollama_server, tiny_base).resolve())
    assert (record["adapter_format"], record["rank"], record["out_type"]) == ("gguf", 4, "Q8_0")
    assert record["base_ollama"] == tiny_base
    saved = LineageStore(home.models_dir).load("support-tune")
    assert saved is not None and saved.merged_from == record

    # Listed, as a fine-tune of its base, with the adapter in its lineage.
    qtbot.waitUntil(lambda: "support-tune:latest" in rows(dialog), timeout=WAIT)
    assert rows(dialog)["support-tune:latest"][7] == f"fine-tuned · {tiny_base}"
    assert dialog.select("support-tune")
    details = dialog.details.toPlainText()
    assert "Merged from adapter" in details and f"{adapter.resolve()} (GGUF LoRA)" in details
    assert "rank 4, alpha 16, 2 tensors, written as Q8_0" in details


def test_after_ollama_refuses_the_adapter_one_button_merges_and_imports(
    qtbot: Any,
    controller: AppController,
    ollama_server: OllamaTestServer,
    home: Home,
    tiny_base: str,
    adapter: Path,
) -> None:
    _dialog, panel = open_panel(qtbot, controller)
    form = panel.form
    form.adapter_radio.setChecked(True)
    assert not form.is_merge()  # applied on the base by Ollama, unless asked otherwise
    form.source_edit.setText(str(adapter))
    form.name_edit.setText("support-lora")
    choose_base(panel, tiny_base)
    form.system_edit.setPlainText("Answer briefly.")
    panel.import_button.click()
    qtbot.waitUntil(lambda: not panel.is_busy() and panel.problem_text() != "", timeout=WAIT)
    assert f"Ollama reported an error: {ADAPTER_REFUSED}" in panel.problem_text()
    assert panel.merge_button.isVisibleTo(panel)
    assert panel.merge_button.text() == "Merge into the base and import"

    with qtbot.waitSignal(panel.imported, timeout=WAIT) as imported:
        panel.merge_button.click()
    wait_idle(qtbot, panel)
    assert form.is_merge() and not panel.merge_button.isVisibleTo(panel)
    assert Path(form.base_file()) == blob_of(ollama_server, tiny_base)
    done = imported.args[0]
    assert done.model.name == "support-lora:latest"  # the same inputs: name, base, system
    assert (done.lineage.base, done.lineage.system) == (tiny_base, "Answer briefly.")
    assert done.lineage.merged_from["adapter"] == str(adapter.resolve())
    assert panel.problem_text() == ""
    assert panel.steps.state("merging") == "done"
    assert "support-lora:latest" in server_models(ollama_server)
    created = ollama_server.bodies("/api/create")
    assert "adapters" in created[-2] and "files" in created[-1]  # refused, then the merged GGUF
    assert merged_files(home) == ["support-lora-latest.gguf"]


def test_cancel_during_the_merge_leaves_no_file_and_nothing_in_ollama(
    qtbot: Any,
    controller: AppController,
    ollama_server: OllamaTestServer,
    home: Home,
    tiny_base: str,
    adapter: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_merge = merge_import.merge_adapter
    paused = threading.Event()
    partial: list[str] = []

    def merge_held_midway(*args: Any, progress: Any, cancel: threading.Event, **kw: Any) -> Any:
        """The real merge, holding after its first write until the user presses Cancel."""

        def report(done: int, total: int) -> None:
            progress(done, total)
            if not paused.is_set():
                partial.extend(merged_files(home))  # the file as it is being written
                paused.set()
                cancel.wait(WAIT / 1000)

        return real_merge(*args, progress=report, cancel=cancel, **kw)

    monkeypatch.setattr(merge_import, "merge_adapter", merge_held_midway)
    before = len(uploads(ollama_server))
    _dialog, panel = open_panel(qtbot, controller)
    form = panel.form
    form.set_merge(True)
    form.source_edit.setText(str(adapter))
    form.name_edit.setText("cancelled-tune")
    choose_base(panel, tiny_base)
    qtbot.waitUntil(lambda: form.base_file() != "", timeout=WAIT)
    panel.import_button.click()
    qtbot.waitUntil(
        lambda: paused.is_set() and panel.steps.state("merging") == "running", timeout=WAIT
    )
    assert len(partial) == 1 and partial[0].endswith(".partial")  # half-written, under a temp name
    panel.cancel_button.click()
    wait_idle(qtbot, panel)

    assert panel.steps.state("merging") == "cancelled"
    assert panel.steps.state("hashing") == "pending"
    assert plain(panel.result_label).startswith("Merge cancelled: no merged file was kept")
    assert panel.problem_text() == ""  # a cancel is not an error
    assert merged_files(home) == []
    assert ollama_server.wait_idle()
    assert len(uploads(ollama_server)) == before  # nothing sent after the base's own import
    assert "cancelled-tune:latest" not in server_models(ollama_server)
    assert LineageStore(home.models_dir).load("cancelled-tune") is None


def test_a_base_the_adapter_does_not_fit_is_refused_word_for_word_before_any_write(
    qtbot: Any,
    controller: AppController,
    ollama_server: OllamaTestServer,
    home: Home,
    adapter: Path,
    downloads: Path,
    tmp_path: Path,
) -> None:
    narrow = write_model_gguf(downloads / "narrow-base.gguf", width=512)
    _dialog, panel = open_panel(qtbot, controller)
    form = panel.form
    form.set_merge(True)
    form.source_edit.setText(str(adapter))
    form.name_edit.setText("wrong-base")
    form.set_base_file(str(narrow))  # chosen by hand: no installed base
    qtbot.waitUntil(lambda: panel.problem_text() != "", timeout=WAIT)
    text = panel.problem_text()
    assert text.startswith(
        "support-lora.gguf does not fit the base model ftrag test model: blk.0.attn_q.weight "
        "maps 576 inputs to 576 outputs, but the base's blk.0.attn_q.weight maps 512 to 512"
    )
    assert text.endswith(
        "What to do: Choose the base model the adapter was trained on (the same model, any "
        "quantization)."
    )
    assert "This import would fail" in panel.checks_text()
    assert not panel.merge_button.isVisibleTo(panel)

    panel.import_button.click()  # importing anyway fails at the same check, and says where
    qtbot.waitUntil(lambda: not panel.is_busy() and panel.problem_text() != "", timeout=WAIT)
    assert "Validate the file" in plain(panel.error_title)
    assert panel.steps.state("validating") == "failed"
    assert panel.steps.state("merging") == "pending"
    assert "does not fit the base model" in panel.problem_text()
    assert merged_files(home) == [] and uploads(ollama_server) == []

    # A PEFT adapter on an architecture the merge cannot map: said by name, with the way out.
    peft = write_peft_adapter(tmp_path / "my-adapters" / "peft-lora")
    falcon = write_model_gguf(downloads / "falcon.gguf", arch="falcon")
    form.source_edit.setText(str(peft))
    form.set_base_file(str(falcon))
    qtbot.waitUntil(lambda: "falcon" in panel.problem_text(), timeout=WAIT)
    assert panel.problem_text().startswith(
        "Merging a PEFT adapter into a falcon model is not supported yet (supported: "
    )
    assert "What to do: Convert the adapter to GGUF with llama.cpp's" in panel.problem_text()
    assert merged_files(home) == [] and uploads(ollama_server) == []


def test_a_lineage_record_written_before_merges_existed_still_loads(tmp_path: Path) -> None:
    store = LineageStore(tmp_path)
    old = {
        "name": "old:latest",
        "kind": "gguf",
        "source": "/x/old.gguf",
        "source_sha256": "ab" * 32,
        "source_bytes": 1,
        "base": "",
        "reported_base": "",
        "architecture": "llama",
        "template": "base",
        "system": "",
        "parameters": {},
        "created_at": "2026-01-01T00:00:00+00:00",
        "model_digest": "cd" * 32,
        "ollama_version": "0.30.0",
        "schema": 1,
    }
    store.path_for("old").write_text(json.dumps(old))
    lineage = store.load("old")
    assert lineage is not None and lineage.merged_from is None and not lineage.fine_tuned
    merged = Lineage.from_dict({**old, "merged_from": {"adapter": "/a/lora.gguf"}})
    assert merged.fine_tuned and merged.schema == 1
