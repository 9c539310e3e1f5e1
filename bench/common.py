"""Shared helpers of the benchmarks: paths, the Ollama test server in its own process, BEIR
corpus files, process-tree memory sampling and percentiles.

The benchmarks run the real product pipeline; the only stand-in is the Ollama server, which is
the project's protocol test server (`tests/ollama_server.py`) run in a separate process so that
it never shares the GIL with the indexer being measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
PDF_DIR = SHARED_DATA / "pdfs"
SCIFACT_DIR = SHARED_DATA / "scifact"
PYTHON = sys.executable
SERVE_SCRIPT = REPO / "bench" / "serve_ollama.py"

if str(REPO) not in sys.path:  # so that `ftrag_desktop` and `tests` import from a checkout
    sys.path.insert(0, str(REPO))


def log(*parts: object) -> None:
    """Progress for people, on stderr: stdout is kept for the one JSON document."""
    print(*parts, file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    """The environment for child processes: the checkout importable, no stray Ollama host."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("OLLAMA_HOST", None)
    return env


def unused_url() -> str:
    """An address where nothing listens: the product then runs keyword-only, as without Ollama."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class ServerProcess:
    """`bench/serve_ollama.py` running in a child process (see `ollama_process`)."""

    def __init__(self, embed_backend: str, port: int, timeout_s: float) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, str(SERVE_SCRIPT), "--port", str(port), "--embed-backend", embed_backend],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, name="serve-stdout", daemon=True).start()
        try:
            line = self._lines.get(timeout=timeout_s).strip()
        except queue.Empty:
            line = ""
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(
                f"the Ollama test server did not start (exit code {self.proc.poll()}, "
                f"said {line!r})"
            )
        self.url = line

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def embed_count(self, timeout_s: float = 10.0) -> int:
        """How many texts the server has embedded since it started."""
        self.proc.send_signal(signal.SIGUSR1)
        while True:
            line = self._lines.get(timeout=timeout_s).split()
            if line[:1] == ["embed_count"]:
                return int(line[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def ollama_process(
    embed_backend: str, *, port: int = 0, timeout_s: float = 120.0
) -> Iterator[ServerProcess]:
    """Run `bench/serve_ollama.py` in a child process; yield it (`.url`); stop it afterwards."""
    server = ServerProcess(embed_backend, port, timeout_s)
    try:
        yield server
    finally:
        server.stop()


# ---- BEIR corpora ---------------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def doc_text(doc: dict[str, Any]) -> str:
    """How a BEIR document becomes a file: its title, a blank line, its text."""
    return f"{doc.get('title') or ''}\n\n{doc.get('text') or ''}"


def write_beir_files(corpus: Path, out_dir: Path, *, limit: int | None = None) -> int:
    """Write each document of `corpus` to `out_dir/<_id>.txt`; returns the number of documents.

    A file that already holds the same text is left alone (its mtime too), so that a reused
    index sees nothing changed and the resync costs only stats.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for doc in read_jsonl(corpus):
        if limit is not None and count >= limit:
            break
        data = doc_text(doc).encode("utf-8")
        path = out_dir / f"{doc['_id']}.txt"
        try:
            same = path.stat().st_size == len(data) and path.read_bytes() == data
        except FileNotFoundError:
            same = False
        if not same:
            path.write_bytes(data)
        count += 1
    return count


# ---- memory of a process tree ---------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    children = _children_map()
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


@dataclass
class TreeMemory:
    """Peak memory of one process and its descendants, sampled from /proc while it runs.

    `peak_tree_mb` is the largest sampled sum of resident memory over the whole tree (what the
    machine had to hold at once); `peak_main_mb` is the kernel's exact high-water mark (VmHWM)
    of the top process; `peak_child_mb` the largest VmHWM of any descendant.
    """

    pid: int
    interval_s: float = 0.05
    peak_tree_kb: int = 0
    hwm_kb: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeMemory:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def sample(self) -> None:
        total = 0
        for p in process_tree(self.pid):
            total += _status_kb(p, "VmRSS:")
            hwm = _status_kb(p, "VmHWM:")
            if hwm:
                self.hwm_kb[p] = max(self.hwm_kb.get(p, 0), hwm)
        self.peak_tree_kb = max(self.peak_tree_kb, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def figures(self) -> dict[str, float]:
        children = [kb for p, kb in self.hwm_kb.items() if p != self.pid]
        return {
            "peak_rss_tree_mb": round(self.peak_tree_kb / 1024, 1),
            "peak_rss_main_mb": round(self.hwm_kb.get(self.pid, 0) / 1024, 1),
            "peak_rss_worker_mb": round(max(children, default=0) / 1024, 1),
        }


def run_measured(
    cmd: list[str], *, timeout_s: float = 3600.0
) -> tuple[subprocess.CompletedProcess[str], float, dict[str, float]]:
    """Run `cmd`, sampling its process tree's memory; returns (result, wall seconds, memory)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env()
    )
    mem = TreeMemory(proc.pid).start()
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        mem.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.monotonic() - start
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    return result, wall, mem.figures()


# ---- statistics -----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def replace_section(text: str, name: str, body: str) -> str:
    """Put `body` between `<!-- name:start -->` and `<!-- name:end -->` (appended if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _m: block, text, count=1)
    return text.rstrip() + "\n\n" + block + "\n"


def update_results_section(name: str, body: str, path: Path = RESULTS) -> None:
    """Rewrite one section of RESULTS.md, keeping every other section as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    path.write_text(replace_section(text, name, body).rstrip() + "\n", encoding="utf-8")
