"""User settings: one JSON file in the data home, with a schema version and numbered migrations.

Unknown keys are kept out, missing keys take their defaults, and a corrupt file is moved aside
(never silently overwritten) so that a bad edit cannot lose the user's other settings.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"


@dataclass
class Settings:
    """Every tunable of the app.  Sizes are in characters, times in seconds."""

    schema_version: int = SCHEMA_VERSION
    ollama_host: str = ""  # empty: $OLLAMA_HOST, else DEFAULT_OLLAMA_HOST
    chat_model: str = "llama3.2"
    embed_model: str = "nomic-embed-text"
    embed_batch_size: int = 32
    chunk_size: int = 1000
    chunk_overlap: int = 150
    parse_workers: int = 0  # 0: one per core, at most 4
    parse_timeout_s: float = 60.0
    parse_max_bytes: int = 200 * 1024 * 1024
    parse_memory_mb: int = 1024
    top_k: int = 6
    search_mode: str = "hybrid"
    request_timeout_s: float = 120.0
    compact_every_commits: int = 50
    watched_folders: list[str] = field(default_factory=list)
    paused_folders: list[str] = field(default_factory=list)

    def resolved_ollama_host(self) -> str:
        return self.ollama_host or os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST


Migration = Callable[[dict[str, Any]], dict[str, Any]]
# MIGRATIONS[n] turns a version-n document into a version n+1 document.
MIGRATIONS: dict[int, Migration] = {}


def _migrate(raw: dict[str, Any]) -> dict[str, Any]:
    version = int(raw.get("schema_version", 1))
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version += 1
        raw["schema_version"] = version
    return raw


def load_settings(path: Path) -> Settings:
    """Read settings; defaults when the file is missing; a corrupt file is kept aside."""
    if not path.exists():
        return Settings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("settings file is not a JSON object")
    except (OSError, ValueError):
        path.replace(path.with_name(f"{path.name}.corrupt-{int(time.time())}"))
        return Settings()
    raw = _migrate(raw)
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in raw.items() if k in known})


def save_settings(path: Path, settings: Settings) -> None:
    """Write atomically: a crash mid-write leaves the old file intact."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
    os.replace(tmp, path)
