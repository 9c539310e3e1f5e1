"""Where things live: the user data home (platformdirs, `FTRAG_HOME`) and bundled resources.

Every piece of user data (index, settings, conversations, logs, caches) lives under one home
directory.  `FTRAG_HOME` or the `--home DIR` option relocates all of it; tests always do.
Resources are found both from a source checkout and inside a PyInstaller bundle.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "ftrag-desktop"
ENV_HOME = "FTRAG_HOME"


def default_home() -> Path:
    """The home directory: `$FTRAG_HOME` when set, else the platform's user data dir."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class Home:
    """The layout of one data home.  Directories are created on first use."""

    root: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> Home:
        root = Path(explicit).expanduser().resolve() if explicit else default_home()
        return cls(root)

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def index_dir(self) -> Path:
        return self._dir("index")

    @property
    def conversations_dir(self) -> Path:
        return self._dir("conversations")

    @property
    def logs_dir(self) -> Path:
        return self._dir("logs")

    @property
    def models_dir(self) -> Path:
        """What ftrag knows about the models it imported (one lineage JSON per model)."""
        return self._dir("models")

    @property
    def settings_file(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / "settings.json"


def resource_path(*parts: str) -> Path:
    """A file under `resources/`, from a source checkout or a frozen bundle alike."""
    base = getattr(sys, "_MEIPASS", None)
    root = (
        Path(base) / "resources" if base else Path(__file__).resolve().parent.parent / "resources"
    )
    return root.joinpath(*parts)
