"""The guarded parse pool: results, timeouts, crashes, memory limits, threads, orphans."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ftrag_desktop.core.parse import parse_file
from ftrag_desktop.core.parse.pool import (
    HOOK_ENV,
    HOOK_MARKER_SUFFIX,
    ParseOutcome,
    ParsePool,
    PoolClosed,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def hooked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers started from now on obey the test hook file names."""
    monkeypatch.setenv(HOOK_ENV, "1")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {
        "good": tmp_path / "good.md",
        "empty": tmp_path / "empty.txt",
        "hang": tmp_path / "ftrag-hook-hang.txt",
        "crash": tmp_path / "ftrag-hook-crash.txt",
        "memory": tmp_path / "ftrag-hook-memory.txt",
    }
    out["good"].write_text("# Title\n\nSome text worth indexing.\n", encoding="utf-8")
    out["empty"].write_bytes(b"")
    for name in ("hang", "crash", "memory"):
        out[name].write_text("hook target\n", encoding="utf-8")
    for n in range(6):
        out[f"text{n}"] = tmp_path / f"text{n}.txt"
        out[f"text{n}"].write_text(f"document number {n}\n", encoding="utf-8")
    return out


def workers_alive() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name == "ftrag-parse-worker"]


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's corpse may wait for a lax init to reap it)."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until_dead(pid: int, deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not is_running(pid):
            return True
        time.sleep(0.05)  # polling another process's state: there is nothing to wait on
    return False


def test_results_and_failures_cross_the_process_boundary(files: dict[str, Path]) -> None:
    with ParsePool(workers=1) as pool:
        good = pool.parse(files["good"])
        empty = pool.parse(files["empty"])
    assert good.error == "" and good.path == str(files["good"])
    assert good.document == parse_file(files["good"])
    assert good.seconds > 0
    assert empty.document is None
    assert empty.error == "empty file"
    assert empty.hint  # the hint travels too
    assert not workers_alive()  # closed: no process left behind


def test_timeout_kills_worker_and_map_yields_in_completion_order(
    hooked: None, files: dict[str, Path]
) -> None:
    with ParsePool(workers=2, timeout_s=2.0) as pool:
        paths = [files["hang"], *(files[f"text{n}"] for n in range(6))]
        outcomes = list(pool.map(paths))
        # The hung worker was replaced: the pool keeps working at full width.
        again = pool.parse(files["good"])
        assert len(workers_alive()) <= 2
    assert len(outcomes) == 7
    assert {o.path for o in outcomes} == {str(p) for p in paths}
    assert outcomes[-1].path == str(files["hang"])  # the slow one finished last
    assert outcomes[-1].document is None
    assert outcomes[-1].error == "parsing took longer than 2 s (limit parse_timeout_s)"
    assert outcomes[-1].seconds >= 2.0
    assert all(o.document is not None for o in outcomes[:-1])
    assert again.document is not None


def test_crash_is_reported_and_worker_replaced(hooked: None, files: dict[str, Path]) -> None:
    with ParsePool(workers=1) as pool:
        before = pool.parse(files["good"])
        crashed = pool.parse(files["crash"])
        after = pool.parse(files["good"])
    assert before.document is not None and after.document is not None
    assert crashed.document is None
    if hasattr(signal, "SIGABRT") and os.name == "posix":
        assert crashed.error == f"the parser crashed (signal {int(signal.SIGABRT)})"
    assert crashed.error.startswith("the parser crashed")


def test_memory_limit(hooked: None, files: dict[str, Path]) -> None:
    with ParsePool(workers=1, memory_mb=768) as pool:
        assert pool.parse(files["good"]).document is not None
        (worker,) = workers_alive()
        limits = Path(f"/proc/{worker.pid}/limits").read_text()
        address_space = next(line for line in limits.splitlines() if "address space" in line)
        limit = int(address_space.split()[3])  # the soft limit, in bytes
        peak_kb = next(
            int(line.split()[1])
            for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines()
            if line.startswith("VmPeak:")
        )
        # The cap is the worker's start-up footprint plus 768 MB of headroom for parsing.
        assert 768 * 1024 * 1024 < limit <= peak_kb * 1024 + 768 * 1024 * 1024
        hog = pool.parse(files["memory"])
        after = pool.parse(files["good"])
    assert hog.document is None
    assert hog.error == "needs more than 768 MB of memory to parse (limit parse_memory_mb)"
    assert after.document is not None


def test_threads_share_the_pool_without_exceeding_it(files: dict[str, Path]) -> None:
    results: list[ParseOutcome] = []
    lock = threading.Lock()
    peak = 0

    def work(path: Path) -> None:
        nonlocal peak
        outcome = pool.parse(path)
        with lock:
            results.append(outcome)
            peak = max(peak, len(workers_alive()))

    with ParsePool(workers=2) as pool:
        threads = [threading.Thread(target=work, args=(files[f"text{n}"],)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(o.path for o in results) == sorted(str(files[f"text{n}"]) for n in range(6))
    assert all(o.document is not None for o in results)
    for o in results:
        n = Path(o.path).stem.removeprefix("text")
        assert o.document is not None and f"document number {n}" in o.document.blocks[0].text
    assert 1 <= peak <= 2


def test_close_is_idempotent_and_cancels_work_in_flight(
    hooked: None, files: dict[str, Path]
) -> None:
    pool = ParsePool(workers=1, timeout_s=60)
    box: list[ParseOutcome] = []
    thread = threading.Thread(target=lambda: box.append(pool.parse(files["hang"])))
    thread.start()
    deadline = time.monotonic() + 30
    while not workers_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    pool.close()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 10  # not the 60 s timeout
    assert box and box[0].document is None and "cancelled" in box[0].error
    pool.close()
    with pytest.raises(PoolClosed):
        pool.parse(files["good"])
    assert not workers_alive()


ORPHAN_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, sys, threading
    from pathlib import Path
    from ftrag_desktop.core.parse.pool import ParsePool

    if __name__ == "__main__":
        pool = ParsePool(workers=2, timeout_s=600)
        # One worker stuck in a parse, the other idle.
        threading.Thread(target=pool.parse, args=(Path(sys.argv[2]),), daemon=True).start()
        while len(multiprocessing.active_children()) < 1:
            threading.Event().wait(0.05)
        assert pool.parse(Path(sys.argv[1])).document is not None
        print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
        threading.Event().wait()
    """
)


def test_workers_exit_when_the_parent_is_killed(
    hooked: None, files: dict[str, Path], tmp_path: Path
) -> None:
    script = tmp_path / "parent.py"
    script.write_text(ORPHAN_SCRIPT, encoding="utf-8")
    parent = subprocess.Popen(
        [sys.executable, str(script), str(files["good"]), str(files["hang"])],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    )
    try:
        assert parent.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(parent.stdout.readline()))
        reader.start()
        reader.join(60)
        line = lines[0] if lines else ""
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2, line  # one idle worker, one stuck in a parse
    finally:
        parent.kill()  # SIGKILL: no cleanup code runs in the parent
        parent.wait(10)
    for pid in pids:
        assert wait_until_dead(pid, 15), f"worker {pid} outlived its parent"


def test_map_can_be_abandoned(files: dict[str, Path]) -> None:
    with ParsePool(workers=2) as pool:
        stream = pool.map(files[f"text{n}"] for n in range(6))
        first = next(stream)
        stream.close()
        assert first.document is not None
        assert pool.parse(files["good"]).document is not None


def test_limits_reach_the_workers_and_name_themselves(tmp_path: Path) -> None:
    wordy = tmp_path / "wordy.txt"
    wordy.write_text("word " * 400, encoding="utf-8")
    with ParsePool(workers=1, max_bytes=1500, max_chars=1000, max_pages=1) as pool:
        too_big = pool.parse(wordy)
        (tmp_path / "small.txt").write_text("word " * 250, encoding="utf-8")
        too_long = pool.parse(tmp_path / "small.txt")
    assert too_big.error == "file too large (2 KB; limit 1 KB, parse_max_bytes)"
    assert too_big.hint == "Raise parse_max_bytes in the settings to index it."
    assert too_long.error == "too much text (1,250 characters; limit 1,000, parse_max_chars)"
    assert "parse_max_chars" in too_long.hint


def test_memory_is_one_budget_shared_by_the_workers() -> None:
    pool = ParsePool(workers=2, memory_mb=1024)
    assert (pool.workers, pool.worker_memory_mb) == (2, 512)
    # Fewer workers rather than shares below the minimum: the budget is never exceeded.
    pool = ParsePool(workers=4, memory_mb=600)
    assert (pool.workers, pool.worker_memory_mb) == (2, 300)
    pool = ParsePool(workers=4, memory_mb=128)
    assert (pool.workers, pool.worker_memory_mb) == (1, 128)
    for pool in (ParsePool(workers=w, memory_mb=m) for w in (1, 3, 8) for m in (64, 700, 4096)):
        assert pool.workers * pool.worker_memory_mb <= pool.memory_mb


@contextlib.contextmanager
def _markers_released(folder: Path) -> Iterator[set[str]]:
    """Let every hooked worker read its file at once; the set names the files started."""
    seen: set[str] = set()
    stop = threading.Event()

    def release() -> None:
        while not stop.is_set():
            for marker in folder.glob(f"*{HOOK_MARKER_SUFFIX}"):
                seen.add(marker.name.removesuffix(HOOK_MARKER_SUFFIX))
                marker.unlink(missing_ok=True)
            time.sleep(0.01)

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        yield seen
    finally:
        stop.set()
        releaser.join(10)


def _wait_for(predicate: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _hooked_files(folder: Path, text: str) -> list[str]:
    names = [f"ftrag-hook-wait-{n:02}.txt" for n in range(12)]
    for name in names:
        (folder / name).write_text(text, encoding="utf-8")
    return names


def test_map_parses_ahead_while_the_caller_is_busy(hooked: None, tmp_path: Path) -> None:
    """Holding the first outcome (as the indexer does while it embeds and writes a batch),
    the workers go on to parse the rest of the files, and every outcome then arrives."""
    names = _hooked_files(tmp_path, "some words")
    with _markers_released(tmp_path) as seen, ParsePool(workers=2) as pool:
        stream = pool.map(tmp_path / name for name in names)
        first = next(stream)
        # Before read-ahead, at most the four files in flight were started here.
        assert _wait_for(lambda: len(seen) == len(names)), sorted(seen)
        rest = list(stream)
    outcomes = [first, *rest]
    assert sorted(Path(o.path).name for o in outcomes) == names
    assert all(o.document is not None for o in outcomes), [o.error for o in outcomes]


@pytest.mark.parametrize("bound", [{"ahead_files": 1}, {"ahead_chars": 1}], ids=str)
def test_map_reads_ahead_only_within_its_bound(
    bound: dict[str, int], hooked: None, tmp_path: Path
) -> None:
    """With room for one outcome, or for no text at all, only the files already in flight
    are parsed ahead; the rest start as the caller takes outcomes."""
    names = _hooked_files(tmp_path, "some words " * 20)
    with _markers_released(tmp_path) as seen, ParsePool(workers=2) as pool:
        stream = pool.map((tmp_path / name for name in names), **bound)
        next(stream)
        # One outcome taken, at most one waiting, and those already in flight (two per
        # worker): then no new file starts until the caller takes another.
        assert _wait_for(lambda: len(seen) >= 4)
        time.sleep(1.0)
        started_while_held = len(seen)
        rest = list(stream)
    assert 4 <= started_while_held <= 5 < len(names), sorted(seen)
    assert len(rest) == len(names) - 1 and all(o.document is not None for o in rest)


def test_workers_chunk_when_asked_exactly_as_the_chunker_does(tmp_path: Path) -> None:
    from ftrag_desktop.core.chunk import chunk_document

    files = []
    for n in range(3):
        path = tmp_path / f"doc{n}.md"
        body = "\n\n".join(f"Sentence {i} of part {n}. " * 12 for i in range(6))
        path.write_text(f"# Doc {n}\n\n{body}\n", encoding="utf-8")
        files.append(path)
    with ParsePool(workers=2) as pool:
        chunked = {o.path: o for o in pool.map(files, chunking=(300, 50))}
        plain = pool.parse(files[0])
    assert plain.chunks is None and plain.document is not None
    for path in files:
        outcome = chunked[str(path)]
        assert outcome.document is not None and outcome.chunks is not None
        expected = chunk_document(parse_file(path), chunk_size=300, overlap=50)
        assert list(outcome.chunks) == expected and len(expected) > 3
