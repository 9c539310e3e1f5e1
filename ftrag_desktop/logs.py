"""Logging: a rotating log file in the data home, plus stderr for the CLI's --verbose."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from ftrag_desktop.paths import Home

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    home: Home, *, stderr_level: int = logging.ERROR, filename: str = "ftrag.log"
) -> None:
    """Log INFO and above to `<home>/logs/<filename>` (rotated), and `stderr_level` to stderr.

    Each process logs to a file of its own: rotation is not safe across processes.
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        if getattr(handler, "_ftrag", False):
            root.removeHandler(handler)
    try:
        file_handler: logging.Handler = logging.handlers.RotatingFileHandler(
            home.logs_dir / filename, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        file_handler.setLevel(logging.INFO)
        file_handler._ftrag = True  # type: ignore[attr-defined]
        root.addHandler(file_handler)
    except OSError as exc:  # a read-only home must not stop the app
        print(f"warning: cannot write the log file: {exc}", file=sys.stderr)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.setLevel(stderr_level)
    console._ftrag = True  # type: ignore[attr-defined]
    root.addHandler(console)
    # Third-party chatter stays out of the user's terminal.
    for noisy in ("httpx", "httpcore", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
