"""Start the desktop app (the PyInstaller entry point too).  `--home DIR` relocates all data."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ftrag-desktop")
    parser.add_argument("--home", metavar="DIR", help="data directory (default: $FTRAG_HOME)")
    args, qt_args = parser.parse_known_args(argv)

    from PySide6.QtWidgets import QApplication

    from ftrag_desktop.app.main_window import MainWindow
    from ftrag_desktop.paths import Home

    app = QApplication([sys.argv[0], *qt_args])
    app.setApplicationName("ftrag-desktop")
    window = MainWindow(Home.resolve(args.home))
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
