"""Where the index lives: the data home's own folder, or a shared object-store URI.

A team that outgrows one desktop shares one index in an object store (AWS S3, an
S3-compatible server such as MinIO, Google Cloud Storage, Azure Blob Storage): one machine, the
indexer, watches the folders and writes it; every desktop that sets `index_read_only` searches
and answers from it.  LanceDB reads and writes such a URI itself; its `storage_options`
(endpoint, region, allow_http, credentials) come from the settings, and credentials may come
from the environment instead (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...), as LanceDB reads
them.  Nothing else changes: the same store code runs against a folder and against a bucket.

What this machine keeps of a shared index stays in the home (`local_dir`, named after the URI):
the writer lock and the record of chunk sizes.  That lock keeps two writers apart on one
machine only; across machines, only the indexer is configured to write, and LanceDB's commits
retry on conflict.  The checks that read the index's files on the local disk (the damage check
at start, the clean-close stamp, `ftrag index`'s no-change shortcut) apply to a local index
only: for a shared one, LanceDB's own errors say what is wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ftrag_desktop.config import INDEX_URI_SCHEMES, Settings
from ftrag_desktop.paths import Home

__all__ = ["SHARED_DIR", "IndexLocation", "is_remote", "locate"]

SHARED_DIR = "shared-index"  # in the home: one folder per shared index this machine uses
_SECRET_KEYS = ("secret", "token", "password", "key_id", "access_key", "sas", "credential")


def is_remote(uri: str) -> bool:
    """True for an object-store URI (s3://, gs://, az://, abfs://)."""
    scheme, sep, _rest = uri.strip().partition("://")
    return bool(sep) and scheme.lower() in INDEX_URI_SCHEMES


@dataclass(frozen=True)
class IndexLocation:
    """One index: `uri` as LanceDB opens it (a folder or an object-store URI), its storage
    options, the local folder for this machine's files about it, and whether this machine
    may write it."""

    uri: str
    local_dir: Path
    storage_options: dict[str, str] = field(default_factory=dict, hash=False)
    read_only: bool = False

    @classmethod
    def folder(cls, path: Path) -> IndexLocation:
        """A local index in `path` (its files and this machine's records in one place)."""
        return cls(str(path), Path(path))

    @property
    def remote(self) -> bool:
        return is_remote(self.uri)

    def describe(self) -> str:
        """The location for people: the URI and the options, secrets left out."""
        if not self.remote:
            return self.uri
        shown = [
            f"{k}={v}"
            for k, v in sorted(self.storage_options.items())
            if not any(word in k.lower() for word in _SECRET_KEYS)
        ]
        mode = "read-only" if self.read_only else "read-write"
        return f"{self.uri} (shared, {mode}" + (f"; {', '.join(shown)})" if shown else ")")


def locate(home: Home, settings: Settings) -> IndexLocation:
    """The index `settings` name: the home's own folder unless `index_uri` is set."""
    uri = settings.index_uri.strip()
    if not uri:
        return IndexLocation.folder(home.index_dir)
    uri = uri.rstrip("/")
    digest = hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]
    local = home.root / SHARED_DIR / digest
    local.mkdir(parents=True, exist_ok=True)
    return IndexLocation(
        uri,
        local,
        storage_options=dict(settings.index_storage_options),
        read_only=settings.index_read_only,
    )
