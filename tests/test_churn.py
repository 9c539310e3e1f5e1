"""Watcher churn, scaled down: the index converges to exactly what is on disk.

`bench/churn.py` at full scale is 5,000 files and 10,000 events; here the library service
watches 1,000 files while 2,000 events come in bursts (the same random mix: renames of files
and folders, rename-then-modify, delete-then-recreate under the same name, atomic saves, new
folders filled at once, folders deleted).  Then the index must match the disk exactly, as a
second, read-only reader sees it: the same paths, each document's size, mtime and hash current,
chunks only for live files and holding their current text, nothing pending, `check_health()`
empty.  The time from the last event to convergence is printed (`pytest -s` shows it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.churn import (
    MIX,
    Churn,
    disk_state,
    expected_matches_churn,
    full_problems,
    wait_converged,
)
from ftrag_desktop.config import Settings
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import SyncFinished, SyncStarted
from ftrag_desktop.core.service import LibraryService, ServiceError, ServiceEvent, ServiceIdle
from ftrag_desktop.core.store import Store
from ftrag_desktop.paths import Home
from tests.ollama_server import OllamaTestServer

FILES = 1000
EVENTS = 2000
CONVERGE_TIMEOUT_S = 60.0


class Recorder:
    """Service events with the time they arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[float, ServiceEvent]] = []
        self._lock = threading.Lock()

    def __call__(self, event: ServiceEvent) -> None:
        with self._lock:
            self.events.append((time.monotonic(), event))

    def of(self, kind: type, since: float = 0.0) -> list[ServiceEvent]:
        with self._lock:
            return [e for t, e in self.events if isinstance(e, kind) and t >= since]

    def idle_since(self, since: float) -> bool:
        """After `since`, the last sync was followed by the service saying it is idle."""
        kinds = (SyncStarted, SyncFinished, ServiceIdle)
        with self._lock:
            marks = [e for t, e in self.events if t >= since and isinstance(e, kinds)]
        return bool(marks) and isinstance(marks[-1], ServiceIdle)


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_index_converges_exactly_after_a_burst_churn(
    tmp_path: Path, ftrag_home: Path, ollama_server: OllamaTestServer
) -> None:
    ollama_server.embed_backend = "hash"
    root = tmp_path / "watched"
    churn = Churn(root, seed=11)
    churn.populate(FILES, per_dir=100)
    home = Home(ftrag_home)
    engine = Engine(home, Settings(ollama_host=ollama_server.url))
    rec = Recorder()
    service = LibraryService(engine, rec, debounce_s=0.3)
    service.start()
    reader = Store(home.index_dir, read_only=True)
    try:
        service.add_folder(root)
        wait_for(lambda: bool(rec.of(SyncFinished)) and service.pending() == 0, 120, "indexing")
        assert len(reader.documents()) == FILES

        stats = churn.run(EVENTS, burst=(100, 500), pause_s=(0.05, 0.3))
        assert stats.events >= EVENTS and stats.bursts >= 4
        assert set(stats.ops) == set(MIX), "every kind of change was made"
        disk = disk_state(root)
        assert expected_matches_churn(disk, churn) == []  # the churn knows what it did
        assert 0.8 * FILES < len(disk) < 1.2 * FILES

        result = wait_converged(reader, disk, stats.last_event, timeout_s=CONVERGE_TIMEOUT_S)
        print(f"\nconverged: {result.converged}, {result.seconds} s after the last event")
        assert result.converged, result.problems
        # Nothing is left to do: no path held by the watcher, no command queued, no sync
        # running, and the service said it is idle after its last sync.
        wait_for(
            lambda: service.pending() == 0 and rec.idle_since(stats.last_event),
            30,
            "the service to idle",
        )
        assert full_problems(reader, disk) == []  # still exact once everything settled
        assert not [d for d in reader.documents() if d.status.value != "indexed"]
        assert rec.of(ServiceError) == []
    finally:
        reader.close()
        service.stop()
        engine.close()
    assert not service.is_alive()
