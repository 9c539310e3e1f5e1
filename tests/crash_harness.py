"""Kill-and-restart campaigns against the real `ftrag index`, and comparisons with a clean build.

Restarting the indexer dozens of times would mostly measure Python importing LanceDB and the
Ollama client (1 to 4 s per start on this machine, under load).  `Zygote` is a Python process
that imports those once and then *forks* each `ftrag` run: every run is still a process of its
own (its own LanceDB connection, writer lock and parse workers), started by the real CLI entry
point and SIGKILLed by the test; it only starts warm.  Forking is safe: the only threads the
zygote has are lancedb's, and lancedb supports fork (an `os.register_at_fork` hook restarts its
event-loop thread in the child, a `pthread_atfork` hook in its extension resets its Rust
runtime); the zygote never opens a database, so nothing is mid-operation when it forks.  One
zygote can serve several campaigns (tests/test_crash.py shares one across its tests).

`kill_campaign` runs the sequence kill -> restart -> kill ... (each run resuming what the last
left), then one run to completion.  `snapshot` reads an index back as plain data that two
builds of the same folder must agree on.  tests/test_crash.py, tests/test_growth.py and
bench/reliability.py use these.

Run as ``python -m tests.crash_harness`` it is the zygote: JSON requests on stdin, one per line
(``{"op": "run", "argv": [...], "env": {...}, "log": path}`` -> ``{"pid": n}``; ``{"op": "wait",
"pid": n}`` -> ``{"code": c, "signal": s}``; ``{"op": "poll", "pid": n}`` -> the same, or
``{"running": true}``), replies on stdout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESUME_GRACE_S = 30.0
PARSE_TIMEOUT_S = 900.0  # crash campaigns compare two builds: no load-dependent time-outs
PAUSE_LINE = "ftrag-test-pause"
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "river",
    "stone",
    "copper",
    "ledger",
    "orbit",
    "violet",
    "maple",
    "signal",
    "harbor",
    "lantern",
    "meadow",
    "quartz",
    "saddle",
    "timber",
    "velvet",
    "walnut",
]


# ---- the zygote (the process side) ----------------------------------------------------------


def _preload() -> None:
    """Everything a run imports: the app, lancedb (as the app imports it), the Ollama client."""
    import asyncio  # noqa: F401
    import warnings

    import numpy  # noqa: F401
    import pyarrow.compute
    import pyarrow.dataset  # noqa: F401

    import ftrag_desktop.cli
    import ftrag_desktop.core.engine
    import ftrag_desktop.core.parse.pool  # noqa: F401
    from ftrag_desktop.core.store_lance import import_lancedb

    assert threading.active_count() == 1, "the app started a thread at import"
    import_lancedb()
    import ollama  # noqa: F401

    # lancedb warns in each forked child that its fork support is new; the zygote forks before
    # any database is opened, the case that support is made for.
    warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
    extra = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    assert all(n.startswith("LanceDB") for n in extra), f"threads that fork would lose: {extra}"


def _child(argv: list[str], env: dict[str, str], log: str) -> None:
    """In the forked child: run `ftrag argv` with stdout and stderr in `log`; never returns."""
    code = 70
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.environ.update(env)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from ftrag_desktop.cli import main

        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 71
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _status(status: int) -> dict[str, int | None]:
    if os.WIFSIGNALED(status):
        return {"code": None, "signal": os.WTERMSIG(status)}
    return {"code": os.WEXITSTATUS(status), "signal": None}


def zygote_main() -> None:
    _preload()
    reply = sys.stdout
    print(json.dumps({"ready": True}), file=reply, flush=True)
    children: set[int] = set()
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "run":
            reply.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(req["argv"], req.get("env") or {}, req["log"])
            children.add(pid)
            out: dict[str, Any] = {"pid": pid}
        elif op in ("wait", "poll"):
            pid = int(req["pid"])
            done, status = os.waitpid(pid, 0 if op == "wait" else os.WNOHANG)
            if done == 0:
                out = {"running": True}
            else:
                children.discard(pid)
                out = _status(status)
        else:
            break
        print(json.dumps(out), file=reply, flush=True)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass


# ---- the zygote (the test side) -------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("OLLAMA_HOST", None)
    for name in ("FTRAG_TEST_PAUSE_AT", "FTRAG_TEST_PAUSE_S"):
        env.pop(name, None)
    return env


@dataclass(frozen=True)
class Exit:
    """How a run ended: an exit code, or the signal that killed it."""

    code: int | None
    signal: int | None

    @property
    def killed(self) -> bool:
        return self.signal == signal.SIGKILL


class Zygote:
    """The test's handle on a zygote process (see the module docstring)."""

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_harness"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=child_env(),
        )
        self._replies: queue.Queue[str] = queue.Queue()
        self._ended: dict[int, Exit] = {}  # runs already reaped, by pid
        threading.Thread(target=self._read, name="zygote-replies", daemon=True).start()
        ready = self._reply(timeout_s)
        if not ready.get("ready"):
            raise RuntimeError(f"the zygote did not start: {ready}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put("")

    def _reply(self, timeout_s: float) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            # When every process on the machine is stopped for a while (a paused VM or
            # session), a timed wait ends at once on resuming; the zygote then answers at once.
            try:
                line = self._replies.get(timeout=RESUME_GRACE_S)
            except queue.Empty:
                raise TimeoutError(
                    f"the zygote did not answer in {timeout_s:.0f} s (alive: "
                    f"{self.proc.poll() is None})"
                ) from None
        if not line:
            raise RuntimeError(f"the zygote died (exit code {self.proc.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _ask(self, req: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._reply(timeout_s)

    def run(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
        return int(self._ask({"op": "run", "argv": argv, "env": env or {}, "log": str(log)})["pid"])

    def poll(self, pid: int) -> Exit | None:
        if pid in self._ended:
            return self._ended[pid]
        r = self._ask({"op": "poll", "pid": pid})
        if r.get("running"):
            return None
        self._ended[pid] = Exit(r["code"], r["signal"])
        return self._ended[pid]

    def wait(self, pid: int, timeout_s: float = 600.0) -> Exit:
        deadline = time.monotonic() + timeout_s
        while True:
            ended = self.poll(pid)
            if ended is not None:
                return ended
            if time.monotonic() > deadline:
                self.kill(pid)
                raise TimeoutError(f"run {pid} did not finish in {timeout_s:.0f} s")
            time.sleep(0.05)

    def kill(self, pid: int) -> Exit:
        """SIGKILL the run (it may have ended already: the result says which)."""
        if pid in self._ended:  # reaped by a poll: it ended on its own
            return self._ended[pid]
        os.kill(pid, signal.SIGKILL)  # a zombie until reaped, so the pid cannot be reused
        r = self._ask({"op": "wait", "pid": pid})
        self._ended[pid] = Exit(r["code"], r["signal"])
        return self._ended[pid]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def warm(zygote: Zygote | None) -> Iterator[Zygote]:
    """`zygote` if given (it stays open), else a new one for the block."""
    if zygote is not None:
        yield zygote
        return
    with Zygote() as own:
        yield own


def cli_args(home: Path, url: str, *args: str) -> list[str]:
    return ["--home", str(home), "--ollama-host", url, *args]


def wait_for_line(log: Path, text: str, zygote: Zygote, pid: int, timeout_s: float) -> bool:
    """Wait until `log` holds a line containing `text`; False if the run ended first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if text in "\n" + log.read_text(encoding="utf-8", errors="replace"):
                return True
        except FileNotFoundError:
            pass
        if zygote.poll(pid) is not None:
            return False
        time.sleep(0.02)
    raise TimeoutError(f"no {text!r} in {log} after {timeout_s:.0f} s")


# ---- corpora --------------------------------------------------------------------------------


def note_text(rng: random.Random, title: str, paragraphs: tuple[int, int] = (2, 4)) -> str:
    paras = [
        " ".join(rng.choices(WORDS, k=rng.randint(40, 160)))
        for _ in range(rng.randint(*paragraphs))
    ]
    return f"{title}.\n\n" + "\n\n".join(paras) + "\n"


def make_corpus(
    root: Path,
    n_text: int,
    *,
    pdf_dir: Path | None = None,
    seed: int = 7,
    paragraphs: tuple[int, int] = (2, 4),
) -> None:
    """`n_text` generated notes in ten sub-folders, plus a copy of every PDF under `pdf_dir`,
    spread over the same sub-folders (so that the indexer meets PDFs all along the way)."""
    rng = random.Random(seed)
    for i in range(n_text):
        sub = root / f"group{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        text = note_text(rng, f"Note {i}", paragraphs)
        (sub / f"note{i:04d}.txt").write_text(text, encoding="utf-8")
    if pdf_dir is not None:
        for i, pdf in enumerate(sorted(pdf_dir.rglob("*.pdf"))):
            dest = root / f"group{i % 10}" / f"pdf{i:03d}-{pdf.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pdf, dest)


class FolderChurn:
    """Deletes, edits, adds and renames text files between kills, reproducibly."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.done: Counter[str] = Counter()
        self._added = 0

    def _notes(self) -> list[Path]:
        return sorted(self.root.rglob("*.txt"))

    def step(self, *, deletes: int = 1, edits: int = 2, adds: int = 1, renames: int = 0) -> None:
        for _ in range(deletes):
            self.rng.choice(self._notes()).unlink()
            self.done["deleted"] += 1
        for _ in range(edits):
            path = self.rng.choice(self._notes())
            path.write_text(note_text(self.rng, f"Edited {path.stem}"), encoding="utf-8")
            self.done["edited"] += 1
        for _ in range(adds):
            self._added += 1
            path = self.root / "added" / f"new{self._added:03d}.txt"
            path.parent.mkdir(exist_ok=True)
            path.write_text(note_text(self.rng, f"Added {self._added}"), encoding="utf-8")
            self.done["added"] += 1
        for _ in range(renames):
            path = self.rng.choice(self._notes())
            path.rename(path.with_name(f"renamed-{path.name}"))
            self.done["renamed"] += 1


# ---- the campaign ---------------------------------------------------------------------------


@dataclass
class Campaign:
    """What a kill campaign did."""

    kills: int = 0
    mid_run: int = 0  # the run was still going when SIGKILL arrived
    at_pause: dict[str, int] = field(default_factory=dict)  # kills inside a named window
    runs: int = 0
    seconds: float = 0.0
    final_seconds: float = 0.0
    outcomes: list[str] = field(default_factory=list)  # one word per kill, for the report


def kill_campaign(
    zygote: Zygote,
    argv: list[str],
    logs: Path,
    *,
    kills: int,
    rng: random.Random,
    window_s: tuple[float, float] = (0.2, 2.5),
    after_s: tuple[float, float] = (0.0, 0.8),
    mark_delay_s: tuple[float, float] = (0.0, 0.3),
    pause_at: Callable[[int], str | None] = lambda _i: None,
    between: Callable[[int], None] = lambda _i: None,
    final: bool = True,
) -> Campaign:
    """Start `ftrag argv`, SIGKILL it, start it again ... `kills` times, then run it to the end.

    Before kill i, `between(i)` may change the folder.  `pause_at(i)` says when run i dies:

    - None: at a random moment `window_s` after it started (start-up included);
    - ``"progress"``: a random `after_s` after it reports its first indexed file, so that each
      run gets somewhere and the next resumes from there;
    - a pause point (``FTRAG_TEST_PAUSE_AT`` syntax, e.g. ``commit:2``): as soon as it reports
      reaching the point, where the indexer sleeps;
    - the same with a ``~`` prefix (``~compaction``): the point is only marked, and the run dies
      a random `mark_delay_s` after reaching it, inside the work that follows.
    """
    logs.mkdir(parents=True, exist_ok=True)
    result = Campaign()
    t0 = time.monotonic()
    for i in range(kills):
        between(i)
        point = pause_at(i)
        env: dict[str, str] = {}
        progress = point == "progress"
        if progress:
            point = None
        if point:
            marks_only = point.startswith("~")
            env = {"FTRAG_TEST_PAUSE_AT": point.lstrip("~")}
            if marks_only:
                env["FTRAG_TEST_PAUSE_S"] = "0"
        log = logs / f"run{i:03d}.log"
        pid = zygote.run(argv, log, env)
        result.runs += 1
        reached = False
        if point:
            name = point.lstrip("~").partition(":")[0]
            reached = wait_for_line(log, f"{PAUSE_LINE} {name}", zygote, pid, 300)
            if point.startswith("~") and reached:
                time.sleep(rng.uniform(*mark_delay_s))
        elif progress:
            if wait_for_line(log, "\nindexed ", zygote, pid, 300):
                time.sleep(rng.uniform(*after_s))
        else:
            time.sleep(rng.uniform(*window_s))
        ended = zygote.kill(pid)
        result.kills += 1
        if ended.killed:
            result.mid_run += 1
            if reached:
                key = point.lstrip("~").partition(":")[0] if point else ""
                result.at_pause[key] = result.at_pause.get(key, 0) + 1
            result.outcomes.append(f"killed{'@' + point if reached and point else ''}")
        else:
            if ended.code not in (0, None):
                raise AssertionError(f"run {i} failed on its own (exit {ended.code}): {log}")
            result.outcomes.append("finished")
    result.seconds = time.monotonic() - t0
    if final:
        t1 = time.monotonic()
        log = logs / "final.log"
        pid = zygote.run(argv, log)
        result.runs += 1
        ended = zygote.wait(pid)
        result.final_seconds = time.monotonic() - t1
        if ended.code != 0:
            raise AssertionError(f"the final run failed ({ended}): {log.read_text()[-3000:]}")
    return result


# ---- comparing indexes ----------------------------------------------------------------------


@dataclass
class Snapshot:
    """An index read back as plain data: what two builds of one folder must agree on."""

    docs: dict[str, tuple[str, int, str]]  # relative path -> (status, chunks, error)
    texts: dict[str, list[str]]  # relative path -> sha256 of each chunk text, by ordinal
    chunk_rows: int
    duplicate_ids: int
    duplicate_ordinals: int
    orphan_chunks: int  # chunks of no document, or of a path not on disk
    path_mismatches: int  # chunk path differs from its document's
    missing_vectors: int
    health: list[str]
    tables: list[str]
    embed_model: str
    building: tuple[str, int] | None
    notice: bool  # a damaged-index notice is waiting
    set_aside: bool  # a damaged index was moved aside
    index_bytes: int

    def pending(self) -> list[str]:
        return [p for p, (status, _c, _e) in self.docs.items() if status == "pending"]


def snapshot(home: Path, root: Path) -> Snapshot:
    """Read the index under `home` (nothing writes it meanwhile); paths relative to `root`."""
    from ftrag_desktop.core.store import Store, _dir_bytes

    index = home / "index"
    store = Store(index, read_only=True)
    try:
        docs = store.documents()
        by_id = {d.doc_id: d for d in docs}
        name, model, _dim = store._active()
        tbl = store._open(name)
        cols = ["id", "doc_id", "ordinal", "path", "text"]
        if model:
            cols.append("vector")
        rows = tbl.search().select(cols).limit(None).to_list()
        texts: dict[str, list[tuple[int, str]]] = {}
        orphans = mismatches = missing = 0
        for r in rows:
            doc = by_id.get(r["doc_id"])
            if doc is None or not Path(r["path"]).exists():
                orphans += 1
                continue
            if r["path"] != doc.path:
                mismatches += 1
            if model and r["vector"] is None:
                missing += 1
            rel = Path(doc.path).relative_to(root).as_posix()
            digest = hashlib.sha256(r["text"].encode("utf-8")).hexdigest()
            texts.setdefault(rel, []).append((r["ordinal"], digest))
        ids = Counter(r["id"] for r in rows)
        ordinals = Counter((r["doc_id"], r["ordinal"]) for r in rows)
        return Snapshot(
            docs={
                Path(d.path).relative_to(root).as_posix(): (d.status.value, d.chunks, d.error)
                for d in docs
            },
            texts={rel: [h for _o, h in sorted(v)] for rel, v in texts.items()},
            chunk_rows=len(rows),
            duplicate_ids=sum(n - 1 for n in ids.values()),
            duplicate_ordinals=sum(n - 1 for n in ordinals.values()),
            orphan_chunks=orphans,
            path_mismatches=mismatches,
            missing_vectors=missing,
            health=store.check_health(),
            tables=sorted(p.name for p in index.glob("*.lance")),
            embed_model=model,
            building=store.building_model(),
            notice=(index / "rebuild-notice.json").exists(),
            set_aside=(home / "damaged-index").exists(),
            index_bytes=_dir_bytes(index),
        )
    finally:
        store.close()


def differences(got: Snapshot, clean: Snapshot) -> list[str]:
    """Every way `got` falls short of the clean build `clean` ([] when it matches)."""
    out: list[str] = []
    if got.docs != clean.docs:
        keys = sorted(set(got.docs) | set(clean.docs))
        bad = [
            (k, got.docs.get(k), clean.docs.get(k))
            for k in keys
            if got.docs.get(k) != clean.docs.get(k)
        ]
        out.append(f"{len(bad)} documents differ, e.g. {bad[:3]}")
    if got.texts != clean.texts:
        bad_t = [
            k
            for k in sorted(set(got.texts) | set(clean.texts))
            if got.texts.get(k) != clean.texts.get(k)
        ]
        out.append(f"chunk texts differ for {len(bad_t)} documents, e.g. {bad_t[:3]}")
    if got.chunk_rows != clean.chunk_rows:
        out.append(f"{got.chunk_rows} chunk rows, the clean build has {clean.chunk_rows}")
    for name in (
        "duplicate_ids",
        "duplicate_ordinals",
        "orphan_chunks",
        "path_mismatches",
        "missing_vectors",
    ):
        if getattr(got, name):
            out.append(f"{name}: {getattr(got, name)}")
    if got.pending():
        out.append(f"{len(got.pending())} documents still pending")
    if got.health:
        out.append(f"check_health: {got.health[:3]}")
    if got.building is not None:
        out.append(f"a model switch is still running: {got.building}")
    if got.embed_model != clean.embed_model:
        out.append(f"embedding model {got.embed_model!r}, clean {clean.embed_model!r}")
    if len(got.tables) != len(clean.tables):
        out.append(f"tables {got.tables}, clean {clean.tables}")
    if got.notice:
        out.append("a damaged-index notice is still waiting")
    if got.set_aside:
        out.append("the index was moved aside as damaged")
    return out


# ---- the scenarios (shared by tests/test_crash.py and bench/reliability.py) ----------------


def _settings(home: Path, url: str, **values: Any) -> None:
    from ftrag_desktop.config import Settings, save_settings
    from ftrag_desktop.paths import Home

    save_settings(Home(home).settings_file, Settings(ollama_host=url, **values))


def index_once(zygote: Zygote, home: Path, url: str, folder: Path, log: Path) -> int:
    """`ftrag index folder` to the end; its pid (the run must succeed)."""
    pid = zygote.run(cli_args(home, url, "index", str(folder), "-q"), log)
    ended = zygote.wait(pid)
    if ended.code != 0:
        raise AssertionError(f"ftrag index failed ({ended}): {log.read_text()[-3000:]}")
    return pid


@dataclass
class Outcome:
    """A scenario's campaigns, its index after the last run, and the clean build of the same
    folder it must equal."""

    campaigns: list[Campaign]
    got: Snapshot
    clean: Snapshot
    on_disk: set[str]  # the folder's files at the end, relative
    churn: dict[str, int]
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def kills(self) -> int:
        return sum(c.kills for c in self.campaigns)

    @property
    def mid_run(self) -> int:
        return sum(c.mid_run for c in self.campaigns)

    def at_pause(self, point: str) -> int:
        return sum(c.at_pause.get(point, 0) for c in self.campaigns)


def _when_to_kill(i: int) -> str | None:
    """Every fifth run dies inside a batch commit (its chunks written, its manifest rows not),
    every sixth at a random moment from its start (start-up and repair included), the others
    at a random moment once they have indexed something."""
    if i % 5 == 4:
        return f"commit:{1 + i % 3}"
    return None if i % 6 == 0 else "progress"


def indexing_campaign(
    work: Path,
    url: str,
    *,
    text_files: int,
    kills: int,
    pdf_dir: Path | None,
    seed: int = 11,
    zygote: Zygote | None = None,
) -> Outcome:
    """`kills` SIGKILLs while `ftrag index` indexes `text_files` notes plus the PDFs, with files
    deleted, edited, added and renamed between kills; then a run to the end.

    The clean build runs meanwhile, from a copy of the folder to which the same changes were
    made up front (`FolderChurn` is deterministic), so that it costs no extra wall time.
    """
    corpus, clean_corpus = work / "corpus", work / "clean-corpus"
    make_corpus(corpus, text_files, pdf_dir=pdf_dir)
    shutil.copytree(corpus, clean_corpus)
    home, clean_home = work / "crashy", work / "clean"
    # The parse time limit (60 s) is a limit on the machine's speed: a large PDF that a loaded
    # machine parses in 70 s in one build and 50 s in the other would differ for no crash.
    for h in (home, clean_home):
        _settings(h, url, parse_timeout_s=PARSE_TIMEOUT_S)
    churn, clean_churn = FolderChurn(corpus, seed), FolderChurn(clean_corpus, seed)

    def between(i: int, churn: FolderChurn = churn) -> None:
        if i % 4 == 3:
            churn.step(deletes=1, edits=2, adds=1, renames=1 if i % 8 == 7 else 0)

    for i in range(kills):
        between(i, clean_churn)
    with warm(zygote) as zygote:
        clean_log = work / "clean.log"
        clean_pid = zygote.run(
            cli_args(clean_home, url, "index", str(clean_corpus), "-q"), clean_log
        )
        campaign = kill_campaign(
            zygote,
            cli_args(home, url, "index", str(corpus)),
            work / "logs",
            kills=kills,
            rng=random.Random(seed),
            pause_at=_when_to_kill,
            between=between,
        )
        ended = zygote.wait(clean_pid)
        if ended.code != 0:
            raise AssertionError(
                f"the clean build failed ({ended}): {clean_log.read_text()[-3000:]}"
            )
    on_disk = {p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()}
    return Outcome(
        [campaign],
        snapshot(home, corpus),
        snapshot(clean_home, clean_corpus),
        on_disk,
        dict(churn.done),
    )


def compaction_campaign(
    work: Path, url: str, *, notes: int = 300, kills: int = 8, zygote: Zygote | None = None
) -> Outcome:
    """SIGKILLs during compaction: every run compacts at its end (``compact_every_commits=1``);
    even runs die between two tables' compactions, odd ones at a random moment inside
    LanceDB's compaction of the passages table (compacted first)."""
    corpus = work / "corpus"
    make_corpus(corpus, notes, seed=3)
    churn = FolderChurn(corpus, seed=9)
    home, clean_home = work / "crashy", work / "clean"
    _settings(home, url, compact_every_commits=1, parse_timeout_s=PARSE_TIMEOUT_S)
    _settings(clean_home, url, compact_every_commits=1, parse_timeout_s=PARSE_TIMEOUT_S)
    with warm(zygote) as zygote:
        index_once(zygote, home, url, corpus, work / "first.log")
        campaign = kill_campaign(
            zygote,
            cli_args(home, url, "index", str(corpus)),
            work / "logs",
            kills=kills,
            rng=random.Random(4),
            pause_at=lambda i: f"compaction:{1 + i % 3}" if i % 2 == 0 else "~compaction",
            mark_delay_s=(0.0, 0.05),  # compacting the passages table takes 40-100 ms here
            between=lambda _i: churn.step(deletes=1, edits=8, adds=1),
        )
        index_once(zygote, clean_home, url, corpus, work / "clean.log")
    on_disk = {p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()}
    return Outcome(
        [campaign], snapshot(home, corpus), snapshot(clean_home, corpus), on_disk, dict(churn.done)
    )


def _models(home: Path) -> tuple[str, tuple[str, int] | None]:
    from ftrag_desktop.core.store import Store

    store = Store(home / "index", read_only=True)
    try:
        return store.embedding_model()[0], store.building_model()
    finally:
        store.close()


def switch_campaign(
    work: Path,
    url: str,
    *,
    notes: int = 320,
    kills: tuple[int, int] = (4, 2),
    zygote: Zygote | None = None,
) -> Outcome:
    """SIGKILLs during an embedding-model switch (nomic-embed-text -> all-minilm): at a random
    moment once the switch starts (creating and filling the new table), or mid-build after a
    batch or two of vectors.  Then the settings go back to the old model (the half-built table
    must be dropped and the old index kept), forward again with more kills, and a run to the
    end.  `notes` long notes make some 2,400 chunks: nine batches of vectors, more than the
    killed runs fill."""
    corpus = work / "corpus"
    make_corpus(corpus, notes, seed=6, paragraphs=(6, 10))
    churn = FolderChurn(corpus, seed=2)
    home, clean_home = work / "crashy", work / "clean"
    old, new = "nomic-embed-text", "all-minilm"
    _settings(home, url, embed_model=old, parse_timeout_s=PARSE_TIMEOUT_S)
    _settings(clean_home, url, embed_model=new, parse_timeout_s=PARSE_TIMEOUT_S)
    argv = cli_args(home, url, "index", str(corpus))
    seen: list[tuple[str, tuple[str, int] | None]] = []

    def between(i: int) -> None:
        seen.append(_models(home))
        if i % 3 == 2:
            churn.step(deletes=1, edits=3, adds=1)

    with warm(zygote) as zygote:
        index_once(zygote, home, url, corpus, work / "first.log")
        before = _models(home)
        _settings(home, url, embed_model=new, parse_timeout_s=PARSE_TIMEOUT_S)
        first = kill_campaign(
            zygote,
            argv,
            work / "switch-logs",
            kills=kills[0],
            rng=random.Random(8),
            pause_at=lambda i: "~switch" if i % 2 == 0 else "switch:2",
            between=between,
            final=False,
        )
        seen.append(_models(home))
        _settings(home, url, embed_model=old, parse_timeout_s=PARSE_TIMEOUT_S)
        index_once(zygote, home, url, corpus, work / "back.log")
        reverted = _models(home)
        reverted_health = snapshot(home, corpus).health
        _settings(home, url, embed_model=new, parse_timeout_s=PARSE_TIMEOUT_S)
        again = kill_campaign(
            zygote,
            argv,
            work / "again-logs",
            kills=kills[1],
            rng=random.Random(9),
            pause_at=lambda _i: "switch:2",
        )
        index_once(zygote, clean_home, url, corpus, work / "clean.log")
    on_disk = {p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()}
    return Outcome(
        [first, again],
        snapshot(home, corpus),
        snapshot(clean_home, corpus),
        on_disk,
        dict(churn.done),
        {
            "before": before,
            "during": seen,
            "reverted": reverted,
            "reverted_health": reverted_health,
        },
    )


# ---- bounded growth ---------------------------------------------------------------------------


@dataclass
class Growth:
    """What `growth_cycles` measured (sizes in bytes)."""

    cycles: int
    files: int
    seconds: float
    sizes: list[tuple[int, int]]  # (cycle, index size) every `sample_every` cycles
    before_quiet: int  # right after the last cycle
    final: int  # after the quiet-time compaction
    fresh_built: int  # a fresh index of the final folder, as built
    fresh: int  # the same after its own quiet-time compaction
    compactions: int  # quiet-time compactions it took to settle
    grace_s: float  # the readers' grace period used
    settle_seconds: float
    got: Snapshot
    clean: Snapshot

    @property
    def ratio(self) -> float:
        return self.final / self.fresh


def _settle(engine: Any, timeout_s: float) -> int:
    """Be the watcher's quiet moments: call `idle_maintenance` until the index has settled."""
    deadline = time.monotonic() + timeout_s
    runs = 0
    while not engine.store.settled:
        if time.monotonic() > deadline:
            raise AssertionError(f"the index did not settle in {timeout_s:.0f} s")
        if engine.idle_maintenance():
            runs += 1
        else:
            time.sleep(0.1)
    return runs


def growth_cycles(
    work: Path,
    url: str,
    *,
    files: int = 20,
    cycles: int = 1000,
    grace_s: float | None = None,
    sample_every: int = 100,
    seed: int = 3,
) -> Growth:
    """`cycles` times: rewrite a random one of `files` notes and sync just that path (what the
    watcher does); then stay quiet until the watcher's idle compaction has run.  The index's
    size then, against a fresh index of the same folder (settled the same way).

    `grace_s` overrides the readers' grace period (`Store.keep_versions`, 10 s): the versions a
    compaction keeps for readers in other processes, which only the quiet-time compaction
    removes.  Tests shorten it to keep from sleeping; the benchmark keeps the default.
    """
    from datetime import timedelta

    from ftrag_desktop.config import Settings
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.core.store import _dir_bytes
    from ftrag_desktop.paths import Home

    rng = random.Random(seed)
    folder = work / "notes"
    folder.mkdir(parents=True)
    names = [f"note{i:02d}.md" for i in range(files)]
    for name in names:
        (folder / name).write_text(note_text(rng, name, (2, 5)), encoding="utf-8")

    def open_engine(home: Path) -> Any:
        engine = Engine(Home(home), Settings(ollama_host=url))
        if grace_s is not None:
            engine.store.keep_versions = timedelta(seconds=grace_s)
        return engine

    engine = open_engine(work / "home")
    grace = engine.store.keep_versions.total_seconds()
    index = work / "home" / "index"
    try:
        for _event in engine.sync(folder):
            pass
        sizes: list[tuple[int, int]] = []
        t0 = time.monotonic()
        for cycle in range(1, cycles + 1):
            path = folder / rng.choice(names)
            path.write_text(note_text(rng, f"{path.stem} edit {cycle}", (2, 5)), encoding="utf-8")
            for _event in engine.sync(folder, paths=[path]):
                pass
            if cycle % sample_every == 0:
                sizes.append((cycle, _dir_bytes(index)))
        seconds = time.monotonic() - t0
        before_quiet = _dir_bytes(index)

        fresh_engine = open_engine(work / "fresh")
        try:
            for _event in fresh_engine.sync(folder):
                pass
            fresh_built = _dir_bytes(work / "fresh" / "index")
            timeout = 4 * engine.store.keep_versions.total_seconds() + 60
            t1 = time.monotonic()
            compactions = _settle(engine, timeout)
            settle_seconds = time.monotonic() - t1
            _settle(fresh_engine, timeout)
        finally:
            fresh_engine.close()
        final = _dir_bytes(index)
    finally:
        engine.close()
    return Growth(
        cycles=cycles,
        files=files,
        seconds=seconds,
        sizes=sizes,
        before_quiet=before_quiet,
        final=final,
        fresh_built=fresh_built,
        fresh=_dir_bytes(work / "fresh" / "index"),
        compactions=compactions,
        grace_s=grace,
        settle_seconds=settle_seconds,
        got=snapshot(work / "home", folder),
        clean=snapshot(work / "fresh", folder),
    )


if __name__ == "__main__":
    zygote_main()
