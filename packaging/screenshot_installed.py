"""docs/screenshots/installed.png: the *installed* app (the .deb) under Xvfb, with an answer.

    sudo .venv/bin/python packaging/screenshot_installed.py     (after `make package`)

Installs dist/ftrag-desktop_*.deb when the package is not installed yet (and removes it again
afterwards), indexes a small folder and asks one question through the project's
Ollama-protocol test server (real MiniLM embeddings, a scripted answer), and saves the window
with `/usr/bin/ftrag-desktop --screenshot`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_PDFS = REPO.parent / "shared" / "data" / "pdfs"
OUT = REPO / "docs" / "screenshots" / "installed.png"
APP = Path("/usr/bin/ftrag-desktop")
PACKAGE = "ftrag-desktop"
QUESTION = "What do the lighthouse keepers count at dawn?"
NOTES = """# Field notes

## Herons

Grey herons nest in the tall trees behind the harbour. The lighthouse keepers keep a tally
every morning.
"""


def installed() -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PACKAGE], capture_output=True)
    return out.returncode == 0 and out.stdout.decode().strip() == "install ok installed"


def main() -> int:
    we_installed = False
    if not installed():
        debs = sorted((REPO / "dist").glob(f"{PACKAGE}_*.deb"), key=lambda p: p.stat().st_mtime)
        if not debs:
            raise SystemExit("no .deb in dist/: run `make package` first")
        if os.geteuid() != 0:
            raise SystemExit(f"{PACKAGE} is not installed: `sudo dpkg -i {debs[-1]}` first")
        subprocess.run(["dpkg", "-i", str(debs[-1])], check=True, stdout=subprocess.DEVNULL)
        we_installed = True
    work = Path(tempfile.mkdtemp(prefix="ftrag-installed-shot-"))
    server = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "serve_ollama.py"), "--embed-backend", "minilm"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        docs = work / "Documents"
        docs.mkdir()
        shutil.copy(REPO / "resources" / "samples" / "ftrag-sample.pdf", docs)
        shutil.copy(SHARED_PDFS / "pdfplumber-tests" / "federal-register-2020-17221.pdf", docs)
        (docs / "field-notes.md").write_text(NOTES, encoding="utf-8")
        home = work / "home"
        home.mkdir()
        settings = {"ollama_host": url, "watched_folders": [str(docs)]}
        (home / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "PYTHON"))}
        OUT.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "xvfb-run",
                "-a",
                "-s",
                "-screen 0 1440x900x24",
                str(APP),
                "--home",
                str(home),
                "--screenshot",
                str(OUT),
                "--ask",
                QUESTION,
            ],
            env=env,
            check=True,
            timeout=300,
        )
        print(f"wrote {OUT.relative_to(REPO)}")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
        if we_installed:
            subprocess.run(["dpkg", "-r", PACKAGE], check=True, stdout=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
