"""Moving a model file's bytes to Ollama: sha256 digests and blob uploads, with progress.

Digests are computed streaming (1 MiB at a time) and cached by path, size and times, so a
second import of the same file does not read it again.  An upload runs on a helper thread
because httpx sends a request body synchronously; the bytes it hands to the socket come back
to the caller's generator as `ImportProgress` events.  Setting `cancel` aborts the upload at the
next chunk (the request is cut, the server stores nothing) and raises `Cancelled`.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ftrag_desktop.errors import Cancelled, ModelFileError, OllamaServerError, OllamaUnavailable

if TYPE_CHECKING:
    from ftrag_desktop.core.import_plan import UploadFile
    from ftrag_desktop.core.llm import OllamaClient

CHUNK = 1 << 20


@dataclass(frozen=True)
class ImportProgress:
    """Bytes hashed or uploaded for one file."""

    step: Literal["hashing", "uploading"]
    file: str
    done: int
    total: int


class DigestCache:
    """sha256 digests by (path, size, mtime, ctime): a re-import need not read the file again."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def key(path: Path) -> str:
        st = path.stat()
        return f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"

    def _read(self) -> dict[str, str]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return raw if isinstance(raw, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, path: Path) -> str | None:
        value = self._read().get(self.key(path))
        return value if isinstance(value, str) else None

    def put(self, path: Path, digest: str) -> None:
        entries = self._read()
        entries[self.key(path)] = digest
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(entries, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache: losing it only costs time


def hash_file(
    f: UploadFile, cache: DigestCache, cancel: threading.Event
) -> Generator[ImportProgress, None, str]:
    """Yield progress while hashing; return "sha256:<hex>"."""
    cached = cache.get(f.path)
    if cached:
        yield ImportProgress("hashing", f.name, f.size, f.size)
        return cached
    sha = hashlib.sha256()
    done = last = 0
    every = max(f.size // 100, 8 * CHUNK)
    with f.path.open("rb") as fh:
        while data := fh.read(CHUNK):
            if cancel.is_set():
                raise Cancelled
            sha.update(data)
            done += len(data)
            if done - last >= every:
                last = done
                yield ImportProgress("hashing", f.name, done, f.size)
    yield ImportProgress("hashing", f.name, done, f.size)
    digest = f"sha256:{sha.hexdigest()}"
    cache.put(f.path, digest)
    return digest


class _UploadStopped(Exception):
    """Raised inside the request body to abort an upload (cancel, or the reader went away)."""


def upload(
    client: OllamaClient, f: UploadFile, digest: str, cancel: threading.Event
) -> Iterator[ImportProgress]:
    """POST one blob on a helper thread (httpx sends the body synchronously) and turn the
    bytes it hands to the socket into progress events here."""
    events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    stop = threading.Event()

    def chunks() -> Iterator[bytes]:
        remaining = f.size  # never more than was hashed and announced as Content-Length
        with f.path.open("rb") as fh:
            while remaining > 0:
                if stop.is_set() or cancel.is_set():
                    raise _UploadStopped
                data = fh.read(min(CHUNK, remaining))
                if not data:
                    return
                remaining -= len(data)
                yield data
                events.put(("sent", len(data)))

    def run() -> None:
        try:
            client.upload_blob(digest, chunks(), f.size)
        except BaseException as e:
            events.put(("error", e))
        else:
            events.put(("done", None))

    thread = threading.Thread(target=run, name=f"ftrag-upload-{f.name}", daemon=True)
    thread.start()
    done = last = 0
    every = max(f.size // 100, CHUNK)
    try:
        while True:
            kind, value = events.get()
            if kind == "sent":
                done += value
                if done - last >= every or done == f.size:
                    last = done
                    yield ImportProgress("uploading", f.name, done, f.size)
            elif kind == "error":
                if isinstance(value, _UploadStopped):
                    raise Cancelled
                if isinstance(value, OllamaUnavailable):
                    pct = 100 * done // f.size if f.size else 0
                    raise OllamaUnavailable(
                        f"The upload of {f.path.name} stopped at {pct}%: {value.message}",
                        "Check that Ollama is still running, then import again (the upload "
                        "starts over; Ollama keeps no partial uploads).",
                    ) from value
                if isinstance(value, OllamaServerError):
                    raise OllamaServerError(
                        value.server_message,
                        value.status_code,
                        f"Ollama refused the upload of {f.path.name}. If the file changed while "
                        "it was being read, import again; else see the Ollama server log.",
                    ) from value
                raise value
            else:
                if done < f.size:  # the file shrank while it was read
                    raise ModelFileError(
                        f"{f.path.name} changed while it was being uploaded.",
                        "Wait until the file is completely written, then import again.",
                    )
                return
    finally:
        stop.set()
        thread.join()
