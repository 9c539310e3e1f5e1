"""Make docs/screenshots/models.png and models-import.png: the Models dialog with real data.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_models_screenshots.py

Against the project's Ollama-protocol test server: a fine-tune of smollm2:135m is imported
through the core first (a small real GGUF), then the dialog is shown with it selected while a
pull runs (models.png), and with a second GGUF imported through the dialog (models-import.png).
Saved offscreen with `QWidget.grab()`.
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

from PySide6.QtCore import QEventLoop, QThreadPool  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from ftrag_desktop.app.controller import AppController  # noqa: E402
from ftrag_desktop.app.models_dialog import ModelsDialog  # noqa: E402
from ftrag_desktop.config import Settings, save_settings  # noqa: E402
from ftrag_desktop.core.engine import Engine  # noqa: E402
from ftrag_desktop.core.model_import import ImportRequest  # noqa: E402
from ftrag_desktop.core.models import ModelManager  # noqa: E402
from ftrag_desktop.paths import Home  # noqa: E402
from tests.gguf_files import write_model_gguf  # noqa: E402
from tests.ollama_server import OllamaTestServer  # noqa: E402

OUT = REPO / "docs" / "screenshots"


def wait(app: QApplication, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    # Sleep between turns: a busy loop of processEvents() would make millions of Qt calls.
    end = time.monotonic() + timeout_s
    while not done() and time.monotonic() < end:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.02)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="ftrag-models-shots-"))
    downloads = work / "Downloads"
    downloads.mkdir()
    os.environ["OLLAMA_MODELS"] = str(work / "ollama-models")
    (work / "ollama-models").mkdir()
    app = QApplication(sys.argv[:1])
    server = OllamaTestServer(embed_backend="hash").start()
    home = Home(work / "home")
    save_settings(home.settings_file, Settings(ollama_host=server.url))
    controller = AppController(home)
    controller.engine = Engine(home)
    try:
        manager = ModelManager(controller.engine.client, home)
        tune = write_model_gguf(downloads / "smol-support-tune.gguf")
        request = ImportRequest(
            tune,
            "smol-support",
            base="smollm2:135m",
            num_ctx=4096,
            temperature=0.3,
            system="You answer support questions briefly.",
        )
        list(manager.import_model(request))

        dialog = ModelsDialog(controller, lambda: "llama3.2:latest")
        dialog.show()
        wait(app, lambda: dialog.model.rowCount() > 0)
        dialog.select("smol-support")
        server.token_delay_s = 0.3
        dialog.pull_panel.name_combo.setCurrentText("qwen2.5:0.5b")
        dialog.pull_panel.start("qwen2.5:0.5b")
        wait(app, lambda: "%)" in dialog.pull_panel.status_text())
        wait(app, lambda: False, 0.5)
        dialog.grab().save(str(OUT / "models.png"))
        dialog.pull_panel.cancel()
        wait(app, lambda: not dialog.pull_panel.is_busy())

        dialog.tabs.setCurrentIndex(1)
        panel = dialog.import_panel
        second = write_model_gguf(downloads / "smol-legal-tune.gguf", padding_mb=8)
        panel.form.source_edit.setText(str(second))
        panel.form.base_combo.setCurrentIndex(panel.form.base_combo.findData("smollm2:135m"))
        panel.form.num_ctx.setValue(4096)
        panel.form.system_edit.setPlainText("Answer with references to the clause.")
        wait(app, lambda: "Architecture" in panel.checks_text())
        panel.start()
        wait(app, lambda: panel.imported_name != "")
        wait(app, lambda: dialog.model.rowCount() == 6)
        wait(app, lambda: False, 0.3)
        dialog.grab().save(str(OUT / "models-import.png"))
        dialog.close()
        QThreadPool.globalInstance().waitForDone(10_000)
    finally:
        controller.shutdown()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {OUT / 'models.png'} and {OUT / 'models-import.png'}")
    sys.stdout.flush()
    # PySide6 6.12 loses references to None and True (see the report); skip the teardown.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
