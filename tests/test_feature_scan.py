"""PySide6's per-import source scan is replaced once `ftrag_desktop.app` is imported: new
modules are recorded without their source being read, and Qt keeps working."""

from __future__ import annotations

import linecache
import sys
from pathlib import Path
from typing import Any

import ftrag_desktop.app  # noqa: F401  (installs the replacement)
from ftrag_desktop.app.feature_scan import IGNORE


def test_new_modules_are_recorded_without_reading_their_source(
    tmp_path: Path, monkeypatch: Any, qtbot: Any
) -> None:
    (tmp_path / "plain_mod_for_scan.py").write_text("import json\nVALUE = 1\n")
    (tmp_path / "qt_mod_for_scan.py").write_text(
        "from PySide6.QtCore import QObject, Signal\n"
        "import json\n"
        "class Thing(QObject):\n"
        "    changed = Signal(int)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    feature = sys.modules["PySide6.support.feature"]
    table = feature.pyside_feature_dict

    # An import statement: PySide6 hooks `builtins.__import__`, which importlib bypasses.
    import plain_mod_for_scan as plain
    import qt_mod_for_scan as qt_mod

    assert plain.VALUE == 1
    assert table.get("plain_mod_for_scan") == IGNORE
    assert table.get("qt_mod_for_scan") == IGNORE
    cached = {str(Path(name).resolve()) for name in linecache.cache}
    assert str(tmp_path / "plain_mod_for_scan.py") not in cached
    assert str(tmp_path / "qt_mod_for_scan.py") not in cached

    seen: list[int] = []
    thing = qt_mod.Thing()
    thing.changed.connect(seen.append)
    thing.changed.emit(7)
    assert seen == [7]
    assert thing.objectName() == ""  # camelCase API: no snake_case feature switched on
