"""Make docs/screenshots/compare.png: the compare window with two finished answers.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_compare_screenshot.py [OUT.png]

Indexes a small real folder (a Federal Register PDF and two notes) against the project's
Ollama-protocol test server (real MiniLM embeddings; chat answers scripted below, since no
real model runs here), compares one question with and without the documents, marks the
grounded answer as best, and saves the window offscreen with `QWidget.grab()`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from PySide6.QtCore import QEventLoop, QThreadPool, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from ftrag_desktop.app.compare_view import CompareWindow  # noqa: E402
from ftrag_desktop.app.controller import AppController  # noqa: E402
from ftrag_desktop.config import Settings  # noqa: E402
from ftrag_desktop.core.compare import CompareConfig  # noqa: E402
from ftrag_desktop.core.engine import Engine  # noqa: E402
from ftrag_desktop.paths import Home  # noqa: E402
from tests.ollama_server import OllamaTestServer  # noqa: E402

PDFS = REPO.parent / "shared" / "data" / "pdfs"
PDF = PDFS / "pdfplumber-tests" / "federal-register-2020-17221.pdf"
OUT = REPO / "docs" / "screenshots" / "compare.png"
QUESTION = "What must the flight control computers do when the two AOA sensors disagree?"
NOTES = """# Maintenance notes

## AOA sensors

Both angle-of-attack sensors were replaced during the March check. The flight crew reported
no disagreement alerts afterwards.
"""
GROUNDED = """When the two angle-of-attack (AOA) sensors disagree, the new flight control \
software compares their inputs and **does not activate MCAS** [1]:

- MCAS is inhibited for the rest of the flight if the sensors differ by more than 5.5 degrees \
with the flaps retracted [1].
- It activates at most once per high-AOA event, and its command is limited so the pilots can \
always counter it with the control column [1][2].

Your maintenance notes add that both sensors were replaced in March, with no disagreement \
alerts since [2]."""
ALONE = """Most modern airliners compare the readings of their angle-of-attack sensors. If the \
two disagree, systems that depend on them are typically **disabled** and the crew gets an \
*AOA DISAGREE* alert, so that one faulty sensor cannot drive automatic trim.

The exact behaviour depends on the aircraft type and its software version: check the \
manufacturer's documentation or the applicable airworthiness directive."""


def reply(messages: list[dict[str, Any]]) -> str:
    return GROUNDED if "Sources:" in str(messages[-1].get("content")) else ALONE


def wait(app: QApplication, until: Any, timeout_s: float = 120.0) -> None:
    loop = QEventLoop()
    timer = QTimer()
    timer.timeout.connect(lambda: loop.quit() if until() else None)
    timer.start(50)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    timer.stop()
    if not until():
        raise SystemExit("timed out")


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    app = QApplication.instance() or QApplication(sys.argv)
    work = Path(tempfile.mkdtemp(prefix="ftrag-compare-shot-"))
    server = OllamaTestServer(embed_backend="minilm").start()
    try:
        server.reply = reply
        server.token_delay_s = 0.01
        docs = work / "Documents"
        docs.mkdir()
        shutil.copy(PDF, docs)
        (docs / "maintenance-notes.md").write_text(NOTES, encoding="utf-8")
        home = Home(work / "home")
        engine = Engine(home, Settings(ollama_host=server.url, top_k=4))
        for _ in engine.sync(docs):
            pass
        controller = AppController(home)
        controller.engine = engine
        window = CompareWindow(controller)
        window.open_for("llama3.2", QUESTION)
        window.editor.set_configs(
            [CompareConfig("llama3.2", rag=True, top_k=4), CompareConfig("llama3.2", rag=False)]
        )
        wait(app, lambda: window.editor.rows()[0].model.count() > 1)
        window.start()
        wait(app, lambda: not window.is_running() and not window.is_saving())
        window.columns()[0].best_button.click()
        wait(app, lambda: not window.is_saving())
        QTimer.singleShot(400, app.quit)
        app.exec()
        out.parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(out))
        print(f"wrote {out}" if ok else f"could not write {out}")
        window.close()
        QThreadPool.globalInstance().waitForDone(10_000)
        controller.shutdown()
        return 0 if ok else 1
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
