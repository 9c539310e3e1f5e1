"""The library service in its own process: commands, events, stop, crash restart, orphan exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftrag_desktop.config import Settings, load_settings
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import SyncFinished
from ftrag_desktop.core.service import LibraryChanged, ServiceError, ServiceIdle
from ftrag_desktop.core.service_process import LibraryProcess
from ftrag_desktop.paths import Home
from tests.test_service import Recorder, indexed, wait_for

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def library(
    ftrag_home: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> Iterator[tuple[LibraryProcess, Engine, Recorder]]:
    ollama_server.embed_backend = "hash"
    settings = Settings(ollama_host=ollama_server.url)
    engine = Engine(Home(ftrag_home), settings)  # this process only reads the index
    rec = Recorder()
    proc = LibraryProcess(Home(ftrag_home), settings, rec, debounce_s=0.1)
    proc.start()
    yield proc, engine, rec
    proc.stop()
    assert not proc.is_alive()
    engine.close()


def test_commands_run_in_the_child_and_events_come_back(library, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc, engine, rec = library
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nOtters hold hands while they sleep.\n")
    (folder / "bad.pdf").write_bytes(b"not a pdf at all")
    proc.add_folder(folder)
    wait_for(lambda: indexed(engine) == {"a.md": "indexed", "bad.pdf": "failed"}, 60)
    assert proc.pid != os.getpid()
    assert rec.of(LibraryChanged)[-1].folders == (str(folder),)  # type: ignore[attr-defined]
    wait_for(lambda: bool(rec.of(SyncFinished)) and bool(rec.of(ServiceIdle)))
    # the child saved the folder list; the reader (this process) finds the text
    assert str(folder) in load_settings(engine.home.settings_file).watched_folders
    assert engine.search("otters sleep", mode="keyword").hits

    (folder / "b.txt").write_text("Hedgehogs compose sonnets at dawn.\n")  # the watcher
    wait_for(lambda: bool(engine.search("hedgehogs sonnets", mode="keyword").hits), 30)

    proc.pause(folder)
    wait_for(lambda: str(folder) in rec.of(LibraryChanged)[-1].paused)  # type: ignore[attr-defined]
    proc.remove_folder(folder)
    wait_for(lambda: indexed(engine) == {}, 30)
    assert (folder / "a.md").exists()


def test_stop_is_quick_even_mid_sync(library, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc, _engine, rec = library
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(400):
        (folder / f"n{i}.txt").write_text(f"note {i} about the harbour tides and the moon\n" * 20)
    proc.add_folder(folder)
    wait_for(lambda: bool(rec.of(LibraryChanged)), 30)
    proc.stop(timeout=2.0)
    assert not proc.is_alive()


def test_a_killed_child_is_restarted_and_finishes_the_sync(library, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc, engine, rec = library
    folder = tmp_path / "crash"
    folder.mkdir()
    for i in range(120):
        (folder / f"c{i}.md").write_text(f"# Note {i}\n\nPenguins file taxes number {i}.\n")
    proc.add_folder(folder)
    wait_for(lambda: len(engine.store.documents()) > 5, 60)
    first = proc.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: any("restarting" in e.message for e in rec.of(ServiceError)), 20)  # type: ignore[attr-defined]
    wait_for(lambda: proc.pid != first and proc.is_alive(), 20)
    wait_for(lambda: len(indexed(engine)) == 120, 120)
    wait_for(lambda: set(indexed(engine).values()) == {"indexed"}, 60)
    counts = engine.store.stats()["chunks"]
    assert counts == 120  # one chunk per note, none duplicated by the crash


def test_child_exits_when_the_app_process_dies(ftrag_home: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys, time
        sys.path.insert(0, {str(REPO)!r})
        from ftrag_desktop.config import Settings, load_settings
        from ftrag_desktop.core.service_process import LibraryProcess
        from ftrag_desktop.paths import Home
        if __name__ == "__main__":
            p = LibraryProcess(Home({str(ftrag_home)!r}),
                               Settings(ollama_host="http://127.0.0.1:9", embed_model=""),
                               lambda e: None)
            p.start()
            time.sleep(3)
            print(p.pid, flush=True)
            os._exit(0)  # no stop(): the app crashed
        """
    )
    path = tmp_path / "app.py"
    path.write_text(script)
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    child = int(out.stdout.strip())

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        # a zombie re-parented to init counts as gone once init reaps it
        try:
            with open(f"/proc/{child}/status", encoding="ascii") as fh:
                return "zombie" in fh.read()
        except FileNotFoundError:
            return True

    wait_for(gone, 15)


def test_a_child_that_cannot_be_started_is_reported_not_waited_for(
    ftrag_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`start(wait=False)` (the app's way) spawns on a thread of its own: a failure there (no
    memory or processes left for fork) arrives as a ServiceError the window shows, instead of
    the window saying "Opening the library…" for ever."""
    rec = Recorder()
    proc = LibraryProcess(Home(ftrag_home), Settings(), rec)

    def cannot_fork(*_args: object, **_kwargs: object) -> object:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(proc._ctx, "Process", cannot_fork)
    proc.start(wait=False)
    wait_for(lambda: bool(rec.of(ServiceError)), 10)
    message = rec.of(ServiceError)[0].message  # type: ignore[union-attr]
    assert message.startswith("Indexing could not start: its process failed to launch (")
    assert "Cannot allocate memory" in message and "logs/ftrag.log" in message
    assert not proc.is_alive()
    proc.stop()
