"""OllamaClient against the test server: typed results, and a typed error for every fault."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftrag_desktop.core import llm
from ftrag_desktop.core.answer import AnswerCompleted, answer
from ftrag_desktop.core.llm import (
    RETRY_DELAYS_S,
    ChatDelta,
    OllamaClient,
    looks_like_embedding_model,
    normalize_model_name,
)
from ftrag_desktop.errors import (
    ContextOverflow,
    ModelNotFound,
    OllamaServerError,
    OllamaTimeout,
    OllamaUnavailable,
    StreamInterrupted,
    UserError,
)
from tests.ollama_server import CONTEXT_ERROR, ModelEntry, OllamaTestServer

REPO = Path(__file__).resolve().parent.parent

PROMPT = "Use the sources.\n\n[1] notes.md\nThe quarterly report is due on Friday afternoon.\n\nQ?"


@pytest.fixture
def client(ollama_server: OllamaTestServer) -> Iterator[OllamaClient]:
    c = OllamaClient(ollama_server.url, timeout_s=10.0, connect_timeout_s=2.0)
    yield c
    c.close()


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def assert_user_facing(err: UserError, *fragments: str) -> None:
    assert err.message and err.hint, "every Ollama error needs a message and a hint"
    for fragment in fragments:
        assert fragment in str(err)


# --- normal operation ------------------------------------------------------------------------


def test_version_reachability_and_models(client: OllamaClient) -> None:
    assert client.version() == "0.34.1"
    assert client.is_reachable()
    models = {m.name: m for m in client.list_models()}
    llama = models["llama3.2:latest"]
    assert (llama.family, llama.parameter_size, llama.quantization) == ("llama", "3.2B", "Q4_K_M")
    assert llama.size > 0 and len(llama.digest) == 64 and not llama.is_embedding
    assert llama.modified_at.startswith("20") and "T" in llama.modified_at
    assert models["nomic-embed-text:latest"].is_embedding
    assert models["all-minilm:latest"].is_embedding
    assert not models["smollm2:135m"].is_embedding


def test_has_model_matches_names_like_ollama(client: OllamaClient) -> None:
    assert client.has_model("llama3.2")
    assert client.has_model("llama3.2:latest")
    assert client.has_model("SmolLM2:135m")
    assert not client.has_model("smollm2")  # means smollm2:latest, which is not installed
    assert not client.has_model("mistral")


def test_show_and_context_length(client: OllamaClient) -> None:
    info = client.show("llama3.2")
    assert info["model_info"]["general.architecture"] == "llama"
    assert info["capabilities"] == ["completion"]
    assert client.context_length("llama3.2") == 131072
    assert client.context_length("nomic-embed-text") == 2048
    with pytest.raises(ModelNotFound):
        client.context_length("nope")


def shows(server: OllamaTestServer) -> list[str]:
    """The models named by the recorded /api/show requests, in order."""
    return [str(b.get("model") or b.get("name")) for b in server.bodies("/api/show")]


def test_context_length_is_asked_once_per_model_for_many_answers(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.reply = "Fine [1]."
    for _ in range(2):
        events = list(answer("What is due?", client=client, model="llama3.2", retriever=None))
        result = events[-1]
        assert isinstance(result, AnswerCompleted) and result.result.answer == "Fine [1]."
    assert len(ollama_server.bodies("/api/chat")) == 2
    assert shows(ollama_server) == ["llama3.2"]
    assert client.context_length("LLAMA3.2:latest") == 131072  # the same model, still cached
    assert client.context_length("smollm2:135m") == 8192  # another model: asked
    assert shows(ollama_server) == ["llama3.2", "smollm2:135m"]


def test_context_length_asked_again_when_the_listing_shows_a_new_digest(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    assert client.context_length("llama3.2") == 131072
    client.list_models()  # digests learnt: the next listing can tell a change
    assert client.context_length("llama3.2") == 131072
    assert client.context_length("smollm2:135m") == 8192
    client.list_models()  # nothing changed: nothing forgotten
    assert client.context_length("llama3.2") == 131072
    assert client.context_length("smollm2:135m") == 8192
    asked = len(shows(ollama_server))
    assert asked == 3  # llama3.2 read before any listing, then once with its digest; smollm2

    entry = ollama_server.models["llama3.2:latest"]
    entry.context_length, entry.digest = 8192, "f" * 64  # replaced behind the client's back
    assert client.context_length("llama3.2") == 131072  # no news of it yet
    client.list_models()
    assert client.context_length("llama3.2") == 8192
    assert client.context_length("smollm2:135m") == 8192  # unchanged: still cached
    assert shows(ollama_server)[asked:] == ["llama3.2"]


def test_context_length_asked_again_after_pull_create_and_delete(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.models["qwen2.5:0.5b"] = ModelEntry(
        "qwen2.5:0.5b", "qwen2", "494.03M", "Q4_K_M", 1, context_length=16384, digest="a" * 64
    )
    assert client.context_length("qwen2.5:0.5b") == 16384
    list(client.pull("qwen2.5:0.5b"))  # the library's build: 32768
    assert client.context_length("qwen2.5:0.5b") == 32768

    list(client.create("mine", from_="smollm2:135m"))
    assert client.context_length("mine") == 8192
    list(client.create("mine", from_="smollm2:135m", system="Be brief."))
    ollama_server.models["mine:latest"].context_length = 2048  # what the new build reports
    assert client.context_length("mine") == 2048

    client.delete("mine")
    with pytest.raises(ModelNotFound):
        client.context_length("mine")
    assert shows(ollama_server) == ["qwen2.5:0.5b", "qwen2.5:0.5b", "mine", "mine", "mine"]


def test_context_length_cache_expires(
    client: OllamaClient, ollama_server: OllamaTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llm, "CONTEXT_CACHE_S", 0.0)  # always expired: every call asks
    assert client.context_length("llama3.2") == 131072
    assert client.context_length("llama3.2") == 131072
    assert shows(ollama_server) == ["llama3.2", "llama3.2"]


def test_chat_stream_yields_deltas_then_stats(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    deltas = list(
        client.chat_stream(
            "llama3.2", user(PROMPT), options={"num_ctx": 4096, "num_predict": 256}, keep_alive="5m"
        )
    )
    *body, last = deltas
    assert all(isinstance(d, ChatDelta) and not d.done and d.content for d in body)
    answer = "".join(d.content for d in deltas)
    assert (
        answer
        == 'According to the sources, "The quarterly report is due on Friday afternoon." [1].'
    )
    assert last.done and last.stats is not None
    assert last.stats.completion_tokens == len(body)
    assert last.stats.prompt_tokens > 10 and last.stats.done_reason == "stop"
    assert last.stats.total_s > 0 and last.stats.load_s > 0
    (sent,) = ollama_server.bodies("/api/chat")
    assert sent["options"] == {"num_ctx": 4096, "num_predict": 256}
    assert sent["keep_alive"] == "5m" and sent["stream"] is True


def test_closing_a_stream_early_leaves_the_client_usable(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.reply = " ".join(f"w{i}" for i in range(200))
    stream = client.chat_stream("llama3.2", user("q"))
    assert next(stream).content == "w0"
    stream.close()  # the user cancelled
    ollama_server.reply = "fine"
    assert "".join(d.content for d in client.chat_stream("llama3.2", user("q"))) == "fine"


def test_embed(client: OllamaClient, ollama_server: OllamaTestServer) -> None:
    ollama_server.embed_backend = "hash"
    vectors = client.embed("all-minilm", ["one", "two", "three"])
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    assert all(isinstance(x, float) for x in vectors[0])
    assert client.embed("all-minilm", []) == []
    assert ollama_server.embed_count == 3


def test_name_helpers() -> None:
    assert normalize_model_name("Llama3.2") == "llama3.2:latest"
    assert looks_like_embedding_model("mxbai-embed-large:latest", "bert")
    assert looks_like_embedding_model("custom:latest", "nomic-bert")
    assert not looks_like_embedding_model("qwen2.5:0.5b", "qwen2")


# --- faults ------------------------------------------------------------------------------------


def test_down_at_start_is_ollama_unavailable_everywhere(ollama_server: OllamaTestServer) -> None:
    ollama_server.fault = "down"
    client = OllamaClient(ollama_server.url, timeout_s=5.0, connect_timeout_s=1.0)
    assert client.is_reachable() is False
    started = time.monotonic()
    with pytest.raises(OllamaUnavailable) as err:
        client.list_models()
    assert time.monotonic() - started < 2.5  # retries stay short
    assert_user_facing(err.value, f"Cannot reach Ollama at {ollama_server.url}.", "ollama serve")
    for call in (
        lambda: client.embed("all-minilm", ["x"]),
        lambda: list(client.chat_stream("llama3.2", user("hi"))),
    ):
        with pytest.raises(OllamaUnavailable):
            call()
    client.close()


def test_retry_rides_over_a_quick_restart(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = "down"
    restart = threading.Timer(0.2, ollama_server.up)
    restart.start()
    try:
        assert client.list_models()
    finally:
        restart.join()


def test_down_mid_stream_is_stream_interrupted_then_recovers(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.reply = " ".join(f"token{i}" for i in range(400))
    ollama_server.token_delay_s = 0.01
    stream = client.chat_stream("llama3.2", user("q"))
    assert next(stream).content == "token0"
    ollama_server.down()
    with pytest.raises(StreamInterrupted) as err:
        for _ in stream:
            pass
    assert_user_facing(err.value, "The answer stopped before it was complete")

    ollama_server.up()
    ollama_server.reply = "back again"
    assert "".join(d.content for d in client.chat_stream("llama3.2", user("q"))) == "back again"


def test_dropped_stream_is_stream_interrupted(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = "drop"
    received: list[str] = []
    with pytest.raises(StreamInterrupted):
        for delta in client.chat_stream("llama3.2", user(PROMPT)):
            received.append(delta.content)
    assert len(received) == ollama_server.drop_after
    assert len(ollama_server.bodies("/api/chat")) == 1  # not retried after tokens were shown


def test_stream_without_done_line_is_stream_interrupted(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.omit_done = True
    with pytest.raises(StreamInterrupted):
        list(client.chat_stream("llama3.2", user(PROMPT)))


def test_slow_server_is_ollama_timeout(ollama_server: OllamaTestServer) -> None:
    ollama_server.fault = "slow"
    ollama_server.delay_s = 5.0
    client = OllamaClient(ollama_server.url, timeout_s=0.3, connect_timeout_s=1.0)
    with pytest.raises(OllamaTimeout) as err:
        client.list_models()
    assert_user_facing(err.value, "did not answer within 0.3 s")
    with pytest.raises(OllamaTimeout):
        list(client.chat_stream("llama3.2", user("hi")))
    ollama_server.fault = None
    assert client.list_models()  # recovers as soon as the server answers in time
    client.close()


def test_missing_model_is_model_not_found(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    with pytest.raises(ModelNotFound) as err:
        list(client.chat_stream("mistral", user("hi")))
    assert err.value.model == "mistral"
    assert_user_facing(err.value, "ollama pull mistral")
    ollama_server.fault = "404"
    for call in (
        lambda: list(client.chat_stream("llama3.2", user("hi"))),
        lambda: client.embed("all-minilm", ["x"]),
        lambda: client.show("llama3.2"),
    ):
        with pytest.raises(ModelNotFound):
            call()
    assert client.list_models() == []


def test_server_error_keeps_the_text_word_for_word(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = "500"
    text = 'llama runner process has terminated: error loading model: "weird"'
    ollama_server.error_text = text
    with pytest.raises(OllamaServerError) as err:
        list(client.chat_stream("llama3.2", user("hi")))
    assert err.value.server_message == text and err.value.status_code == 500
    assert_user_facing(err.value, text)
    with pytest.raises(OllamaServerError):
        client.list_models()
    assert client.is_reachable()  # the server answers; it is just failing


def test_context_error_is_context_overflow(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = "context"
    with pytest.raises(ContextOverflow) as err:
        list(client.chat_stream("llama3.2", user("hi")))
    assert_user_facing(err.value, CONTEXT_ERROR)
    with pytest.raises(ContextOverflow):
        client.embed("all-minilm", ["x"])


def test_no_embed_fault_is_model_not_found_for_embeddings_only(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = "no_embed"
    with pytest.raises(ModelNotFound):
        client.embed("nomic-embed-text", ["x"])
    assert not client.has_model("nomic-embed-text")
    assert client.has_model("llama3.2")


def test_something_else_on_the_port_is_not_mistaken_for_ollama(
    ollama_server: OllamaTestServer,
) -> None:
    # The server's root answers plain text, so a client pointed at a sub-path sees no JSON API.
    client = OllamaClient(f"{ollama_server.url}/elsewhere", timeout_s=2.0)
    with pytest.raises(OllamaServerError) as err:
        client.list_models()
    assert_user_facing(err.value, "404 page not found", "update Ollama")
    with pytest.raises(OllamaServerError):  # a missing route is not a missing model
        client.embed("all-minilm", ["x"])
    client.close()


@pytest.mark.parametrize("host", ["http://[::1", "http://bad host", "http://h:port", "h:99999"])
def test_invalid_host_is_a_user_error(host: str) -> None:
    with pytest.raises(OllamaUnavailable, match="is not a valid Ollama address"):
        OllamaClient(host, timeout_s=1.0)


def test_the_official_client_is_imported_at_the_first_call_not_before(ollama_server) -> None:  # type: ignore[no-untyped-def]
    """A command that never talks to Ollama (a no-change `ftrag index`) does not pay the 0.4 s
    import of ollama and httpx; the first call makes the client."""
    code = (
        "import sys\n"
        "from ftrag_desktop.core.llm import OllamaClient\n"
        f"client = OllamaClient({ollama_server.url!r})\n"
        "assert 'ollama' not in sys.modules and 'httpx' not in sys.modules\n"
        "print(client.version())\n"
        "assert 'ollama' in sys.modules\n"
        "client.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()  # the server's version, through the client made on the call


def test_pull_streams_progress_and_the_model_appears(ollama_server) -> None:  # type: ignore[no-untyped-def]
    from ftrag_desktop.core.llm import OllamaClient

    client = OllamaClient(ollama_server.url)
    assert not client.has_model("qwen2.5:0.5b")
    steps = list(client.pull("qwen2.5:0.5b"))
    assert steps[-1].status == "success"
    done = [p for p in steps if p.total]
    assert done and done[-1].completed == done[-1].total
    assert client.has_model("qwen2.5:0.5b")


def test_pull_of_an_unknown_model_is_a_clear_error(ollama_server) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from ftrag_desktop.core.llm import OllamaClient
    from ftrag_desktop.errors import OllamaError

    with pytest.raises(OllamaError) as exc:
        list(OllamaClient(ollama_server.url).pull("no-such-model-anywhere"))
    assert "file does not exist" in str(exc.value)


# --- the retry policy (see the top of core/llm.py), checked in the server's request log ----------


def test_a_500_on_embed_is_retried_with_backoff_then_reported(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = "500"
    with pytest.raises(OllamaServerError) as err:
        client.embed("all-minilm", ["x"])
    assert err.value.status_code == 500
    assert len(ollama_server.bodies("/api/embed")) == 1 + len(RETRY_DELAYS_S)


def test_a_passing_500_on_embed_is_ridden_over(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.embed_backend = "hash"
    ollama_server.fault = "500"
    ollama_server.fault_budget = 2  # the runner crashes twice, then is back
    assert len(client.embed("all-minilm", ["x", "y"])) == 2
    assert len(ollama_server.bodies("/api/embed")) == 3
    assert ollama_server.fault is None


@pytest.mark.parametrize("fault", ["500", "404", "context"])
def test_chat_errors_are_not_retried(
    fault: str, client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = fault
    with pytest.raises(UserError):
        list(client.chat_stream("llama3.2", user("hi")))
    assert len(ollama_server.bodies("/api/chat")) == 1


@pytest.mark.parametrize("fault", ["404", "context"])
def test_embed_client_errors_are_not_retried(
    fault: str, client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = fault
    with pytest.raises((ModelNotFound, ContextOverflow)):
        client.embed("all-minilm", ["x"])
    assert len(ollama_server.bodies("/api/embed")) == 1


def test_time_outs_are_not_retried(ollama_server: OllamaTestServer) -> None:
    ollama_server.fault = "slow"
    ollama_server.delay_s = 5.0
    client = OllamaClient(ollama_server.url, timeout_s=0.3, connect_timeout_s=1.0)
    with pytest.raises(OllamaTimeout):
        client.embed("all-minilm", ["x"])
    with pytest.raises(OllamaTimeout):
        list(client.chat_stream("llama3.2", user("hi")))
    assert len(ollama_server.bodies("/api/embed")) == 1
    assert len(ollama_server.bodies("/api/chat")) == 1
    client.close()


def test_a_refused_connection_before_any_token_is_retried(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = "down"
    ollama_server.reply = "after the restart"
    restart = threading.Timer(0.2, ollama_server.up)
    restart.start()
    try:
        answer = "".join(d.content for d in client.chat_stream("llama3.2", user("q")))
    finally:
        restart.join()
    assert answer == "after the restart"
    assert len(ollama_server.bodies("/api/chat")) == 1  # the refused tries never arrived


def test_a_stalled_stream_is_a_timeout_that_keeps_what_came(
    ollama_server: OllamaTestServer,
) -> None:
    ollama_server.reply = "first second third"
    ollama_server.token_delay_s = 2.0
    client = OllamaClient(ollama_server.url, timeout_s=0.3, connect_timeout_s=1.0)
    received: list[str] = []
    with pytest.raises(OllamaTimeout) as err:
        for delta in client.chat_stream("llama3.2", user("q")):
            received.append(delta.content)
    assert received == ["first"]
    assert_user_facing(err.value, "The answer stalled", "sent nothing for 0.3 s")
    assert len(ollama_server.bodies("/api/chat")) == 1
    client.close()


def test_the_health_probe_is_one_short_try(ollama_server: OllamaTestServer) -> None:
    client = OllamaClient(ollama_server.url, timeout_s=30.0, connect_timeout_s=1.0)
    ollama_server.fault = "slow"
    ollama_server.delay_s = 5.0
    with pytest.raises(OllamaTimeout) as err:
        client.version(timeout_s=0.3, retry=False)
    assert "did not answer within 0.3 s" in err.value.message
    assert len([r for r in ollama_server.requests if r.path == "/api/version"]) == 1
    ollama_server.fault = None
    assert client.version(timeout_s=0.3, retry=False) == "0.34.1"
    client.close()
