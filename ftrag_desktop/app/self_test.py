"""`ftrag-desktop --self-test`: prove that this installation works, one line per check.

Made for the frozen (PyInstaller) app, and runs from source too.  The checks:

- ``bundle``: where the app runs from, and that its resources are there;
- ``sample-pdf``: the bundled sample PDF (AES-256, empty password) parses in this process;
- ``parse-pool``: it parses again in a spawned parse worker (a frozen app must re-enter itself);
- ``index``: a LanceDB round trip through the engine: index a folder, close, reopen, search;
- ``window``: the Qt platform loads; the main window opens, its library process reports ready,
  it renders, and it closes;
- ``ollama``: whether Ollama answers (reported, never a failure: search works without it);
- ``install-folder``: nothing was written inside the install folder;
- ``log``: nothing was logged at ERROR level.

All data goes to a temporary home, removed at the end.  The exit code is 0 only when every
required check passed.  Unexpected Qt warnings fail the ``window`` check.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ftrag_desktop import __version__
from ftrag_desktop.paths import ENV_HOME, Home, resource_path

SAMPLE = ("samples", "ftrag-sample.pdf")
SAMPLE_PHRASE = "amber lighthouse keepers count herons at dawn"
WINDOW_TIMEOUT_S = 90.0
OLLAMA_TIMEOUT_S = 3.0
# Qt messages that are not problems: the offscreen platform cannot honour window size hints.
HARMLESS_QT = ("This plugin does not support propagateSizeHints",)


class CheckFailed(Exception):
    """A check's own verdict (printed without a traceback)."""


@dataclass(frozen=True)
class Result:
    name: str
    status: str  # "ok" | "FAIL" | "info"
    detail: str
    seconds: float


def install_dir() -> Path:
    """The folder this app was installed into (frozen), else the checkout's `resources/`."""
    if getattr(sys, "frozen", False):
        exe_dir = Path(sys.executable).resolve().parent
        # A macOS .app: the whole bundle (Contents/MacOS/<exe>) is the install.
        return exe_dir.parent if exe_dir.name == "MacOS" else exe_dir
    return resource_path()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and mtime (symlinks as they are, not followed)."""
    files: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [
            *filenames,
            *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d))),
        ]:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                files[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
        files[os.path.relpath(dirpath, root) + os.sep] = (0, os.lstat(dirpath).st_mtime_ns)
    return files


class _ErrorLog(logging.Handler):
    """Counts what the app logs at ERROR and above while the self-test runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


class SelfTest:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.results: list[Result] = []

    def run(self, name: str, check: Callable[[], str], *, required: bool = True) -> Result:
        started = time.monotonic()
        trace = ""
        try:
            detail = check()
            status = "ok" if required else "info"
        except CheckFailed as exc:
            detail, status = str(exc), "FAIL" if required else "info"
        except Exception as exc:  # a check that crashed is a failed check, with its traceback
            detail, status = f"{type(exc).__name__}: {exc}", "FAIL" if required else "info"
            trace = traceback.format_exc()
        result = Result(name, status, detail, time.monotonic() - started)
        self.results.append(result)
        print(f"{status:<4}  {name:<14} {detail} ({result.seconds:.1f} s)", file=self.out)
        if trace:
            print("      " + trace.rstrip().replace("\n", "\n      "), file=self.out)
        self.out.flush()
        return result

    @property
    def passed(self) -> bool:
        return all(r.status != "FAIL" for r in self.results)


# ---- the checks ---------------------------------------------------------------------------


def check_bundle() -> str:
    where = "frozen" if getattr(sys, "frozen", False) else "from source"
    missing = [
        "/".join(parts)
        for parts in (("icons", "ftrag-256.png"), SAMPLE)
        if not resource_path(*parts).is_file()
    ]
    if missing:
        raise CheckFailed(f"resources missing under {resource_path()}: {', '.join(missing)}")
    return f"ftrag-desktop {__version__}, {where}, at {install_dir()}"


def _check_sample_document(doc: object) -> str:
    from ftrag_desktop.core.types import ParsedDocument

    assert isinstance(doc, ParsedDocument)
    if doc.pages != 2:
        raise CheckFailed(f"expected 2 pages, got {doc.pages}")
    pages = [b.page for b in doc.blocks if SAMPLE_PHRASE in " ".join(b.text.split())]
    if pages != [2]:
        raise CheckFailed(f"the sample sentence was not found on page 2 (found on {pages})")
    return "2 pages, the sample sentence on page 2"


def check_sample_pdf() -> str:
    from pypdf import PdfReader

    from ftrag_desktop.core.parse import parse_file

    path = resource_path(*SAMPLE)
    if not PdfReader(path).is_encrypted:
        raise CheckFailed("the sample PDF is not encrypted: the AES path is not exercised")
    return _check_sample_document(parse_file(path)) + " (AES-256, empty password)"


def check_parse_pool() -> str:
    from ftrag_desktop.core.parse.pool import ParsePool

    with ParsePool(workers=1, timeout_s=60.0) as pool:
        outcome = pool.parse(resource_path(*SAMPLE))
    if outcome.document is None:
        raise CheckFailed(f"the parse worker failed: {outcome.error}")
    return f"spawned worker: {_check_sample_document(outcome.document)}"


def check_index(work: Path) -> str:
    from ftrag_desktop.config import Settings
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.core.events import SyncFinished, SyncSummary

    folder = work / "documents"
    folder.mkdir()
    shutil.copy(resource_path(*SAMPLE), folder / "sample.pdf")
    (folder / "notes.md").write_text("# Notes\n\nHerons nest in tall trees.\n", encoding="utf-8")
    home = Home(work / "index-home")
    # No embedding model: keyword search only, so this check never waits on the network.
    settings = Settings(embed_model="", parse_workers=1, ollama_host="http://127.0.0.1:9")
    summary: SyncSummary | None = None
    with Engine(home, settings) as engine:
        for event in engine.sync(folder):
            if isinstance(event, SyncFinished):
                summary = event.summary
    if summary is None or summary.indexed != 2 or summary.failed:
        raise CheckFailed(f"indexing the sample folder went wrong: {summary}")
    with Engine(home, settings) as engine:  # reopened: the index must come back from disk
        hits = engine.search("lighthouse keepers", k=3, mode="keyword").hits
    if not hits or Path(hits[0].path).name != "sample.pdf" or hits[0].page != 2:
        raise CheckFailed(f"search after reopening did not find the sample on page 2: {hits}")
    return f"LanceDB: {summary.indexed} files indexed, found again after reopening (page 2)"


@contextlib.contextmanager
def _qt_messages() -> Iterator[list[str]]:
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    seen: list[str] = []

    def handler(kind: QtMsgType, _context: object, message: str) -> None:
        quiet = kind in (QtMsgType.QtDebugMsg, QtMsgType.QtInfoMsg)
        if not quiet and not any(h in message for h in HARMLESS_QT):
            seen.append(message)

    previous = qInstallMessageHandler(handler)
    try:
        yield seen
    finally:
        qInstallMessageHandler(previous)


def check_window(work: Path, qt_args: list[str]) -> str:
    from PySide6.QtCore import QEventLoop, QThreadPool, QTimer
    from PySide6.QtWidgets import QApplication

    from ftrag_desktop.app.main_window import MainWindow

    with _qt_messages() as warnings:
        app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
        assert isinstance(app, QApplication)
        platform = app.platformName()
        window = MainWindow(Home(work / "window-home"))
        loop = QEventLoop()
        state = {"settled": False, "exposed": False}

        def poll() -> None:
            handle = window.windowHandle()
            state["exposed"] = handle is not None and handle.isExposed()
            if state["exposed"] and state["settled"]:
                loop.quit()

        def on_settled() -> None:
            state["settled"] = True
            poll()

        window.settled.connect(on_settled)
        timer = QTimer()
        timer.timeout.connect(poll)
        timer.start(20)
        QTimer.singleShot(int(WINDOW_TIMEOUT_S * 1000), loop.quit)
        window.show()
        loop.exec()
        timer.stop()
        if not (state["exposed"] and state["settled"]):
            window.close()
            raise CheckFailed(
                f"the window did not {'settle' if state['exposed'] else 'appear'} within "
                f"{WINDOW_TIMEOUT_S:g} s (platform {platform})"
            )
        picture = window.grab()
        size = f"{picture.width()}x{picture.height()}"
        window.close()
        QThreadPool.globalInstance().waitForDone(5000)
        app.processEvents()
        if picture.isNull() or picture.width() < 400:
            raise CheckFailed(f"the window rendered an empty picture ({size})")
        if window.isVisible() or window.controller.service is not None:
            raise CheckFailed("the window did not close, or its library process did not stop")
    if warnings:
        raise CheckFailed("Qt warned: " + " | ".join(warnings[:5]))
    return f"platform {platform}; main window shown ({size}), library process ready, closed"


def check_ollama() -> str:
    from ftrag_desktop.config import Settings
    from ftrag_desktop.core.llm import OllamaClient
    from ftrag_desktop.errors import UserError

    host = Settings().resolved_ollama_host()
    with OllamaClient(host, timeout_s=OLLAMA_TIMEOUT_S, connect_timeout_s=OLLAMA_TIMEOUT_S) as c:
        try:
            version = c.version()
            models = c.list_models()
        except UserError as exc:
            return (
                f"not reachable at {host} ({exc.message.splitlines()[0]}); not required: "
                "search works without it, answers need it"
            )
    return f"reachable at {host}: Ollama {version}, {len(models)} models"


def check_install_folder(root: Path, before: dict[str, tuple[int, int]]) -> str:
    after = snapshot(root)
    changed = sorted({p for p in before.keys() | after.keys() if before.get(p) != after.get(p)})
    if changed:
        raise CheckFailed(f"{len(changed)} changes inside {root}: {', '.join(changed[:5])}")
    return f"{len(after)} entries under {root} unchanged"


# ---- the run ------------------------------------------------------------------------------


def _output() -> TextIO:
    """stdout; a windowed Windows app has none, so attach to the console it was started from."""
    if sys.stdout is not None:
        return sys.stdout
    if sys.platform == "win32":
        import ctypes

        if ctypes.windll.kernel32.AttachConsole(-1):  # type: ignore[attr-defined]
            return open("CONOUT$", "w", encoding="utf-8")  # open until the process exits
    return open(Path(tempfile.gettempdir()) / "ftrag-self-test.txt", "w", encoding="utf-8")


def run_self_test(qt_args: list[str]) -> int:
    """Run every check; print one line each and a verdict; 0 when all required checks pass."""
    from ftrag_desktop.logs import configure_logging

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    out = _output()
    root = install_dir()
    before = snapshot(root)
    work = Path(tempfile.mkdtemp(prefix="ftrag-self-test-"))
    previous_home = os.environ.get(ENV_HOME)
    os.environ[ENV_HOME] = str(work / "home")  # anything resolving the default home lands here
    configure_logging(Home(work / "home"), stderr_level=logging.CRITICAL + 1)
    errors = _ErrorLog()
    logging.getLogger().addHandler(errors)
    test = SelfTest(out)
    print(f"ftrag-desktop {__version__} self-test (temporary home {work})", file=out)
    try:
        test.run("bundle", check_bundle)
        test.run("sample-pdf", check_sample_pdf)
        test.run("parse-pool", check_parse_pool)
        test.run("index", lambda: check_index(work))
        test.run("window", lambda: check_window(work, qt_args))
        test.run("ollama", check_ollama, required=False)
        test.run("install-folder", lambda: check_install_folder(root, before))

        def check_log() -> str:
            if errors.messages:
                raise CheckFailed(f"{len(errors.messages)} errors: {errors.messages[:3]}")
            return "no errors logged"

        test.run("log", check_log)
    finally:
        root_logger = logging.getLogger()
        for handler in [errors, *(h for h in root_logger.handlers if getattr(h, "_ftrag", False))]:
            root_logger.removeHandler(handler)
            handler.close()  # the log file lives in the temporary home, removed below
        if previous_home is None:
            os.environ.pop(ENV_HOME, None)
        else:
            os.environ[ENV_HOME] = previous_home
        shutil.rmtree(work, ignore_errors=True)
    failed = [r.name for r in test.results if r.status == "FAIL"]
    verdict = "passed" if not failed else f"FAILED ({', '.join(failed)})"
    print(f"self-test {verdict}: {len(test.results)} checks", file=out, flush=True)
    return 0 if test.passed else 1


__all__ = ["run_self_test"]
