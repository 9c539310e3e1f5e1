"""Skips PySide6's scan of every module's source at import time.

Once PySide6 is imported, its `__feature__` support (opt-in `snake_case` and `true_property`
per module) hooks every import: for each module not seen before it reads the module's whole
source file (`inspect.getsource`, which also keeps every line in `linecache`) to see whether the
text "PySide6" occurs in it.  The app uses no features, and it imports thousands of modules
after Qt (its own window modules, then LanceDB on the thread that opens the library): the scan
was about 10% of their import time (0.12 s of the window's 1.2 s, 0.25 s of LanceDB's 2.3 s,
measured with `time.thread_time()`), all of it holding the GIL the GUI thread needs.

`skip_feature_scan()` records each new module as "ignored" (select id -1, the documented
meaning "ignore this module") without reading it; PySide6's own modules and the app's keep id
0, the default selection.  If PySide6 ever changes the hook's shape, nothing is patched and it
runs as before.
"""

from __future__ import annotations

import sys
from types import ModuleType

IGNORE = -1  # PySide6's select id for "ignore this module"
DEFAULT = 0  # no features selected: PySide6's default behaviour
OURS_AND_QTS = ("ftrag_desktop", "PySide6", "shiboken6")  # would have been found to use PySide6


def skip_feature_scan() -> bool:
    """Replace the per-import source scan (after PySide6 is imported); True when done."""
    feature = sys.modules.get("PySide6.support.feature")
    table = getattr(feature, "pyside_feature_dict", None)
    if feature is None or not isinstance(table, dict):
        return False
    if not callable(getattr(feature, "feature_imported", None)):
        return False

    def feature_imported(module: ModuleType) -> None:
        name = getattr(module, "__name__", None)
        if isinstance(name, str) and name not in table:
            table[name] = DEFAULT if name.startswith(OURS_AND_QTS) else IGNORE

    feature.feature_imported = feature_imported  # type: ignore[attr-defined]
    return True
