"""One `ftrag train … --json` child process, its JSON lines turned into signals as they come.

`TrainProcess` wraps a `QProcess`: the event loop reads stdout whenever the child writes, so the
GUI thread never waits for it; each complete line is parsed and emitted as `event_received`
(a dict, the CLI's documented event), and `ended(exit_code, last_event)` follows once the
child has exited and every line has been read.  stderr (the CLI's human-readable errors,
library warnings) is kept, its last lines only, to explain a child that died without an
``error`` event.

`stop()` asks the child to stop the way Ctrl-C would: SIGINT on POSIX (the CLI stops after
the current micro-batch and saves a checkpoint), `terminate()` elsewhere.  `wait_stopped()`
is for quitting: it waits a bounded time, then kills the child (the checkpoints already
written are kept: each is written under a temporary name and renamed).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import sys
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

log = logging.getLogger(__name__)

__all__ = ["CRASHED", "TrainProcess"]

CRASHED = -1  # the exit code reported when the child could not start or was killed
STDERR_LINES = 40


class TrainProcess(QObject):
    """See the module docstring."""

    event_received = Signal(object)  # dict: one JSON event of `ftrag train --json`
    ended = Signal(int, object)  # exit code (CRASHED if it did not exit), last event or None

    def __init__(self, program: str, arguments: list[str], parent: QObject | None = None):
        super().__init__(parent)
        self.program, self.arguments = program, list(arguments)
        self.last_event: dict[str, Any] | None = None
        self.stopping = False
        self._ended = False
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._partial = b""
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONIOENCODING", "utf-8")
        env.insert("PYTHONUNBUFFERED", "1")
        self._process = QProcess(self)
        self._process.setProcessEnvironment(env)
        self._process.setProgram(program)
        self._process.setArguments(self.arguments)
        self._process.readyReadStandardOutput.connect(self._on_process_ready_read_standard_output)
        self._process.readyReadStandardError.connect(self._on_process_ready_read_standard_error)
        self._process.finished.connect(self._on_process_finished)
        self._process.errorOccurred.connect(self._on_process_error_occurred)

    # ---- control ---------------------------------------------------------------------------

    def start(self) -> None:
        log.info("starting %s %s", self.program, " ".join(self.arguments))
        self._process.start()

    def is_running(self) -> bool:
        return self._process.state() != QProcess.ProcessState.NotRunning

    def pid(self) -> int:
        return int(self._process.processId())

    def stop(self) -> None:
        """Ask the child to stop cleanly (it saves a checkpoint first); returns at once."""
        if not self.is_running() or self.stopping:
            return
        self.stopping = True
        pid = self.pid()
        if sys.platform != "win32" and pid > 0:
            try:
                os.kill(pid, signal.SIGINT)
                return
            except OSError:
                pass
        self._process.terminate()

    def kill(self) -> None:
        """End the child at once (an estimate has nothing to save); `ended` still follows."""
        if self.is_running():
            self.stopping = True
            self._process.kill()

    def wait_stopped(self, timeout_ms: int) -> bool:
        """Quitting: wait up to `timeout_ms` for the stop asked for, then kill the child.
        True when it stopped by itself."""
        if not self.is_running():
            return True
        self.stop()
        if self._process.waitForFinished(timeout_ms):
            return True
        log.warning("the training process did not stop in %d ms: killing it", timeout_ms)
        self._process.kill()
        self._process.waitForFinished(2000)
        return False

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    # ---- reading ---------------------------------------------------------------------------

    def _on_process_ready_read_standard_output(self) -> None:
        data = self._partial + bytes(self._process.readAllStandardOutput().data())
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            self._line(line)

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict) or "event" not in event:
            self._stderr.append(f"(stdout) {text}")
            return
        self.last_event = event
        self.event_received.emit(event)

    def _on_process_ready_read_standard_error(self) -> None:
        text = bytes(self._process.readAllStandardError().data()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self._stderr.append(line.rstrip())

    def _on_process_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._on_process_ready_read_standard_output()
        self._on_process_ready_read_standard_error()
        if self._partial:
            self._line(self._partial)
            self._partial = b""
        crashed = status == QProcess.ExitStatus.CrashExit
        self._end(CRASHED if crashed else int(code))

    def _on_process_error_occurred(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._stderr.append(f"Could not start {self.program}: {self._process.errorString()}")
            self._end(CRASHED)

    def _end(self, code: int) -> None:
        if not self._ended:
            self._ended = True
            self.ended.emit(code, self.last_event)
