"""Can this installation train, and on what: the `[train]` extra, the device, free memory.

Everything here is safe on the GUI path: whether torch, transformers and peft are installed is
asked of `importlib` (`find_spec` and the installed distributions' metadata), never by importing
them, so the Train tab can say what is missing and how to get it without paying torch's import
(seconds, hundreds of MB); `train_device` is where torch is asked about GPUs.  Free memory is
read from the operating system (psutil when present, else /proc/meminfo or sysconf), so an
estimate can be refused before a model is loaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ftrag_desktop.errors import UserError

__all__ = [
    "EXTRA_NAME",
    "TRAIN_PACKAGES",
    "Device",
    "TrainExtra",
    "TrainExtraMissing",
    "available_memory_bytes",
    "detect_extra",
    "install_hint",
    "require_extra",
]

EXTRA_NAME = "train"
# import name -> distribution name, in the order the hint lists them.
TRAIN_PACKAGES: dict[str, str] = {
    "torch": "torch",
    "transformers": "transformers",
    "peft": "peft",
    "safetensors": "safetensors",
    "gguf": "gguf",
}
# torch's own builds for CPU: the default wheel on Linux pulls in CUDA (several GB).
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


class TrainExtraMissing(UserError):
    """Training needs the optional `[train]` extra (torch, transformers, peft)."""


@dataclass(frozen=True)
class TrainExtra:
    """What of the extra is installed: `installed` is True only when nothing is missing."""

    installed: bool
    missing: tuple[str, ...]  # distribution names
    versions: dict[str, str] = field(default_factory=dict)  # distribution -> version
    hint: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "installed": self.installed,
            "missing": list(self.missing),
            "versions": dict(self.versions),
            "hint": self.hint,
        }


def _frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def install_hint(missing: tuple[str, ...] = ()) -> str:
    """The exact words that tell a person how to get the extra, for this installation."""
    what = ", ".join(missing) if missing else "torch, transformers and peft"
    if _frozen():
        return (
            f"Training needs {what}, which the installed app leaves out to stay small. "
            "Install ftrag-desktop with Python instead: "
            f'`pip install "ftrag-desktop[{EXTRA_NAME}]"` (on Linux without an NVIDIA GPU, add '
            f"`--extra-index-url {CPU_TORCH_INDEX}` to get torch's small CPU build), then run "
            "`ftrag train` or `ftrag-desktop` from that environment."
        )
    return (
        f"Training needs {what}. Install them into this Python environment "
        f"({Path(sys.prefix)}): `{Path(sys.executable).name} -m pip install "
        f'"ftrag-desktop[{EXTRA_NAME}]"` (on Linux without an NVIDIA GPU, add '
        f"`--extra-index-url {CPU_TORCH_INDEX}` to get torch's small CPU build)."
    )


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def detect_extra() -> TrainExtra:
    """Whether torch, transformers, peft, safetensors and gguf are importable, and their
    versions, without importing any of them."""
    missing: list[str] = []
    versions: dict[str, str] = {}
    for module, dist in TRAIN_PACKAGES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        version = _version(dist) if found else None
        if not found:
            missing.append(dist)
        elif version:
            versions[dist] = version
    gone = tuple(missing)
    return TrainExtra(not gone, gone, versions, install_hint(gone) if gone else "")


def require_extra() -> TrainExtra:
    """The extra, or `TrainExtraMissing` saying exactly what to install."""
    extra = detect_extra()
    if not extra.installed:
        raise TrainExtraMissing(
            f"Fine-tuning is not installed: {', '.join(extra.missing)} "
            f"{'is' if len(extra.missing) == 1 else 'are'} missing.",
            extra.hint,
        )
    return extra


# --- memory ---------------------------------------------------------------------------------


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory_bytes() -> int | None:
    """RAM that a new allocation can have without swapping (None when it cannot be told)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    found = _meminfo_available()
    if found is not None:
        return found
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


# --- device ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """Where training runs: "cuda", "mps" or "cpu", with its name and memory."""

    kind: str
    name: str
    memory_bytes: int | None  # the GPU's free memory, or the free RAM for the CPU
    threads: int  # CPU threads torch uses (0 on a GPU)

    @property
    def label(self) -> str:
        return f"{self.kind} ({self.name})" if self.name else self.kind

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "name": self.name,
            "memory_bytes": self.memory_bytes,
            "threads": self.threads,
        }
