"""Start the desktop app (the PyInstaller entry point too).  `--home DIR` relocates all data."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    # Parse workers are spawned processes; a frozen (PyInstaller) app must route them here.
    multiprocessing.freeze_support()
    parser = argparse.ArgumentParser(prog="ftrag-desktop")
    parser.add_argument("--home", metavar="DIR", help="data directory (default: $FTRAG_HOME)")
    args, qt_args = parser.parse_known_args(argv)

    from PySide6.QtWidgets import QApplication

    from ftrag_desktop.app.main_window import MainWindow
    from ftrag_desktop.logs import configure_logging
    from ftrag_desktop.paths import Home

    home = Home.resolve(args.home)
    configure_logging(home, stderr_level=logging.WARNING)

    app = QApplication([sys.argv[0], *qt_args])
    app.setApplicationName("ftrag-desktop")
    window = MainWindow(home)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
