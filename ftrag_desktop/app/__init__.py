"""The PySide6 desktop app: the only package that imports Qt.  A thin layer over `core`.

Importing it imports Qt and turns off PySide6's source scan of every later import
(`feature_scan`), before the app's own modules load.
"""

import PySide6.QtCore  # noqa: F401  (loads PySide6's import hook, replaced next)

from ftrag_desktop.app.feature_scan import skip_feature_scan

skip_feature_scan()
