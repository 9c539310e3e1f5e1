"""The Ollama client layer: models, chat streaming and embeddings over the official client.

This is the only module that imports `ollama`.  Every failure of the server or the connection
becomes one of the typed errors in `ftrag_desktop.errors` (with a message and a hint), so no
caller ever sees an `httpx` or `ollama` exception:

- nothing listening / connection cut before an answer -> `OllamaUnavailable`
- the server took too long -> `OllamaTimeout`
- 404 or "not found" for a model -> `ModelNotFound`
- an error about the context length -> `ContextOverflow`
- any other server error -> `OllamaServerError` (the server's text kept word for word)
- a stream that breaks or ends without `done: true` -> `StreamInterrupted`

Retry policy (pauses `RETRY_DELAYS_S`, growing: 0.15, 0.45, 0.9 s, so at most 1.5 s in all):

- Connection refused (nothing was sent: a restarting server): every call is retried.
- Connection lost after the request went out: retried only for calls that are safe to repeat
  (reads and embeddings); a delete is not (the first one may have worked).
- 5xx from `/api/embed`: retried (embedding is idempotent and runs unattended during indexing,
  where a crashed runner restarts); a 5xx anywhere else is shown at once, word for word.
- 4xx (a missing model, a context overflow, a bad request): never retried; the same request
  would get the same answer.
- Time-outs: never retried; the server is busy, and a retry would only pile on and multiply
  the wait.  The read time-out is `timeout_s` (the settings' `request_timeout_s`): the longest
  silence allowed, so a slow model that keeps streaming is never cut off.
- A streamed answer is retried only for a refused connection before any token arrived.  Once a
  token was shown, a broken stream raises `StreamInterrupted` and is never re-sent silently:
  the user keeps the partial answer and decides whether to ask again.
- `version(retry=False)` is the health probe: one short attempt, the caller decides when to
  probe again (the app backs off while Ollama is down).

`context_length` is asked before every answer, and a model's trained context only changes when
the model does, so each model's answer is kept (one `/api/show` per model, not per answer).  It
is asked again after this client pulls, creates or deletes that model, when `list_models` shows
it with another digest (or not at all), and `CONTEXT_CACHE_S` after it was read (a model
replaced through another client or the `ollama` CLI is seen within that time).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:  # at run time they are imported where first needed (see below)
    import httpx
    import ollama

from ftrag_desktop.errors import (
    ContextOverflow,
    ModelNotFound,
    OllamaError,
    OllamaServerError,
    OllamaTimeout,
    OllamaUnavailable,
    StreamInterrupted,
)

T = TypeVar("T")

# Pauses before each retry of a connection failure: 0.15 + 0.45 + 0.9 s, well under 2 s.
RETRY_DELAYS_S = (0.15, 0.45, 0.9)
START_HINT = (
    "Start Ollama (`ollama serve` or the Ollama app), "
    "or point ftrag at it with --ollama-host / OLLAMA_HOST."
)
_CONTEXT_RE = re.compile(
    r"context (length|window|size)|exceeds? .*context|prompt (is )?too long|too many tokens",
    re.IGNORECASE,
)
# How long a model's context length is trusted without news of the model (see the docstring).
CONTEXT_CACHE_S = 300.0
# Families whose models only embed (Ollama's tags carry no capabilities).
_EMBEDDING_FAMILIES = frozenset({"bert", "nomic-bert", "xlm-roberta", "gte", "jina-bert"})


# httpx and ollama are imported inside the functions that use them: together they take about
# half a second to import, and the app's window imports this module (for its types) before it
# can show itself.  After the first call such an import is a dictionary look-up.


@cache
def _stream_broken() -> tuple[type[BaseException], ...]:
    """A stream that was under way and broke."""
    import httpx

    return (httpx.RemoteProtocolError, httpx.ReadError)


@cache
def _refused() -> tuple[type[BaseException], ...]:
    """Nothing was sent: the connection was refused (ollama turns httpx.ConnectError into
    ConnectionError)."""
    import httpx

    return (ConnectionError, httpx.ConnectError)


@cache
def _lost() -> tuple[type[BaseException], ...]:
    """The request may have reached the server, but no answer came back."""
    import httpx

    return (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


@dataclass(frozen=True)
class ModelInfo:
    """One installed model as `ollama list` shows it."""

    name: str
    family: str
    parameter_size: str
    quantization: str
    size: int
    modified_at: str
    digest: str
    is_embedding: bool


@dataclass(frozen=True)
class ChatStats:
    """Token counts and timings Ollama reports with the last part of an answer."""

    prompt_tokens: int
    completion_tokens: int
    total_s: float
    load_s: float
    prompt_eval_s: float
    eval_s: float
    done_reason: str


@dataclass(frozen=True)
class PullProgress:
    """One line of a model download: a status text and bytes done out of total (0 unknown)."""

    status: str
    completed: int = 0
    total: int = 0


@dataclass(frozen=True)
class ChatDelta:
    """One piece of a streamed answer; the last one has `done=True` and the stats."""

    content: str
    done: bool = False
    stats: ChatStats | None = None


def normalize_model_name(name: str) -> str:
    """Ollama's matching: "llama3.2" is "llama3.2:latest"; case does not matter."""
    name = name.strip().lower()
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def looks_like_embedding_model(name: str, family: str, families: list[str] | None = None) -> bool:
    """Best guess from the tags listing, which has no capabilities field."""
    fams = {family.lower(), *(f.lower() for f in families or [])}
    base = name.split(":", 1)[0].rsplit("/", 1)[-1].lower()
    return bool(fams & _EMBEDDING_FAMILIES) or "embed" in base or "minilm" in base


def import_client_library() -> None:
    """Import the official client (ollama, httpx) now: for a caller on a worker thread that
    will soon make calls, rather than pay the import (about 0.4 s) at the first one."""
    import httpx  # noqa: F401
    import ollama  # noqa: F401


def _invalid_host(host: str) -> OllamaUnavailable:
    return OllamaUnavailable(
        f"'{host}' is not a valid Ollama address.",
        "Use a host like http://127.0.0.1:11434 in --ollama-host / OLLAMA_HOST.",
    )


def _check_host(host: str) -> None:
    """Refuse an address that cannot be a URL now, with the standard library: the official
    client, which would refuse it too, is only made at the first call."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(host if "://" in host else f"http://{host}")
        _ = parts.port  # a port that is not a number raises here
    except ValueError as e:
        raise _invalid_host(host) from e
    if any(c.isspace() for c in host.strip()):
        raise _invalid_host(host)


class OllamaClient:
    """A typed, error-translating wrapper around `ollama.Client` for one host."""

    def __init__(
        self, host: str, *, timeout_s: float = 120.0, connect_timeout_s: float = 5.0
    ) -> None:
        self.host = host
        self.timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        _check_host(host)
        # The official client is made at the first call: importing it (ollama, httpx, pydantic
        # models) takes about 0.4 s, which a command that never talks to Ollama (a no-change
        # `ftrag index`) need not pay.
        self._made: ollama.Client | None = None
        self._made_lock = threading.Lock()
        # normalized model name -> (context length, the model's digest then, monotonic time)
        self._context: dict[str, tuple[int | None, str, float]] = {}
        self._digests: dict[str, str] = {}  # normalized name -> digest, per the last listing
        self._context_generation = 0  # bumped by every invalidation (see context_length)
        self._context_lock = threading.Lock()

    @property
    def _client(self) -> ollama.Client:
        made = self._made
        if made is None:
            with self._made_lock:
                if self._made is None:
                    self._made = self._make_client()
                made = self._made
        return made

    def _make_client(self) -> ollama.Client:
        import httpx
        import ollama

        try:
            return ollama.Client(
                host=self.host,
                timeout=httpx.Timeout(self.timeout_s, connect=self._connect_timeout_s),
            )
        except (ValueError, httpx.InvalidURL) as e:
            raise _invalid_host(self.host) from e

    def __enter__(self) -> OllamaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._made_lock:
            made, self._made = self._made, None
        if made is not None:
            # ollama.Client.close is unannotated; reach it through a typed name for mypy.
            close: Callable[[], None] = made.close
            close()

    def _get_json(self, path: str, timeout_s: float | None = None) -> Any:
        """A GET the official client has no method for (e.g. /api/version), with its errors."""
        request_raw: Callable[..., httpx.Response] = self._client._request_raw
        if timeout_s is None:
            return request_raw("GET", path).json()
        return request_raw("GET", path, timeout=timeout_s).json()

    # --- simple calls ---------------------------------------------------------------------

    def version(self, *, timeout_s: float | None = None, retry: bool = True) -> str:
        """Ollama's version.  The health probe passes a short `timeout_s` and `retry=False`."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        return self._call(
            lambda: str(self._get_json("/api/version", timeout_s)["version"]),
            retry=retry,
            timeout_s=timeout,
        )

    def is_reachable(self) -> bool:
        """True when an Ollama server answers at `host`; never raises."""
        try:
            self.version(retry=False)
        except OllamaError:
            return False
        return True

    def list_models(self) -> list[ModelInfo]:
        response = self._call(self._client.list)
        out: list[ModelInfo] = []
        for m in response.models:
            details = m.details
            family = (details.family if details else None) or ""
            families = list(details.families or []) if details else []
            name = m.model or ""
            out.append(
                ModelInfo(
                    name=name,
                    family=family,
                    parameter_size=(details.parameter_size if details else None) or "",
                    quantization=(details.quantization_level if details else None) or "",
                    size=int(m.size or 0),
                    modified_at=m.modified_at.isoformat() if m.modified_at else "",
                    digest=m.digest or "",
                    is_embedding=looks_like_embedding_model(name, family, families),
                )
            )
        self._models_listed(out)
        return out

    def show(self, model: str) -> dict[str, Any]:
        """Everything `ollama show` knows (keys as in the REST API, e.g. "model_info")."""
        response = self._call(lambda: self._client.show(model), model=model)
        return response.model_dump(mode="json", by_alias=True, exclude_none=True)

    def has_model(self, model: str) -> bool:
        wanted = normalize_model_name(model)
        return any(normalize_model_name(m.name) == wanted for m in self.list_models())

    def context_length(self, model: str) -> int | None:
        """The model's trained context length from its GGUF metadata, if Ollama reports it.
        Kept per model (see the module docstring for when it is asked again)."""
        key = normalize_model_name(model)
        now = time.monotonic()
        with self._context_lock:
            cached = self._context.get(key)
            generation = self._context_generation
            digest = self._digests.get(key, "")
        if cached is not None and now - cached[2] < CONTEXT_CACHE_S:
            return cached[0]
        value = self._read_context_length(model)
        with self._context_lock:
            # A pull, create, delete or listing meanwhile may have made `value` stale.
            if generation == self._context_generation:
                self._context[key] = (value, digest, now)
        return value

    def _read_context_length(self, model: str) -> int | None:
        info = self.show(model).get("model_info") or {}
        arch = info.get("general.architecture")
        value = info.get(f"{arch}.context_length") if arch else None
        if value is None:
            value = next((v for k, v in info.items() if k.endswith(".context_length")), None)
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    def _forget_context(self, model: str) -> None:
        """Ask `model`'s context length again next time."""
        with self._context_lock:
            self._context_generation += 1
            self._context.pop(normalize_model_name(model), None)

    def _models_listed(self, models: list[ModelInfo]) -> None:
        """A fresh listing: forget the context length of every model it shows with another
        digest than when that length was read, or no longer shows."""
        digests = {normalize_model_name(m.name): m.digest for m in models}
        with self._context_lock:
            changed = [k for k, v in self._context.items() if digests.get(k) != v[1]]
            if changed:
                self._context_generation += 1
            for key in changed:
                del self._context[key]
            self._digests = digests

    def pull(self, model: str) -> Generator[PullProgress, None, None]:
        """Download `model`, yielding progress; the server's errors raise typed errors.

        `close()` the generator early (the user cancelled) and the download stream is closed:
        Ollama then stops pulling and creates no model.
        """
        self._forget_context(model)
        parts = self._client.pull(model, stream=True)
        try:
            for part in parts:
                yield PullProgress(
                    str(part.get("status") or ""),
                    int(part.get("completed") or 0),
                    int(part.get("total") or 0),
                )
        except OllamaError:
            raise
        except Exception as e:
            raise self._translate(e, model) from e
        finally:
            _close(parts)
            self._forget_context(model)  # the model may have changed, even if cut short

    def delete(self, model: str) -> None:
        """Remove `model` from the server; `ModelNotFound` when it is not there."""
        try:
            self._call(lambda: self._client.delete(model), model=model, idempotent=False)
        finally:
            self._forget_context(model)

    # --- blobs and create (imports) -------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        """True when the server already holds the blob "sha256:<hex>" (HEAD /api/blobs)."""

        import ollama

        def head() -> bool:
            request_raw: Callable[..., httpx.Response] = self._client._request_raw
            try:
                request_raw("HEAD", f"/api/blobs/{digest}")
            except ollama.ResponseError as e:
                if e.status_code == 404:
                    return False
                raise
            return True

        return self._call(head)

    def upload_blob(self, digest: str, chunks: Iterable[bytes], size: int) -> None:
        """POST the bytes of one blob; the server checks them against `digest`.

        Not retried (the chunks cannot be replayed).  An exception raised by `chunks` (the
        caller cancelling) aborts the request and propagates unchanged.
        """
        import httpx
        import ollama

        request_raw: Callable[..., httpx.Response] = self._client._request_raw
        try:
            request_raw(
                "POST",
                f"/api/blobs/{digest}",
                content=chunks,
                headers={"Content-Length": str(size)},
            )
        except OllamaError:
            raise
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as e:
            raise self._translate(e, None) from e

    def create(
        self,
        model: str,
        *,
        from_: str | None = None,
        files: dict[str, str] | None = None,
        adapters: dict[str, str] | None = None,
        template: str | None = None,
        system: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Generator[str, None, None]:
        """POST /api/create, yielding the server's status lines; its errors, word for word,
        raise `OllamaServerError` (never `ModelNotFound`: a create names no existing model)."""
        self._forget_context(model)
        parts = self._client.create(
            model,
            from_=from_,
            files=files,
            adapters=adapters,
            template=template,
            system=system,
            parameters=parameters,
            stream=True,
        )
        try:
            for part in parts:
                yield str(part.status or "")
        except OllamaError:
            raise
        except Exception as e:
            raise self._translate(e, None) from e
        finally:
            _close(parts)
            self._forget_context(model)

    def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        if not texts:
            return []
        response = self._call(
            lambda: self._client.embed(model=model, input=texts),
            model=model,
            retry_server_errors=True,
        )
        vectors = [[float(x) for x in vec] for vec in response.embeddings]
        if len(vectors) != len(texts):
            raise OllamaServerError(
                f"asked for {len(texts)} embeddings from '{model}', got {len(vectors)}",
                hint="Check that the model is an embedding model.",
            )
        return vectors

    # --- streaming chat -------------------------------------------------------------------

    def chat_stream(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        options: dict[str, Any] | None = None,
        keep_alive: str | None = None,
        format: Literal["", "json"] | dict[str, Any] | None = None,
    ) -> Generator[ChatDelta, None, None]:
        """Stream the answer piece by piece; the last delta has `done=True` and the stats.

        `format` ("json" or a JSON schema) asks Ollama for structured output.
        A generator: `close()` it early (the user cancelled) and the HTTP stream is closed.
        """
        import httpx

        delays = iter(RETRY_DELAYS_S)
        while True:
            emitted = False
            parts = self._client.chat(
                model=model,
                messages=messages,
                stream=True,
                options=options,
                keep_alive=keep_alive,
                format=format,
            )
            try:
                for part in parts:
                    content = part.message.content or ""
                    if part.done:
                        yield ChatDelta(content, done=True, stats=_stats(part))
                        return
                    if content:
                        emitted = True
                        yield ChatDelta(content)
            except OllamaError:
                raise
            except _stream_broken() as e:
                # Before any token this is "lost before it answered" (OllamaUnavailable).
                raise (self._interrupted() if emitted else self._translate(e, model)) from e
            except _refused() as e:
                delay = next(delays, None)
                if emitted or delay is None:
                    raise self._translate(e, model) from e
                time.sleep(delay)
                continue
            except httpx.TimeoutException as e:
                if not emitted:
                    raise self._translate(e, model) from e
                raise OllamaTimeout(
                    f"The answer stalled: Ollama at {self.host} sent nothing for "
                    f"{self.timeout_s:g} s, so it was stopped.",
                    "The machine may be overloaded; ask again, or choose a smaller model.",
                ) from e
            except Exception as e:
                raise self._translate(e, model) from e
            finally:
                # Closes the HTTP response at once, also when our caller stops early.
                close: Callable[[], None] | None = getattr(parts, "close", None)
                if close is not None:
                    close()
            raise self._interrupted()  # the stream ended without `done: true`

    # --- error translation ----------------------------------------------------------------

    def _call(
        self,
        fn: Callable[[], T],
        *,
        model: str | None = None,
        retry: bool = True,
        idempotent: bool = True,
        retry_server_errors: bool = False,
        timeout_s: float | None = None,
    ) -> T:
        """Run one request with the retry policy above; every failure becomes an OllamaError."""
        delays = iter(RETRY_DELAYS_S if retry else ())
        while True:
            try:
                return fn()
            except OllamaError:
                raise
            except Exception as e:
                if not _worth_retrying(e, idempotent, retry_server_errors):
                    raise self._translate(e, model, timeout_s) from e
                delay = next(delays, None)
                if delay is None:
                    raise self._translate(e, model, timeout_s) from e
                time.sleep(delay)

    def _translate(
        self, e: BaseException, model: str | None, timeout_s: float | None = None
    ) -> OllamaError:
        import httpx
        import ollama

        if isinstance(e, ollama.ResponseError):
            return self._response_error(e, model)
        if isinstance(e, httpx.ConnectTimeout):
            return OllamaUnavailable(
                f"Cannot reach Ollama at {self.host}: the connection timed out.", START_HINT
            )
        if isinstance(e, httpx.TimeoutException):
            waited = self.timeout_s if timeout_s is None else timeout_s
            return OllamaTimeout(
                f"Ollama at {self.host} did not answer within {waited:g} s.",
                "The model may still be loading or the machine is busy; try again, "
                "or choose a smaller model.",
            )
        if isinstance(e, ConnectionError | httpx.ConnectError):
            return OllamaUnavailable(f"Cannot reach Ollama at {self.host}.", START_HINT)
        if isinstance(e, httpx.TransportError):
            return OllamaUnavailable(
                f"The connection to Ollama at {self.host} was lost before it answered.",
                "Check that Ollama is still running (it may have crashed or restarted), "
                "then try again.",
            )
        if isinstance(e, ValueError | KeyError | TypeError):
            # Invalid JSON or an unexpected shape: something else is listening on that port.
            return OllamaUnavailable(
                f"The server at {self.host} did not answer like Ollama ({e}).",
                "Check that --ollama-host / OLLAMA_HOST points at Ollama.",
            )
        return OllamaServerError(f"{type(e).__name__}: {e}")

    def _response_error(self, e: ollama.ResponseError, model: str | None) -> OllamaError:
        text = str(e.error)
        if _CONTEXT_RE.search(text):
            return ContextOverflow(
                f"The prompt does not fit the model's context window (Ollama said: {text}).",
                "Ask a shorter question, use fewer sources, or raise the context size "
                "(num_ctx) if the model supports it.",
            )
        if text.strip().lower() == "404 page not found":
            # The route itself is missing: wrong address, or an Ollama too old for this API.
            return OllamaServerError(
                text,
                e.status_code,
                f"The server at {self.host} lacks this Ollama API: check --ollama-host / "
                "OLLAMA_HOST, or update Ollama.",
            )
        if model is not None and (e.status_code == 404 or "not found" in text.lower()):
            return ModelNotFound(model)
        return OllamaServerError(
            text, e.status_code, "See the Ollama server log for details, then try again."
        )

    def _interrupted(self) -> StreamInterrupted:
        return StreamInterrupted(
            "The answer stopped before it was complete: the connection to Ollama was lost.",
            f"Check that Ollama is still running at {self.host}, then ask again.",
        )


def _worth_retrying(e: BaseException, idempotent: bool, server_errors: bool) -> bool:
    """The retry policy of the module docstring, for one failed non-streaming request."""
    import ollama

    if isinstance(e, _refused()):
        return True
    if isinstance(e, _lost()):
        return idempotent
    if isinstance(e, ollama.ResponseError):
        return server_errors and e.status_code >= 500 and not _CONTEXT_RE.search(str(e.error))
    return False


def _close(stream: object) -> None:
    """Close an HTTP stream generator of the official client (closes the response at once)."""
    close: Callable[[], None] | None = getattr(stream, "close", None)
    if close is not None:
        close()


def _seconds(ns: int | None) -> float:
    return (ns or 0) / 1e9


def _stats(part: ollama.ChatResponse) -> ChatStats:
    return ChatStats(
        prompt_tokens=part.prompt_eval_count or 0,
        completion_tokens=part.eval_count or 0,
        total_s=_seconds(part.total_duration),
        load_s=_seconds(part.load_duration),
        prompt_eval_s=_seconds(part.prompt_eval_duration),
        eval_s=_seconds(part.eval_duration),
        done_reason=part.done_reason or "stop",
    )
