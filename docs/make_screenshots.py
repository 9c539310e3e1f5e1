"""Make the README's screenshots: a real folder indexed and a real question answered.

    .venv/bin/python docs/make_screenshots.py      (or `make screenshots`)

Runs the app under Xvfb with `--screenshot` against the project's Ollama-protocol test server
(real MiniLM embeddings, scripted chat) and writes docs/screenshots/{main,library,viewer}.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_PDFS = REPO.parent / "shared" / "data" / "pdfs"
OUT = REPO / "docs" / "screenshots"
QUESTION = "What must the flight control computers do when the two AOA sensors disagree?"

NOTES = {
    "maintenance-notes.md": """# Maintenance notes

## AOA sensors

Both angle-of-attack sensors were replaced during the March check. The flight crew reported
no disagreement alerts afterwards.

## Cabin

The forward lavatory door latch was adjusted.
""",
    "reading-list.txt": "Federal Register notice 2020-17221 covers the proposed airworthiness\n"
    "directive for the flight control computer software.\n",
}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ftrag-shots-"))
    docs = work / "Documents"
    docs.mkdir()
    shutil.copy(SHARED_PDFS / "pdfplumber-tests" / "federal-register-2020-17221.pdf", docs)
    shutil.copy(SHARED_PDFS / "py-pdf-sample-files" / "006-pdflatex-outline" /
                "pdflatex-outline.pdf", docs)
    for name, text in NOTES.items():
        (docs / name).write_text(text, encoding="utf-8")
    (docs / "scanned-receipt.pdf").write_bytes(b"%PDF-1.4\n% damaged: truncated upload\n")

    server = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "serve_ollama.py"), "--embed-backend", "minilm"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        home = work / "home"
        home.mkdir()
        (home / "settings.json").write_text(
            f'{{"ollama_host": "{url}", "watched_folders": ["{docs}"]}}', encoding="utf-8"
        )
        env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
        base = ["xvfb-run", "-a", "-s", "-screen 0 1440x900x24", sys.executable, "-m",
                "ftrag_desktop", "--home", str(home)]
        shots = [
            ("main.png", ["--ask", QUESTION]),
            ("viewer.png", ["--show", "viewer"]),
            ("library.png", ["--show", "library"]),
        ]
        for name, extra in shots:
            target = OUT / name
            subprocess.run([*base, "--screenshot", str(target), *extra], env=env, check=True,
                           timeout=300)
            print(f"wrote {target}")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    # The Evaluate tab's report: a workbench run of its own (docs/make_eval_screenshot.py).
    subprocess.run([sys.executable, str(REPO / "docs" / "make_eval_screenshot.py")], check=True,
                   timeout=900)
    # The Train tab mid-run: a real fine-tune of SmolLM2-135M (docs/make_train_screenshot.py).
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1440x900x24", sys.executable,
                    str(REPO / "docs" / "make_train_screenshot.py")], env=env, check=True,
                   timeout=900)
    return 0


if __name__ == "__main__":
    sys.exit(main())
