"""Names shared by the spec, the build script and the per-OS installers (one place to change).

The version is read from `ftrag_desktop/__init__.py` without importing the package, so the spec
and the build script run with nothing but PyInstaller on the path.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAME = "ftrag-desktop"  # the GUI executable, the install folder, the .deb package
CLI_NAME = "ftrag"  # the command-line executable, in the same folder
BUNDLE_ID = "org.ftrag.desktop"  # macOS CFBundleIdentifier; also the Windows AppUserModelID
DISPLAY_NAME = "ftrag-desktop"
SUMMARY = "Private, on-device knowledge assistant"
DESCRIPTION = (
    "Point it at a folder: it keeps a local index of every document in it and answers "
    "questions through a local Ollama model, citing the passages, files and pages it used."
)
PUBLISHER = "ftrag-desktop contributors"
LICENSE = "MIT"
MAINTAINER = "ftrag-desktop contributors <ftrag-desktop@users.noreply.github.com>"
CONSOLE_ENV = "FTRAG_CONSOLE"  # FTRAG_CONSOLE=1 at build time: the GUI executable gets a console


def version() -> str:
    """The package version, e.g. "0.1.0" (from `ftrag_desktop.__version__`)."""
    text = (REPO / "ftrag_desktop" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise RuntimeError("ftrag_desktop/__init__.py has no __version__")
    return match.group(1)


def version_tuple(ver: str | None = None) -> tuple[int, int, int, int]:
    """The version as four integers, as Windows version resources want it ("0.1.0" -> 0,1,0,0)."""
    numbers = [int(n) for n in re.findall(r"\d+", (ver or version()).split("+")[0])[:4]]
    return (*numbers, *[0] * (4 - len(numbers)))  # type: ignore[return-value]
