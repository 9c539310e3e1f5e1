"""What the Train tab reads from disk (always on a worker): recent exports and checkpoints.

- `recent_exports(home_root)`: the training sets the Evaluate tab exported under
  ``<home>/finetune/`` (`core.finetune_export.default_out_dir`), newest first, each with a
  label saying when, what kind and how many examples (from the export's ``export.json``).
- `data_path(chosen)`: what to hand `ftrag train --data` for a file picked in a dialog (an
  export's ``train.jsonl`` stands for its folder, so its ``valid.jsonl`` is used too).
- `saved_checkpoint(run_dir)`: the step and the loss history of the run's last checkpoint,
  so a resumable run can be offered and its chart redrawn from where it stopped.
Nothing here touches Qt.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftrag_desktop.core.finetune_formats import MANIFEST_FILE, TRAIN_FILE

__all__ = ["ExportChoice", "SavedCheckpoint", "data_path", "recent_exports", "saved_checkpoint"]

EXPORTS_DIR = "finetune"
RECENT_LIMIT = 12
# The checkpoint layout of `core.train_loop` (``<run dir>/checkpoint-<step>/state.json``),
# spelled out here: the app must not import train_loop, whose functions import torch.
CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "state.json"


@dataclass(frozen=True)
class ExportChoice:
    path: str  # the export folder
    label: str  # "2026-11-29 16:54 · qa · 18 + 2 examples" (training + validation)
    modified: float


def _examples(preview: dict[str, Any], split: str) -> int | None:
    part = preview.get(split)
    value = part.get("examples") if isinstance(part, dict) else None
    return value if isinstance(value, int) else None


def _describe(folder: Path, modified: float) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(modified))
    parts = [when]
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    options = manifest.get("options") if isinstance(manifest, dict) else None
    if isinstance(options, dict) and options.get("kind"):
        parts.append(str(options["kind"]))
    preview = manifest.get("preview") if isinstance(manifest, dict) else None
    if isinstance(preview, dict):
        train, valid = _examples(preview, "train"), _examples(preview, "valid")
        if train is not None:
            parts.append(f"{train} + {valid or 0} examples")
    return " · ".join(parts)


def recent_exports(home_root: Path, limit: int = RECENT_LIMIT) -> list[ExportChoice]:
    """The exports under the data home that hold a train.jsonl, newest first."""
    found: list[ExportChoice] = []
    try:
        folders = [p for p in (home_root / EXPORTS_DIR).iterdir() if p.is_dir()]
    except OSError:
        return []
    for folder in folders:
        try:
            modified = (folder / TRAIN_FILE).stat().st_mtime
        except OSError:
            continue  # not an export (or not finished)
        found.append(ExportChoice(str(folder), _describe(folder, modified), modified))
    found.sort(key=lambda c: c.modified, reverse=True)
    return found[:limit]


def data_path(chosen: str) -> str:
    """An export's train.jsonl stands for its folder; any other file or folder for itself."""
    path = Path(chosen)
    return str(path.parent) if path.name == TRAIN_FILE else str(path)


@dataclass(frozen=True)
class SavedCheckpoint:
    path: str
    step: int
    total_steps: int
    train_losses: list[tuple[int, float]]
    val_losses: list[tuple[int, float]]


def _points(raw: Any) -> list[tuple[int, float]]:
    return [(int(p[0]), float(p[1])) for p in raw or [] if isinstance(p, list) and len(p) == 2]


def saved_checkpoint(run_dir: str) -> SavedCheckpoint | None:
    """The run's last checkpoint (its step and losses so far), or None."""
    found: list[tuple[int, Path]] = []
    try:
        for p in Path(run_dir).glob(f"{CHECKPOINT_PREFIX}*") if run_dir else []:
            suffix = p.name[len(CHECKPOINT_PREFIX) :]
            if suffix.isdigit() and (p / STATE_FILE).is_file():
                found.append((int(suffix), p))
    except OSError:
        return None
    if not found:
        return None
    path = max(found)[1]
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        return SavedCheckpoint(
            str(path),
            int(state["step"]),
            int(state.get("total_steps") or 0),
            _points(state.get("train_losses")),
            _points(state.get("val_losses")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
