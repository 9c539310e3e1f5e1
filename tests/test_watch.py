"""The folder watcher on real inotify events: debouncing, stability, ignore rules, threads.

Positive cases wait on a condition with a deadline; a negative case ("nothing for these
files") creates a sentinel file after the ignored ones and waits for the sentinel's request:
inotify delivers events in order, so anything the ignored files had scheduled would be pending
or delivered by then.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.core.watch import FolderWatcher, SyncRequest
from ftrag_desktop.errors import ConfigError

DEADLINE_S = 5.0


class Collector:
    """A thread-safe sink for requests that tests can wait on."""

    def __init__(self, fail_first: int = 0) -> None:
        self._cond = threading.Condition()
        self.received: list[tuple[float, SyncRequest]] = []
        self.calls = 0
        self._fail_first = fail_first

    def __call__(self, request: SyncRequest) -> None:
        with self._cond:
            self.calls += 1
            self.received.append((time.monotonic(), request))
            self._cond.notify_all()
            if self.calls <= self._fail_first:
                raise RuntimeError("callback failure on purpose")

    @property
    def requests(self) -> list[SyncRequest]:
        with self._cond:
            return [r for _, r in self.received]

    def wait_for(
        self, predicate: Callable[[SyncRequest], bool], timeout: float = DEADLINE_S
    ) -> tuple[float, SyncRequest]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for item in self.received:
                    if predicate(item[1]):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching request within {timeout} s; got {self.received!r}"
                    )
                self._cond.wait(left)

    def wait_path(self, path: Path, timeout: float = DEADLINE_S) -> SyncRequest:
        return self.wait_for(lambda r: path in r.paths, timeout)[1]

    def with_path(self, path: Path) -> list[SyncRequest]:
        return [r for r in self.requests if path in r.paths]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leaked == []


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def make_watcher(collector: Collector) -> Iterator[Callable[..., FolderWatcher]]:
    made: list[FolderWatcher] = []

    def make(*roots: Path, **kwargs: Any) -> FolderWatcher:
        kwargs.setdefault("debounce_s", 0.1)
        kwargs.setdefault("stable_s", 0.3)
        kwargs.setdefault("on_request", collector)
        watcher = FolderWatcher(list(roots), **kwargs)
        watcher.start()
        made.append(watcher)
        return watcher

    yield make
    for watcher in made:
        watcher.stop()


def write(path: Path, text: str = "hello") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def old_file(path: Path, text: str = "old") -> Path:
    """A file that exists before the watcher starts, with an mtime well in the past."""
    write(path, text)
    past = time.time() - 3600
    os.utime(path, (past, past))
    return path


def sentinel(root: Path, collector: Collector, name: str = "sentinel.md") -> SyncRequest:
    return collector.wait_path(write(root / name, "sentinel"))


def test_create_gives_one_request_with_the_path(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    watcher = make_watcher(root)
    doc = write(root / "sub" / "doc.md")
    request = collector.wait_path(doc)
    assert request.root == root
    assert request.paths == frozenset({doc})
    assert not request.full
    assert watcher.pending() == 0
    assert len(collector.with_path(doc)) == 1


def test_modify(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    doc = old_file(root / "doc.md")
    make_watcher(root)
    with doc.open("a", encoding="utf-8") as fh:
        fh.write(" more")
    collector.wait_path(doc)


def test_touch_counts_as_a_change(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    doc = old_file(root / "doc.md")
    make_watcher(root)
    os.utime(doc)
    collector.wait_path(doc)


def test_delete(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    doc = old_file(root / "doc.md")
    make_watcher(root)
    doc.unlink()
    request = collector.wait_path(doc)
    assert not request.full


def test_rename_reports_both_paths_in_one_request(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    old = old_file(root / "old.md")
    new = root / "new.md"
    make_watcher(root)
    old.rename(new)
    request = collector.wait_path(new)
    assert request.paths == frozenset({old, new})


def test_atomic_save_through_a_temp_file_reports_the_final_name(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    doc = old_file(root / "doc.md")
    tmp = root / "doc.md.tmp"
    make_watcher(root)
    write(tmp, "new content")
    os.replace(tmp, doc)
    request = collector.wait_path(doc)
    assert tmp not in request.paths
    sentinel(root, collector)
    assert all(tmp not in r.paths for r in collector.requests)


def test_move_in_from_outside(
    root: Path, outside: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    src = old_file(outside / "doc.md")
    make_watcher(root)
    src.rename(root / "doc.md")
    request = collector.wait_path(root / "doc.md")
    assert src not in request.paths


def test_move_out_is_a_deletion(
    root: Path, outside: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    doc = old_file(root / "doc.md")
    make_watcher(root)
    doc.rename(outside / "doc.md")
    request = collector.wait_path(doc)
    assert request.paths == frozenset({doc})


def test_a_file_written_slowly_is_requested_only_once_stable(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    make_watcher(root, debounce_s=0.05, stable_s=0.6)
    doc = root / "download.pdf"
    chunk = b"x" * 4096
    with doc.open("wb") as fh:
        for _ in range(6):
            fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
            last_write = time.monotonic()
            time.sleep(0.2)  # the slow writer's pace: the scenario itself, not a wait
    arrived, _ = collector.wait_for(lambda r: doc in r.paths)
    assert arrived > last_write
    assert doc.stat().st_size == 6 * len(chunk)
    assert len(collector.with_path(doc)) == 1


def test_many_quick_edits_coalesce_into_one_request(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    doc = old_file(root / "doc.md")
    watcher = make_watcher(root)
    for i in range(30):
        with doc.open("a", encoding="utf-8") as fh:
            fh.write(f"edit {i}\n")
    collector.wait_path(doc)
    sentinel(root, collector)
    assert len(collector.with_path(doc)) == 1
    assert watcher.pending() == 0


IGNORED = [
    "x.tmp",
    "~$report.docx",
    ".~lock.report.odt#",
    ".notes.md.swp",
    "notes.md~",
    "#notes.md#",
    ".#notes.md",
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    "setup.crdownload",
    "movie.part",
]


def test_ignored_names_produce_nothing(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    watcher = make_watcher(root)
    for name in IGNORED:
        write(root / name)
        write(root / "sub" / name)
    (root / "x.tmp").unlink()
    (root / "movie.part").rename(root / "movie.partial")
    request = sentinel(root, collector)
    assert request.paths == frozenset({root / "sentinel.md"})
    assert collector.requests == [request]
    assert watcher.pending() == 0


def test_hidden_and_tool_folders_are_ignored(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    # Nested folders made before the start: watchdog warns when `mkdir -p` races its walk.
    for folder in (".git/objects/ab", "a/node_modules/pkg", "a/__pycache__"):
        (root / folder).mkdir(parents=True)
    watcher = make_watcher(root)
    write(root / ".git" / "objects" / "ab" / "cdef")
    write(root / ".hidden" / "notes.md")
    write(root / "a" / "node_modules" / "pkg" / "README.md")
    write(root / "a" / "__pycache__" / "x.pyc")
    (root / ".hidden" / "notes.md").rename(root / ".hidden" / "renamed.md")
    (root / ".git" / "objects").rename(root / ".git" / "objects2")  # a hidden folder move
    request = sentinel(root, collector)
    assert request.paths == frozenset({root / "sentinel.md"})
    assert not request.full
    assert collector.requests == [request]
    assert watcher.pending() == 0


def test_moving_a_file_out_of_a_hidden_folder_reports_its_new_name(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    hidden = old_file(root / ".drafts" / "doc.md")
    make_watcher(root)
    hidden.rename(root / "doc.md")
    request = collector.wait_path(root / "doc.md")
    assert hidden not in request.paths


def test_a_directory_rename_asks_for_a_full_reconcile(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    old_file(root / "folder" / "doc.md")
    make_watcher(root)
    (root / "folder").rename(root / "renamed")
    _, request = collector.wait_for(lambda r: r.full)
    assert request.root == root


def test_a_directory_moved_out_asks_for_a_full_reconcile(
    root: Path, outside: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    old_file(root / "folder" / "doc.md")
    make_watcher(root)
    (root / "folder").rename(outside / "folder")
    _, request = collector.wait_for(lambda r: r.full)
    assert request.root == root


def test_a_directory_moved_in_reports_its_files(
    root: Path, outside: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    old_file(outside / "folder" / "a.md")
    old_file(outside / "folder" / "sub" / "b.md")
    make_watcher(root)
    (outside / "folder").rename(root / "folder")
    collector.wait_path(root / "folder" / "a.md")
    collector.wait_path(root / "folder" / "sub" / "b.md")


def test_periodic_full_rescan(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    make_watcher(root, full_rescan_s=0.2)
    first_at, first = collector.wait_for(lambda r: r.full)
    second_at, second = collector.wait_for(lambda r: r.full and r is not first)
    assert first == SyncRequest(root, frozenset(), full=True)
    assert second == first
    assert second_at > first_at


def test_no_periodic_rescan_before_its_time(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    make_watcher(root)  # default: every 15 minutes
    sentinel(root, collector)
    assert not any(r.full for r in collector.requests)


def test_stop_joins_every_thread_and_is_idempotent(root: Path, collector: Collector) -> None:
    before = set(threading.enumerate())
    watcher = FolderWatcher([root], collector, debounce_s=0.05, stable_s=0.1)
    with watcher:
        assert len(set(threading.enumerate()) - before) >= 2  # observer(s) and our worker
        collector.wait_path(write(root / "doc.md"))
    assert set(threading.enumerate()) == before
    watcher.stop()
    assert set(threading.enumerate()) == before
    # It can be started again after a stop.
    watcher.start()
    collector.wait_path(write(root / "again.md"))
    watcher.stop()
    assert set(threading.enumerate()) == before


def test_starting_twice_is_refused(root: Path, make_watcher: Callable[..., FolderWatcher]) -> None:
    watcher = make_watcher(root)
    with pytest.raises(RuntimeError):
        watcher.start()


def test_callback_exceptions_are_logged_and_do_not_kill_the_watcher(
    root: Path,
    make_watcher: Callable[..., FolderWatcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = Collector(fail_first=1)
    make_watcher(root, on_request=failing)
    first = write(root / "first.md")
    failing.wait_path(first)
    second = write(root / "second.md")
    failing.wait_path(second)
    assert "callback failure on purpose" in caplog.text


def test_callback_runs_on_the_watcher_thread(
    root: Path, make_watcher: Callable[..., FolderWatcher]
) -> None:
    threads: list[str] = []
    done = threading.Event()

    def on_request(request: SyncRequest) -> None:
        threads.append(threading.current_thread().name)
        done.set()

    make_watcher(root, on_request=on_request)
    write(root / "doc.md")
    assert done.wait(DEADLINE_S)
    assert threads == ["ftrag-folder-watcher"]


def test_add_and_remove_roots_while_running(
    root: Path, tmp_path: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    second = tmp_path / "second"
    second.mkdir()
    watcher = make_watcher(root)
    watcher.add_root(second)
    assert set(watcher.roots()) == {root, second}
    request = collector.wait_path(write(second / "doc.md"))
    assert request.root == second

    watcher.remove_root(second)
    assert watcher.roots() == [root]
    write(second / "ignored_now.md")
    sentinel(root, collector)
    assert not collector.with_path(second / "ignored_now.md")


def test_a_missing_root_is_a_user_error_and_leaves_no_threads(
    tmp_path: Path, collector: Collector
) -> None:
    watcher = FolderWatcher([tmp_path / "missing"], collector)
    with pytest.raises(ConfigError, match="cannot be watched"):
        watcher.start()
    watcher.stop()


def test_an_inotify_overflow_asks_every_root_for_a_full_reconcile(
    root: Path, tmp_path: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    second = tmp_path / "second"
    second.mkdir()
    make_watcher(root, second)
    # watchdog's only signal of lost events is this log line (see watch.py).
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost"
    )
    collector.wait_for(lambda r: r.full and r.root == root)
    collector.wait_for(lambda r: r.full and r.root == second)


def test_a_steady_stream_of_events_does_not_starve_other_files(
    root: Path, collector: Collector, make_watcher: Callable[..., FolderWatcher]
) -> None:
    # debounce 0.2 s, so the root is looked at every 2 s at the latest under constant events.
    watcher = make_watcher(root, debounce_s=0.2, stable_s=0.2)
    log_file = root / "app.log"
    doc = write(root / "doc.md")
    stop = threading.Event()

    def append_forever() -> None:
        with log_file.open("a", encoding="utf-8") as fh:
            while not stop.is_set():
                fh.write("line\n")
                fh.flush()
                stop.wait(0.05)

    writer = threading.Thread(target=append_forever)
    writer.start()
    try:
        collector.wait_path(doc, timeout=6.0)
        assert not collector.with_path(log_file)  # still being written: never stable
    finally:
        stop.set()
        writer.join()
    collector.wait_path(log_file)
    assert watcher.pending() == 0
