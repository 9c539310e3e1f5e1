"""Start the desktop app (the PyInstaller entry point too).

`--home DIR` relocates all data (like `FTRAG_HOME`).  `--screenshot PATH` waits until the window
has settled (library indexed, answer finished), saves a PNG of it and exits; with `--ask` a
question is answered first, and `--show library|viewer|evaluate` picks what is on screen
(`evaluate`: the report of the newest evaluation run).
`--self-test` checks the installation (see `app/self_test.py`) and exits 0 when it works.
`--exit-when-shown` prints `window shown` once the window is on screen, and `library ready` once
the library has opened and synced, then quits (used to time the start).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from ftrag_desktop.app.main_window import MainWindow

SCREENSHOT_TIMEOUT_MS = 120_000
EXIT_WHEN_SHOWN_TIMEOUT_MS = 60_000


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="ftrag-desktop")
    parser.add_argument("--home", metavar="DIR", help="data directory (default: $FTRAG_HOME)")
    parser.add_argument("--screenshot", metavar="PATH", help="save a PNG of the window and exit")
    parser.add_argument("--ask", metavar="QUESTION", help="with --screenshot: ask this first")
    parser.add_argument(
        "--show",
        choices=["chat", "library", "viewer", "evaluate"],
        default="chat",
        help="with --screenshot: what to show",
    )
    parser.add_argument(
        "--self-test", action="store_true", help="check this installation, print a report, exit"
    )
    parser.add_argument(
        "--exit-when-shown",
        action="store_true",
        help="print 'window shown' once the window is on screen, then quit",
    )
    return parser.parse_known_args(argv)


def _exit_when_shown(window: MainWindow, started: float) -> None:
    """Print one line once the window is first exposed and painted; quit once it has settled.

    Quitting waits for the library process to report ready: a child still starting when the
    app exits would find its parent's queues gone.
    """
    from PySide6.QtCore import QEvent, QObject, QTimer

    handle = window.windowHandle()
    assert handle is not None  # the window is shown
    state = {"shown": False, "settled": False}

    def close_when_done() -> None:
        if state["shown"] and state["settled"]:
            window.close()

    def report() -> None:  # queued behind the expose event, so after its first paint
        if state["shown"]:
            return
        state["shown"] = True
        print(f"window shown {time.monotonic() - started:.3f} s after main()", flush=True)
        close_when_done()

    def on_settled() -> None:
        if not state["settled"]:
            print(f"library ready {time.monotonic() - started:.3f} s after main()", flush=True)
        state["settled"] = True
        close_when_done()

    class ExposeWatcher(QObject):
        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Expose and handle.isExposed():
                handle.removeEventFilter(self)
                QTimer.singleShot(0, report)
            return False

    handle.installEventFilter(ExposeWatcher(window))
    window.settled.connect(on_settled)
    QTimer.singleShot(EXIT_WHEN_SHOWN_TIMEOUT_MS, window.close)
    if handle.isExposed():  # some platforms expose synchronously in show()
        QTimer.singleShot(0, report)


def _close_on_signals(window: QWidget) -> Callable[[], None]:
    """SIGTERM (logout, `kill`) and SIGINT (Ctrl+C) close the window as the user would.

    Python runs signal handlers only between bytecodes, and Qt's loop runs in C++, so the
    signal wakes the loop through a socket (`signal.set_wakeup_fd`) and a QSocketNotifier.
    """
    import signal
    import socket

    from PySide6.QtCore import QSocketNotifier

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    signal.set_wakeup_fd(theirs.fileno())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)  # the wakeup byte does the work
    notifier = QSocketNotifier(ours.fileno(), QSocketNotifier.Type.Read, window)

    def on_signal() -> None:
        with contextlib.suppress(OSError):
            ours.recv(64)
        window.close()

    notifier.activated.connect(on_signal)

    def release() -> None:
        signal.set_wakeup_fd(-1)
        notifier.setEnabled(False)
        ours.close()
        theirs.close()

    return release


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    # Parse workers are spawned processes; a frozen (PyInstaller) app must route them here.
    multiprocessing.freeze_support()
    args, qt_args = parse_args(argv)
    if args.self_test:
        from ftrag_desktop.app.self_test import run_self_test

        return run_self_test(qt_args)

    from PySide6.QtWidgets import QApplication

    from ftrag_desktop.app.main_window import MainWindow
    from ftrag_desktop.logs import configure_logging
    from ftrag_desktop.paths import Home

    home = Home.resolve(args.home)
    configure_logging(home, stderr_level=logging.WARNING)
    app = QApplication([sys.argv[0], *qt_args])
    app.setApplicationName("ftrag-desktop")
    app.setDesktopFileName("ftrag-desktop")
    window = MainWindow(home)
    window.setWindowIcon(window.windowIcon())
    window.show()
    release_signals = _close_on_signals(window)
    if args.exit_when_shown:
        _exit_when_shown(window, started)
    if args.screenshot:
        from ftrag_desktop.app.screenshot import take_screenshot_when_settled

        take_screenshot_when_settled(
            window, args.screenshot, ask=args.ask, show=args.show, timeout_ms=SCREENSHOT_TIMEOUT_MS
        )
    code = app.exec()
    release_signals()
    return code


if __name__ == "__main__":
    sys.exit(main())
