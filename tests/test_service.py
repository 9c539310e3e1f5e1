"""The library service: one writer thread; add, pause, rescan, retry, remove, live edits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ftrag_desktop.config import Settings
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import FileFailed, SyncFinished
from ftrag_desktop.core.service import (
    LibraryChanged,
    LibraryService,
    ServiceError,
    ServiceEvent,
    ServiceIdle,
)
from ftrag_desktop.core.status_report import StatusReport
from ftrag_desktop.paths import Home


class Recorder:
    def __init__(self) -> None:
        self.events: list[ServiceEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: ServiceEvent) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, kind: type) -> list[ServiceEvent]:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def service(
    ftrag_home: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> Iterator[tuple[LibraryService, Engine, Recorder]]:
    ollama_server.embed_backend = "hash"
    engine = Engine(Home(ftrag_home), Settings(ollama_host=ollama_server.url))
    rec = Recorder()
    svc = LibraryService(engine, rec, debounce_s=0.1)
    svc.start()
    yield svc, engine, rec
    svc.stop()
    assert not svc.is_alive()
    engine.close()


def indexed(engine: Engine) -> dict[str, str]:
    return {Path(d.path).name: d.status.value for d in engine.store.documents()}


def test_add_pause_rescan_retry_remove(service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    svc, engine, rec = service
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nOtters hold hands.\n")
    (folder / "bad.pdf").write_bytes(b"not a pdf")
    svc.add_folder(folder)
    wait_for(lambda: indexed(engine) == {"a.md": "indexed", "bad.pdf": "failed"})
    assert engine.settings.watched_folders == [str(folder)]
    assert any(isinstance(e, FileFailed) for e in rec.events)
    assert rec.of(LibraryChanged)[-1].folders == (str(folder),)  # type: ignore[attr-defined]

    svc.pause(folder)
    wait_for(lambda: str(folder) in rec.of(LibraryChanged)[-1].paused)  # type: ignore[attr-defined]
    (folder / "b.txt").write_text("Paused folders are not synced.\n")
    svc.rescan(folder)  # an explicit rescan works even when paused
    wait_for(lambda: "b.txt" in indexed(engine))

    (folder / "bad.pdf").write_text("now it is text pretending to be pdf")
    (folder / "bad.pdf").rename(folder / "fixed.txt")
    svc.pause(folder, False)
    wait_for(lambda: indexed(engine).get("fixed.txt") == "indexed")

    svc.remove_folder(folder)
    wait_for(lambda: indexed(engine) == {})
    assert (folder / "a.md").exists()  # the files stay on disk
    assert engine.settings.watched_folders == []


def test_live_edits_are_picked_up_by_the_watcher(service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    svc, engine, rec = service
    folder = tmp_path / "live"
    folder.mkdir()
    svc.add_folder(folder)
    wait_for(lambda: bool(rec.of(ServiceIdle)))
    (folder / "new.txt").write_text("Hedgehogs compose sonnets.\n")
    wait_for(lambda: bool(engine.search("hedgehogs sonnets", mode="keyword").hits))
    (folder / "new.txt").unlink()
    wait_for(lambda: not engine.search("hedgehogs sonnets", mode="keyword").hits)
    assert any(isinstance(e, SyncFinished) for e in rec.events)


def test_missing_folder_is_an_error_event(service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    svc, _engine, rec = service
    svc.add_folder(tmp_path / "nope")
    wait_for(lambda: bool(rec.of(ServiceError)))
    assert "Folder not found" in rec.of(ServiceError)[0].message  # type: ignore[attr-defined]


def test_status_reports_are_full_at_start_then_deltas(service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    svc, engine, rec = service
    wait_for(lambda: bool(rec.of(StatusReport)))
    first = rec.of(StatusReport)[0]
    assert isinstance(first, StatusReport) and first.full and first.changed == ()

    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nOtters hold hands.\n")
    (folder / "b.md").write_text("# B\n\nBeavers build dams.\n")
    svc.add_folder(folder)
    wait_for(lambda: indexed(engine) == {"a.md": "indexed", "b.md": "indexed"})
    mirror: dict[str, dict[str, object]] = {}
    for report in rec.of(StatusReport):
        assert isinstance(report, StatusReport)
        report.apply_to(mirror)
    seen = len(rec.of(StatusReport))
    svc.request_status()
    wait_for(lambda: len(rec.of(StatusReport)) > seen)
    delta = rec.of(StatusReport)[-1]
    assert isinstance(delta, StatusReport) and not delta.full
    delta.apply_to(mirror)
    assert {Path(p).name: d["status"] for p, d in mirror.items()} == indexed(engine)
    assert delta.folder_counts == {str(folder): (2, 0)}

    (folder / "b.md").unlink()
    wait_for(lambda: set(indexed(engine)) == {"a.md"})
    seen = len(rec.of(StatusReport))
    svc.request_status()
    wait_for(lambda: len(rec.of(StatusReport)) > seen)
    gone = rec.of(StatusReport)[-1]
    assert isinstance(gone, StatusReport) and gone.removed == (str(folder / "b.md"),)
    svc.request_status(full=True)
    wait_for(lambda: len(rec.of(StatusReport)) > seen + 1)
    full = rec.of(StatusReport)[-1]
    assert isinstance(full, StatusReport) and full.full
    assert [Path(str(d["path"])).name for d in full.changed] == ["a.md"]
