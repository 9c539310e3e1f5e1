"""Quitting the real app process mid-sync: SIGTERM closes the window, every child process ends,
nothing is left half-done, and the next start finishes the sync."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.quit_time import alive, descendants
from ftrag_desktop.config import Settings, save_settings
from ftrag_desktop.core.store import Store
from tests.test_service import wait_for

REPO = Path(__file__).resolve().parent.parent


def documents(home: Path) -> dict[str, str]:
    """The index as another process sees it; empty while the app is still creating it."""
    try:
        store = Store(home / "index", read_only=True)
    except (OSError, RuntimeError, ValueError):
        return {}
    try:
        return {Path(d.path).name: d.status.value for d in store.documents()}
    finally:
        store.close()


def start_app(home: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.Popen(
        [sys.executable, "-m", "ftrag_desktop", "--home", str(home)],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_mid_sync_quits_cleanly_and_the_next_start_finishes(
    tmp_path: Path, ollama_server: Any
) -> None:
    ollama_server.embed_backend = "hash"
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(600):
        (docs / f"note{i:03}.md").write_text(
            f"# Note {i}\n\nThe lighthouse keeper logs tide {i}.\n"
        )
    home = tmp_path / "home"
    home.mkdir()
    save_settings(
        home / "settings.json", Settings(ollama_host=ollama_server.url, watched_folders=[str(docs)])
    )

    app = start_app(home)
    try:
        wait_for(lambda: (home / "index").exists() and len(documents(home)) > 0, 60)
        children = descendants(app.pid)
        assert children, "the library runs in a process of its own"
        app.send_signal(signal.SIGTERM)
        assert app.wait(20) == 0
        stderr = app.stderr.read() if app.stderr else ""
        assert "Traceback" not in stderr, stderr
        wait_for(lambda: not any(alive(p) for p in children), 10)
    finally:
        if app.poll() is None:
            app.kill()

    app = start_app(home)  # the next start resumes the sync where it stopped
    try:
        wait_for(lambda: len(documents(home)) == 600, 120)
        wait_for(lambda: set(documents(home).values()) == {"indexed"}, 60)
        app.send_signal(signal.SIGINT)  # Ctrl+C in the terminal quits the same way
        assert app.wait(20) == 0
    finally:
        if app.poll() is None:
            app.kill()
    store = Store(home / "index", read_only=True)
    try:
        assert store.stats()["chunks"] == 600  # one chunk per note, none twice
    finally:
        store.close()
