"""The PySide6 desktop app: the only package that imports Qt.  A thin layer over `core`."""
