"""Values as the Library shows them: sizes, time left, folders with `~`, escaped rich text."""

from __future__ import annotations

from pathlib import Path

__all__ = ["escape", "human_eta", "human_size", "short_folder"]


def human_size(size: int | None) -> str:
    """`1.5 MB`; `—` when the size is unknown."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def human_eta(seconds: float | None) -> str:
    """`about 2 min left`; "" when nobody knows."""
    if seconds is None:
        return ""
    if seconds < 1:
        return "almost done"
    if seconds < 60:
        return f"about {int(seconds + 0.5)} s left"
    if seconds < 3600:
        return f"about {int(seconds / 60 + 0.5)} min left"
    hours, rest = divmod(int(seconds), 3600)
    return f"about {hours} h {rest // 60} min left"


def short_folder(path: str) -> str:
    """The folder shown to people: the home directory as `~`."""
    home = str(Path.home())
    if path == home or path.startswith(home + "/") or path.startswith(home + "\\"):
        return "~" + path[len(home) :]
    return path


def escape(text: str) -> str:
    """`text` safe inside a rich-text label (quotes need no escaping there)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
