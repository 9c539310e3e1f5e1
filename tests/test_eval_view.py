"""The Evaluate tab, offscreen, against the Ollama-protocol test server (scripted model): build a
set, review it (edit, delete, add) and save versions; export fine-tune data; run two
configurations to the report, its table, charts and recommendation, and its CSV/HTML; cancel a
run and resume it; the main window's tab."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QDialogButtonBox

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.eval_items import ID_ROLE
from ftrag_desktop.app.eval_view import EvaluateView
from ftrag_desktop.config import Settings
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.eval_report import EvalReport
from ftrag_desktop.core.evalset import EvalSet, EvalSetStore
from ftrag_desktop.core.evaluate import EvalConfig, RunFinished, RunStore
from ftrag_desktop.paths import Home
from tests.ollama_server import ModelEntry
from tests.test_evalset import DOCS, OFF_TOPIC, ScriptedModel, docs

__all__ = ["docs"]

WAIT = 60_000
CAPITAL, KETTLE = DOCS[0][2], DOCS[1][2]


def pool_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("Thread (pooled)")]


@pytest.fixture
def controller(
    qtbot: Any, ftrag_home: Path, ollama_server: Any, docs: Path
) -> Iterator[AppController]:
    ollama_server.embed_backend = "hash"
    ollama_server.reply = ScriptedModel()
    home = Home(ftrag_home)
    engine = Engine(home, Settings(ollama_host=ollama_server.url, top_k=3))
    list(engine.sync(docs))
    ctrl = AppController(home)
    ctrl.engine = engine  # the workbench needs the engine only, not the library process
    yield ctrl
    assert QThreadPool.globalInstance().waitForDone(WAIT)
    ctrl.shutdown()


@pytest.fixture
def view(qtbot: Any, controller: AppController) -> Iterator[EvaluateView]:
    v = EvaluateView(controller)
    qtbot.addWidget(v)
    v.resize(1280, 760)
    with qtbot.waitSignal(v.models_listed, timeout=WAIT):
        v.show()
    yield v
    v.stop()
    qtbot.waitUntil(lambda: not v.is_busy(), timeout=WAIT)
    assert QThreadPool.globalInstance().waitForDone(WAIT)


def row_of(v: EvaluateView, question: str) -> int:
    s = v.sets.current_set()
    assert s is not None
    return next(i for i, item in enumerate(s.items) if item.question == question)


def item_id(v: EvaluateView, question: str) -> str:
    index = v.sets.model.index(row_of(v, question), 0)
    return str(v.sets.model.data(index, ID_ROLE))


def accept(qtbot: Any, dialog: Any) -> None:
    buttons = dialog.findChild(QDialogButtonBox)
    ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
    qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)


def build_and_save(qtbot: Any, v: EvaluateView) -> EvalSet:
    """Build "demo" through the New set dialog, then save it unchanged (version 1)."""
    qtbot.mouseClick(v.sets.new_button, Qt.MouseButton.LeftButton)
    dialog = v.sets.new_set_dialog
    assert dialog is not None
    dialog.name.setText("demo")
    dialog.questions.setValue(10)
    dialog.unanswerable.setValue(3)
    dialog.seed.setValue(7)
    with qtbot.waitSignal(v.sets.build_finished, timeout=WAIT):
        accept(qtbot, dialog)
    qtbot.waitUntil(lambda: not v.sets.is_building(), timeout=WAIT)
    with qtbot.waitSignal(v.sets.set_saved, timeout=WAIT) as saved:
        qtbot.mouseClick(v.sets.save_button, Qt.MouseButton.LeftButton)
    assert isinstance(saved.args[0], EvalSet)
    return saved.args[0]


def run_to_end(qtbot: Any, v: EvaluateView) -> EvalReport:
    with qtbot.waitSignal(v.run.run_finished, timeout=WAIT) as finished:
        qtbot.mouseClick(v.run.start_button, Qt.MouseButton.LeftButton)
    event = finished.args[0]
    assert isinstance(event, RunFinished) and not event.cancelled
    qtbot.waitUntil(
        lambda: (r := v.report.report()) is not None and r.run_id == event.run_id, timeout=WAIT
    )
    qtbot.waitUntil(lambda: not v.run.is_running(), timeout=WAIT)
    report = v.report.report()
    assert report is not None
    return report


def test_build_review_and_save_versions(qtbot: Any, view: EvaluateView, ftrag_home: Path) -> None:
    v = view
    built = build_and_save(qtbot, v)
    assert built.name == "demo" and built.version == 1
    assert {i.question for i in built.answerable} == {CAPITAL, KETTLE}
    assert [i.question for i in built.unanswerable] == [OFF_TOPIC[1], OFF_TOPIC[3], OFF_TOPIC[4]]
    # The table shows every question with its source; nothing is left unsaved.
    model = v.sets.model
    assert model.rowCount() == 5 and not v.sets.is_dirty()
    kettle_row = row_of(v, KETTLE)
    assert model.data(model.index(kettle_row, 1)) == "47 seconds"
    assert model.data(model.index(kettle_row, 2)) == "kettle.md"
    assert model.data(model.index(kettle_row, 4)) == "generated"
    assert not v.sets.save_button.isEnabled()

    # Edit through the dialog: the Neptune question becomes one about Uranus.
    dialog = v.sets.open_item_dialog(item_id(v, OFF_TOPIC[3]))
    assert dialog is not None and not dialog.answerable.isChecked()
    dialog.question.setPlainText("How many moons does Uranus have?")
    accept(qtbot, dialog)
    edited_row = row_of(v, "How many moons does Uranus have?")
    assert model.data(model.index(edited_row, 4)) == "unanswerable, edited"
    # An answerable question needs its answer: the dialog says so and stays open.
    dialog = v.sets.open_item_dialog()
    assert dialog is not None
    dialog.question.setPlainText("Who blows the glass in Quillton?")
    accept(qtbot, dialog)
    assert dialog.isVisible() and "reference answer" in dialog.error.text()
    dialog.answerable.setChecked(False)
    dialog.question.setPlainText("Who wrote the opera Carmen?")
    accept(qtbot, dialog)
    assert model.rowCount() == 6
    assert model.data(model.index(5, 0)) == "Who wrote the opera Carmen?"
    assert model.data(model.index(5, 4)) == "user"
    # Delete the selected row.
    v.sets.table.selectRow(row_of(v, OFF_TOPIC[4]))
    qtbot.mouseClick(v.sets.delete_button, Qt.MouseButton.LeftButton)
    assert model.rowCount() == 5 and v.sets.is_dirty() and v.sets.save_button.isEnabled()
    assert "unsaved changes" in v.sets.title.text()

    with qtbot.waitSignal(v.sets.set_saved, timeout=WAIT) as saved:
        qtbot.mouseClick(v.sets.save_button, Qt.MouseButton.LeftButton)
    second = saved.args[0]
    assert second.version == 2 and not v.sets.is_dirty()
    stored = EvalSetStore.for_home(Home(ftrag_home))
    assert [x.version for x in stored.versions("demo")] == [1, 2]
    questions = [i.question for i in stored.load("demo", 2).items]
    assert "How many moons does Uranus have?" in questions and OFF_TOPIC[4] not in questions
    assert questions[-1] == "Who wrote the opera Carmen?"
    qtbot.waitUntil(lambda: v.sets.versions.count() == 2, timeout=WAIT)
    assert v.sets.versions.itemText(0) == "v2"

    # The old version loads from the picker, unchanged.
    with qtbot.waitSignal(v.sets.set_shown, timeout=WAIT) as shown:
        v.sets.versions.setCurrentIndex(1)
        v.sets.versions.activated.emit(1)
    old = shown.args[0]
    assert old.version == 1 and OFF_TOPIC[4] in [i.question for i in old.items]
    assert v.run.set_name.findText("demo") >= 0  # the Run page offers the saved set


def test_import_export_jsonl_and_fine_tune_data(
    qtbot: Any, view: EvaluateView, tmp_path: Path, ftrag_home: Path
) -> None:
    v = view
    build_and_save(qtbot, v)
    # Fine-tune data: preview first (nothing written), then export exactly that.
    v.sets.open_finetune_dialog()
    dialog = v.sets.finetune_dialog
    assert dialog is not None and not dialog.export_button.isEnabled()
    dialog.kind.setCurrentIndex(dialog.kind.findData("raft"))
    target = tmp_path / "finetune"
    dialog.out.setText(str(target))
    with qtbot.waitSignal(dialog.previewed, timeout=WAIT) as previewed:
        qtbot.mouseClick(dialog.preview_button, Qt.MouseButton.LeftButton)
    preview = previewed.args[0]
    assert preview.problems == [] and preview.train.examples + preview.valid.examples == 5
    assert "examples" in dialog.report.toPlainText() and not target.exists()
    assert dialog.export_button.isEnabled()
    with qtbot.waitSignal(dialog.written, timeout=WAIT) as written:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert Path(written.args[0]) == target.resolve()
    train = [json.loads(x) for x in (target / "train.jsonl").read_text().splitlines()]
    assert len(train) == preview.train.examples
    assert all(m["messages"][-1]["role"] == "assistant" for m in train)
    assert (target / "README.md").is_file()
    manifest = json.loads((target / "export.json").read_text())
    first = EvalSetStore.for_home(Home(ftrag_home)).version_path("demo", 1)
    assert manifest["inputs"] == [str(first)]  # the saved version the data came from
    dialog.close()

    out = tmp_path / "out" / "demo.jsonl"
    out.parent.mkdir()
    with qtbot.waitSignal(v.sets.exported, timeout=WAIT):
        v.sets.export_file(str(out))
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 5 and {"question", "source_chunk_id", "origin"} <= set(lines[0])

    with qtbot.waitSignal(v.sets.set_shown, timeout=WAIT) as shown:
        v.sets.import_file(str(out), "copy")
    imported = shown.args[0]
    assert imported.name == "copy" and imported.version == 0 and len(imported.items) == 5
    assert v.sets.is_dirty() and "not saved yet" in v.sets.title.text()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no id"}\n')
    v.sets.import_file(str(bad), "bad")
    qtbot.waitUntil(lambda: "line 1" in v.sets.status.text(), timeout=WAIT)


def test_two_configurations_to_the_report_and_its_exports(
    qtbot: Any, view: EvaluateView, tmp_path: Path
) -> None:
    v = view
    build_and_save(qtbot, v)
    v.pages.setCurrentWidget(v.run)
    v.run.editor.set_configs(
        [EvalConfig("llama3.2", rag=True, top_k=3), EvalConfig("llama3.2", rag=False)]
    )
    report = run_to_end(qtbot, v)
    assert v.pages.currentWidget() is v.report  # a finished run opens its report
    assert v.run.progress.value() == v.run.progress.maximum() == 10
    assert report.complete and report.set_name == "demo" and len(report.rows) == 2
    rag, plain = report.rows
    assert rag.correct == 1.0 and plain.correct == 0.0 and rag.hit_at_k == 1.0

    table = v.report.table
    assert table.rowCount() == 2
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    correct = headers.index("correct")
    assert table.item(0, 0).text().startswith("#1 llama3.2") and "(base)" in table.item(0, 0).text()
    assert (table.item(0, correct).text(), table.item(1, correct).text()) == ("100%", "0%")
    assert table.item(1, headers.index("citations\nsupported")).text() == "–"  # n/a
    assert v.report.rates.bar_values() == [[100.0, 100.0, 100.0], [0.0, 0.0, 100.0]]
    latency = v.report.latency.bar_values()
    assert len(latency) == 2 and all(len(x) == 2 and min(x) > 0 for x in latency)
    summary = v.report.summary.toPlainText()
    assert "Which approach?" in summary and report.recommendation.headline in summary
    assert report.recommendation.approach == "rag" and "Evidence" in summary
    assert "No fine-tuned model was evaluated" in summary
    assert not v.report.resume_button.isVisible()
    assert v.report.runs.count() == 1

    csv_path, html_path = tmp_path / "r.csv", tmp_path / "r.html"
    with qtbot.waitSignal(v.report.exported, timeout=WAIT):
        v.report.export_csv(str(csv_path))
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [r["correct"] for r in rows] == ["1.0000", "0.0000"]
    with qtbot.waitSignal(v.report.exported, timeout=WAIT):
        v.report.export_html(str(html_path))
    page = html_path.read_text()
    assert "Which approach?" in page and "<svg" in page and "llama3.2" in page


def test_cancel_then_resume_a_run(
    qtbot: Any, view: EvaluateView, ollama_server: Any, ftrag_home: Path
) -> None:
    v = view
    build_and_save(qtbot, v)
    v.run.editor.set_configs(
        [EvalConfig("llama3.2", rag=True, top_k=3), EvalConfig("llama3.2", rag=False)]
    )
    ollama_server.token_delay_s = 0.02  # answers take a moment: there is time to cancel
    scored: list[Any] = []
    v.run.item_scored.connect(scored.append)
    with qtbot.waitSignal(v.run.run_finished, timeout=WAIT) as finished:
        qtbot.mouseClick(v.run.start_button, Qt.MouseButton.LeftButton)
        assert v.run.is_running() and v.run.cancel_button.isEnabled()
        assert not v.run.start_button.isEnabled()
        qtbot.waitUntil(lambda: len(scored) >= 1, timeout=WAIT)
        qtbot.mouseClick(v.run.cancel_button, Qt.MouseButton.LeftButton)
    stopped = finished.args[0]
    assert isinstance(stopped, RunFinished) and stopped.cancelled and stopped.done < 10
    qtbot.waitUntil(lambda: not v.run.is_running(), timeout=WAIT)
    assert v.run.resume_button.isEnabled() and v.run.resumable() == stopped.run_id
    assert "Stopped after" in v.run.current.text()
    # The partial report says so, and offers Resume there too.
    qtbot.waitUntil(
        lambda: (r := v.report.report()) is not None and r.run_id == stopped.run_id, timeout=WAIT
    )
    assert not v.report.report().complete  # type: ignore[union-attr]
    assert not v.report.resume_button.isHidden()
    answered = len(RunStore.for_home(Home(ftrag_home)).results(stopped.run_id))
    assert answered == stopped.done

    ollama_server.token_delay_s = 0.0
    scored.clear()
    with qtbot.waitSignal(v.run.run_finished, timeout=WAIT) as finished:
        qtbot.mouseClick(v.report.resume_button, Qt.MouseButton.LeftButton)
    done = finished.args[0]
    assert done.run_id == stopped.run_id and not done.cancelled and done.done == 10
    assert len(scored) == 10 - answered  # only what was not answered before
    qtbot.waitUntil(lambda: not v.run.is_running(), timeout=WAIT)
    assert not v.run.resume_button.isEnabled()
    qtbot.waitUntil(lambda: (r := v.report.report()) is not None and r.complete, timeout=WAIT)
    assert v.report.report().rows[0].correct == 1.0  # type: ignore[union-attr]


def test_fine_tuned_models_are_marked_and_suggested(
    qtbot: Any, controller: AppController, ollama_server: Any
) -> None:
    ollama_server.add_model(
        ModelEntry(
            "llama3.2-support:latest",
            "llama",
            "3.2B",
            "Q4_K_M",
            2_019_393_189,
            extra_info={"general.base_model.count": 1, "general.base_model.0.name": "llama3.2"},
        )
    )
    v = EvaluateView(controller)
    qtbot.addWidget(v)
    with qtbot.waitSignal(v.models_listed, timeout=WAIT):
        v.show()
    configs = v.run.editor.configs()
    assert [(c.model, c.rag) for c in configs] == [
        ("llama3.2:latest", True),
        ("llama3.2-support:latest", False),
        ("llama3.2-support:latest", True),
    ]
    picker = v.run.editor.rows()[1].model
    assert "fine-tuned from llama3.2" in picker.currentText()
    assert v.run.judge.findData("smollm2:135m") >= 0
    assert v.run.judge.findData("nomic-embed-text:latest") < 0  # no embedders


def test_the_main_window_has_the_evaluate_tab(
    qtbot: Any, ftrag_home: Path, ollama_server: Any
) -> None:
    from ftrag_desktop.app.main_window import MainWindow
    from ftrag_desktop.config import save_settings

    ollama_server.embed_backend = "hash"
    home = Home(ftrag_home)
    save_settings(home.settings_file, Settings(ollama_host=ollama_server.url))
    window = MainWindow(home)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.controller.engine_ready, timeout=WAIT):
        window.show()
    window.tabs.setCurrentWidget(window.evaluate)
    qtbot.waitUntil(lambda: "No set yet" in window.evaluate.sets.title.text(), timeout=WAIT)
    assert window.tabs.tabText(window.tabs.indexOf(window.evaluate)) == "Evaluate"
    window.close()
    assert QThreadPool.globalInstance().waitForDone(WAIT)


def test_a_model_trained_from_an_ollama_base_is_set_against_that_base(
    qtbot: Any, view: EvaluateView, ollama_server: Any
) -> None:
    """The Train tab's "Evaluate against the base": the base and the new model, each alone and
    with the documents, still so once the model list (which now holds the new model) arrives."""
    from ftrag_desktop.app.train_view import compare_with_base

    # The model the training has just imported: the open view has not listed it yet.
    ollama_server.add_model(ModelEntry("smol-facts:latest", "llama", "134.52M", "F16", 270_000_000))
    view.pages.setCurrentWidget(view.sets)
    with qtbot.waitSignal(view.models_listed, timeout=WAIT):
        compare_with_base(view, "smol-facts:latest", "smollm2:135m", 4)
    assert view.pages.currentWidget() is view.run
    expected = [
        ("smollm2:135m", False, 0),
        ("smollm2:135m", True, 4),
        ("smol-facts:latest", False, 0),
        ("smol-facts:latest", True, 4),
    ]
    assert [(c.model, c.rag, c.top_k) for c in view.run.editor.configs()] == expected
    picker = view.run.editor.rows()[3].model
    assert picker.findData("smol-facts:latest") >= 0  # the new model is in the pickers now
    # A file base (no Ollama name): the new model alone and with the documents.
    compare_with_base(view, "smol-facts:latest", "", 4)
    assert [(c.model, c.rag) for c in view.run.editor.configs()] == [
        ("smol-facts:latest", False),
        ("smol-facts:latest", True),
    ]
