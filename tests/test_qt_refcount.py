"""The pinned PySide6 keeps Python's reference counts intact.

PySide6 6.12.0 dropped one reference to `None` on every call of a Qt method returning nothing
and one to `True` on every signal emit; a long session (an answer emits once per token) then
aborted with "bool_dealloc".  This guards the pin: a regression fails here, not in a user's
session.  It runs in a subprocess because the failure mode is an interpreter abort.
"""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import sys
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QComboBox, QLabel

app = QApplication([])
label, combo = QLabel(), QComboBox()

class Source(QObject):
    fired = Signal(object)

source = Source()
source.fired.connect(lambda value: None)
none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
for _ in range(2000):
    label.setText("x")
    label.setEnabled(True)
    source.fired.emit(1)
    combo.currentData()
print(sys.getrefcount(None) - none_before, sys.getrefcount(True) - true_before)
"""


def test_qt_calls_and_signals_do_not_leak_or_steal_references() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    none_delta, true_delta = (int(v) for v in out.stdout.split())
    # A few references may be created or released while the loop runs; thousands may not.
    assert abs(none_delta) < 50, f"None refcount drifted by {none_delta}"
    assert abs(true_delta) < 50, f"True refcount drifted by {true_delta}"
