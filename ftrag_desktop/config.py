"""User settings: one JSON file in the data home, with a schema version and numbered migrations.

Unknown keys are kept out, missing keys take their defaults, a value of the wrong type falls
back to its default (one bad value must not lose the others), and a corrupt file is moved aside
(never silently overwritten) so that a bad edit cannot lose the user's other settings.

`validate_settings` checks a whole `Settings` and says, per field, what is wrong in words a
person can act on; the settings dialog and `Engine.apply_settings` both use it.
`compare_settings` says what a change means for the rest of the app (re-index, new embedding
model, new Ollama client), so that the dialog can warn before the user confirms and the engine
can report it afterwards from the same rules.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ftrag_desktop.core.ignore import pattern_problem
from ftrag_desktop.errors import ConfigError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
OLLAMA_DEFAULT_PORT = 11434
# Grounded answers should stay close to the sources: a low temperature, not Ollama's 0.8.
DEFAULT_TEMPERATURE = 0.2
# Must match `ftrag_desktop.core.retrieve.MODES` (a test checks it); not imported from there
# because that module loads LanceDB, and reading the settings must stay cheap.
SEARCH_MODES = ("hybrid", "vector", "keyword")

# Ranges that `validate_settings` enforces (inclusive); the settings dialog uses them too.
CHUNK_SIZE_RANGE = (100, 10_000)
TOP_K_RANGE = (1, 50)
NUM_CTX_RANGE = (2048, 1_048_576)  # 0 is also allowed: size the context from the prompt
TEMPERATURE_RANGE = (0.0, 2.0)
REQUEST_TIMEOUT_RANGE = (5.0, 3600.0)
SYSTEM_PROMPT_MAX_CHARS = 20_000
MAX_EXCLUDED_PATTERNS = 500


@dataclass
class Settings:
    """Every tunable of the app.  Sizes are in characters, times in seconds."""

    schema_version: int = SCHEMA_VERSION
    ollama_host: str = ""  # empty: $OLLAMA_HOST, else DEFAULT_OLLAMA_HOST
    chat_model: str = "llama3.2"
    embed_model: str = "nomic-embed-text"  # empty: no embeddings, keyword search only
    embed_batch_size: int = 32
    chunk_size: int = 1000
    chunk_overlap: int = 150
    parse_workers: int = 0  # 0: one per core, at most 4
    parse_timeout_s: float = 60.0
    parse_max_bytes: int = 200 * 1024 * 1024
    parse_memory_mb: int = 1024  # for all parse workers together, an equal share each
    parse_max_pages: int = 10_000  # a PDF with more pages is refused (and named as such)
    parse_max_chars: int = 10_000_000  # the most text one document may yield
    top_k: int = 6
    search_mode: str = "hybrid"
    request_timeout_s: float = 120.0
    compact_every_commits: int = 50
    num_ctx: int = 0  # the model's context window in tokens; 0: sized to each prompt
    temperature: float = DEFAULT_TEMPERATURE
    system_prompt: str = ""  # empty: the built-in prompt (core/answer.py)
    excluded_patterns: list[str] = field(default_factory=list)  # gitignore-style, per folder
    watched_folders: list[str] = field(default_factory=list)
    paused_folders: list[str] = field(default_factory=list)
    # A shared index (core/index_location.py): an object-store URI such as s3://bucket/team;
    # empty: the index in the data home.  Read at start.
    index_uri: str = ""
    # LanceDB's storage options for it: endpoint, region, allow_http, credentials (which may
    # come from the environment instead, e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
    index_storage_options: dict[str, str] = field(default_factory=dict)
    index_read_only: bool = False  # this desktop searches a shared index another one writes

    def resolved_ollama_host(self) -> str:
        return self.ollama_host or os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST


# Owned by the library service (it adds and removes folders while the app runs): a settings
# change made elsewhere never overwrites them.
LIBRARY_FIELDS = ("watched_folders", "paused_folders")


# ---- migrations --------------------------------------------------------------------------

Migration = Callable[[dict[str, Any]], dict[str, Any]]


def normalize_host(host: str) -> str:
    """An Ollama address in the full form `http(s)://host:port`, as `OLLAMA_HOST` is read.

    `localhost`, `localhost:11434`, `:11434` and `http://localhost:11434/` all name the same
    server; without a scheme Ollama's client assumes http and port 11434, but with a scheme
    and no port it assumes 80/443, so the port must be written out when the scheme is added.
    """
    host = host.strip()
    if not host or "://" in host:
        return host.rstrip("/")
    hostport, slash, path = host.partition("/")
    if hostport.startswith(":"):
        hostport = "127.0.0.1" + hostport
    bracketed_v6 = hostport.startswith("[") and hostport.endswith("]")
    if bracketed_v6 or ":" not in hostport:
        hostport = f"{hostport}:{OLLAMA_DEFAULT_PORT}"
    path = path.rstrip("/")
    return f"http://{hostport}" + (f"/{path}" if slash and path else "")


def _v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """v2 adds generation and indexing settings, and keeps the Ollama address as a full URL.

    The new keys get their defaults; nothing the user set is renamed or dropped.  A v1 address
    written without a scheme (`localhost:11434`, as OLLAMA_HOST often is) gets one, with the
    port Ollama's client would have used, so that it passes v2's validation unchanged in meaning.
    """
    out = dict(raw)
    host = out.get("ollama_host")
    if isinstance(host, str):
        out["ollama_host"] = normalize_host(host)
    out.setdefault("num_ctx", 0)
    out.setdefault("temperature", DEFAULT_TEMPERATURE)
    out.setdefault("system_prompt", "")
    out.setdefault("excluded_patterns", [])
    return out


# MIGRATIONS[n] turns a version-n document into a version n+1 document.
MIGRATIONS: dict[int, Migration] = {1: _v1_to_v2}


def _version_of(raw: dict[str, Any]) -> int:
    value = raw.get("schema_version", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return 1
    return value


def _migrate(raw: dict[str, Any]) -> dict[str, Any]:
    version = _version_of(raw)
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version += 1
        raw["schema_version"] = version
    return raw


# ---- load and save -----------------------------------------------------------------------


def _coerce(value: Any, default: Any) -> tuple[bool, Any]:
    """(ok, value) for one stored value, judged by the type of the field's default."""
    if isinstance(default, bool):
        return isinstance(value, bool), value
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool), value
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if isinstance(default, str):
        return isinstance(value, str), value
    if isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return ok, list(value) if ok else value
    if isinstance(default, dict):
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
        return ok, dict(value) if ok else value
    return True, value


def _from_document(raw: dict[str, Any]) -> Settings:
    defaults = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name not in raw or f.name == "schema_version":
            continue
        ok, value = _coerce(raw[f.name], getattr(defaults, f.name))
        if ok:
            values[f.name] = value
        else:
            log.warning("settings: ignoring %s=%r (wrong type); using the default", f.name, value)
    return Settings(**values)


def load_settings(path: Path) -> Settings:
    """Read settings; defaults when the file is missing; a corrupt file is kept aside."""
    if not path.exists():
        return Settings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("settings file is not a JSON object")
    except (OSError, ValueError) as exc:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        log.warning("settings file %s is unreadable (%s); moved to %s", path, exc, aside.name)
        path.replace(aside)
        return Settings()
    return _from_document(_migrate(raw))


def save_settings(path: Path, settings: Settings) -> None:
    """Write atomically: a crash mid-write leaves the old file intact.

    The temporary name is unique per process and thread: the GUI and the library service may
    save at the same moment, and must not write into each other's temporary file.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    data = asdict(settings)
    data["schema_version"] = SCHEMA_VERSION
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


# ---- validation --------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One problem with one setting, in words meant for the person who typed it."""

    field: str
    message: str


class InvalidSettings(ConfigError):
    """Settings that fail `validate_settings`; `errors` has one entry per problem."""

    def __init__(self, errors: list[FieldError]) -> None:
        lines = [f"{e.field}: {e.message}" for e in errors]
        super().__init__(
            "The settings were not saved: " + "; ".join(lines),
            "Correct the values named above and try again.",
        )
        self.errors = errors


_HOST_RE = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r"(?::(?P<port>\d{1,5}))?"
    r"(?P<path>/[^\s?#]*)?$"
)
HOST_EXAMPLE = "http://127.0.0.1:11434"


def host_problem(host: str) -> str | None:
    """Why `host` is not a usable Ollama address, or None.  Empty means "the default"."""
    if not host:
        return None
    if host != host.strip():
        return "Remove the spaces around the address."
    if "://" not in host:
        return f"Start the address with http:// or https://, for example {HOST_EXAMPLE}."
    m = _HOST_RE.match(host)
    if m is None:
        return f"This is not a valid address. Use one like {HOST_EXAMPLE}."
    if m.group("scheme").lower() not in ("http", "https"):
        return f"Ollama is reached over http:// or https://, not {m.group('scheme')}://."
    port = m.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        return f"The port must be between 1 and 65535, not {port}."
    return None


def _model_problem(name: str, *, required: bool, what: str) -> str | None:
    if not name.strip():
        return f"Choose a {what}." if required else None
    if name != name.strip() or any(c.isspace() for c in name):
        return "A model name has no spaces (for example llama3.2 or qwen2.5:7b)."
    return None


def _in_range(value: float, bounds: tuple[float, float], what: str) -> str | None:
    lo, hi = bounds
    if lo <= value <= hi:
        return None
    return f"{what} must be between {lo:g} and {hi:g}, not {value:g}."


def validate_settings(s: Settings) -> list[FieldError]:
    """Every problem with `s`, at most one per field, in field order; [] when it is usable."""
    problems: dict[str, str | None] = {
        "ollama_host": host_problem(s.ollama_host),
        "chat_model": _model_problem(s.chat_model, required=True, what="chat model"),
        "embed_model": _model_problem(s.embed_model, required=False, what="embedding model"),
        "embed_batch_size": _in_range(s.embed_batch_size, (1, 1024), "The embedding batch"),
        "chunk_size": _in_range(s.chunk_size, CHUNK_SIZE_RANGE, "The chunk size"),
        "parse_workers": _in_range(s.parse_workers, (0, 64), "The number of parse workers"),
        "parse_timeout_s": _in_range(s.parse_timeout_s, (1, 3600), "The parse timeout"),
        "parse_max_bytes": _in_range(s.parse_max_bytes, (1024, 1 << 40), "The largest file"),
        "parse_memory_mb": _in_range(s.parse_memory_mb, (64, 1 << 20), "The parse memory"),
        "parse_max_pages": _in_range(s.parse_max_pages, (1, 10_000_000), "The most PDF pages"),
        "parse_max_chars": _in_range(s.parse_max_chars, (1000, 1 << 40), "The most text"),
        "top_k": _in_range(s.top_k, TOP_K_RANGE, "The number of sources"),
        "request_timeout_s": _in_range(
            s.request_timeout_s, REQUEST_TIMEOUT_RANGE, "The answer timeout"
        ),
        "compact_every_commits": _in_range(
            s.compact_every_commits, (1, 1_000_000), "Compaction interval"
        ),
        "temperature": _in_range(s.temperature, TEMPERATURE_RANGE, "The temperature"),
    }
    half = s.chunk_size // 2
    if s.chunk_overlap < 0:
        problems["chunk_overlap"] = "The overlap cannot be negative."
    elif s.chunk_overlap > half and not problems["chunk_size"]:  # one message per mistake
        problems["chunk_overlap"] = (
            f"The overlap must be at most half the chunk size ({half} for chunks of "
            f"{s.chunk_size}), not {s.chunk_overlap}."
        )
    if s.search_mode not in SEARCH_MODES:
        problems["search_mode"] = f"Choose one of: {', '.join(SEARCH_MODES)}."
    if s.num_ctx != 0:
        lo, hi = NUM_CTX_RANGE
        if not lo <= s.num_ctx <= hi:
            problems["num_ctx"] = (
                f"Use 0 (automatic) or a context between {lo} and {hi} tokens, not {s.num_ctx}."
            )
    if len(s.system_prompt) > SYSTEM_PROMPT_MAX_CHARS:
        problems["system_prompt"] = (
            f"The system prompt is {len(s.system_prompt)} characters long; "
            f"keep it under {SYSTEM_PROMPT_MAX_CHARS}."
        )
    problems["excluded_patterns"] = _patterns_problem(s.excluded_patterns)
    problems["index_uri"] = index_uri_problem(s.index_uri)
    order = [f.name for f in fields(Settings)]
    return [
        FieldError(name, message)
        for name, message in sorted(problems.items(), key=lambda kv: order.index(kv[0]))
        if message
    ]


# Object stores LanceDB reads and writes (AWS S3 and S3-compatible servers such as MinIO,
# Google Cloud Storage, Azure Blob Storage).  core/index_location.py uses them too.
INDEX_URI_SCHEMES = ("s3", "gs", "az", "abfs")


def index_uri_problem(uri: str) -> str | None:
    """What is wrong with a shared index location, or None (empty: the home's own index)."""
    uri = uri.strip()
    if not uri:
        return None
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return (
            f"'{uri}' is not an object-store address: use s3://bucket/folder (or gs://, az://); "
            "leave it empty for the index in the data folder."
        )
    if scheme.lower() not in INDEX_URI_SCHEMES:
        return (
            f"'{scheme}://' is not a supported index location; use one of "
            f"{', '.join(s + '://' for s in INDEX_URI_SCHEMES)}."
        )
    if not rest.strip("/"):
        return f"'{uri}' names no bucket: use {scheme}://bucket/folder."
    return None


def _patterns_problem(patterns: list[str]) -> str | None:
    if len(patterns) > MAX_EXCLUDED_PATTERNS:
        return f"Use at most {MAX_EXCLUDED_PATTERNS} patterns, not {len(patterns)}."
    for line, pattern in enumerate(patterns, 1):
        why = pattern_problem(pattern)
        if why:
            return f"Line {line}, '{pattern.strip()}': {why}"
    return None


# ---- what a change means -----------------------------------------------------------------

# Fields whose change means the documents must be chunked again.
CHUNKING_FIELDS = ("chunk_size", "chunk_overlap")


@dataclass(frozen=True)
class SettingsChange:
    """What a settings change means for the rest of the app (see `compare_settings`)."""

    changed: tuple[str, ...] = ()  # names of the fields whose value changed
    host_changed: bool = False  # another Ollama address or timeout: a new client
    chat_model_changed: bool = False
    embed_model_changed: bool = False  # vectors for the new model are built in the background
    chunking_changed: bool = False  # every document is chunked (and embedded) again
    exclusions_changed: bool = False  # files become excluded or included on the next sync

    @property
    def reindex_needed(self) -> bool:
        """The next sync must re-read the folders: chunking or the excluded files changed."""
        return self.chunking_changed or self.exclusions_changed

    @property
    def sync_needed(self) -> bool:
        """Something the library process does in the background follows from this change."""
        return self.reindex_needed or self.embed_model_changed

    def __bool__(self) -> bool:
        return bool(self.changed)

    def consequences(self) -> list[str]:
        """Sentences telling the user what will happen, most costly first."""
        out: list[str] = []
        if self.chunking_changed:
            out.append(
                "Every document will be split into passages again and re-indexed in the "
                "background (parsing and embedding take a while for a large library). "
                "Search keeps working meanwhile."
            )
        if self.embed_model_changed:
            out.append(
                "Vectors for the new embedding model are computed in the background; search "
                "keeps using the current ones until they are complete."
            )
        if self.exclusions_changed:
            out.append(
                "The folders are synced again: files that are now excluded leave the index, "
                "files no longer excluded are indexed."
            )
        if self.host_changed:
            out.append("The app reconnects to Ollama with the new address and timeout.")
        return out


def compare_settings(old: Settings, new: Settings) -> SettingsChange:
    """What changes from `old` to `new` (the library's folder lists are not compared)."""
    skip = {"schema_version", *LIBRARY_FIELDS}
    changed = tuple(
        f.name
        for f in fields(Settings)
        if f.name not in skip and getattr(old, f.name) != getattr(new, f.name)
    )
    return SettingsChange(
        changed=changed,
        host_changed=(old.resolved_ollama_host(), old.request_timeout_s)
        != (new.resolved_ollama_host(), new.request_timeout_s),
        chat_model_changed=old.chat_model != new.chat_model,
        embed_model_changed=old.embed_model != new.embed_model,
        chunking_changed=any(name in changed for name in CHUNKING_FIELDS),
        exclusions_changed=_clean_patterns(old.excluded_patterns)
        != _clean_patterns(new.excluded_patterns),
    )


def _clean_patterns(patterns: list[str]) -> list[str]:
    """The patterns that mean something: blank lines and comments do not change what matches."""
    out = []
    for p in patterns:
        stripped = p.strip()
        if stripped and not stripped.startswith("#"):
            out.append(stripped)
    return out
