"""The Ollama-protocol test server, driven by the official `ollama` client over real HTTP."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import ollama
import pytest

from tests.ollama_server import (
    ADAPTER_REFUSED,
    CONTEXT_ERROR,
    NOT_GGUF,
    OllamaTestServer,
    hash_embed,
    normalize_name,
    read_gguf_metadata,
    write_minimal_gguf,
)

SOURCES_PROMPT = (
    "Answer from the sources.\n\n"
    "[1] guide.md > Setup\nInstall the package with pip and run the setup wizard first.\n\n"
    "[2] faq.md\nThe wizard asks for a folder.\n\nQuestion: how do I install it?"
)


@pytest.fixture
def client(ollama_server: OllamaTestServer) -> Iterator[ollama.Client]:
    with ollama.Client(host=ollama_server.url, timeout=httpx.Timeout(10.0, connect=2.0)) as c:
        yield c


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def gguf_blob(client: ollama.Client, tmp_path: Path, **meta: str | int) -> str:
    metadata: dict[str, str | int] = {"general.architecture": "llama", **meta}
    return client.create_blob(write_minimal_gguf(tmp_path / "model.gguf", metadata))


# --- discovery -------------------------------------------------------------------------------


def test_version_and_root(ollama_server: OllamaTestServer) -> None:
    assert httpx.get(f"{ollama_server.url}/api/version").json() == {"version": "0.34.1"}
    assert httpx.get(ollama_server.url).text == "Ollama is running"
    missing = httpx.get(f"{ollama_server.url}/api/nothing")
    assert missing.status_code == 404


def test_tags_lists_default_models_with_details(client: ollama.Client) -> None:
    models = {m.model: m for m in client.list().models}
    assert set(models) == {
        "llama3.2:latest",
        "smollm2:135m",
        "nomic-embed-text:latest",
        "all-minilm:latest",
    }
    llama = models["llama3.2:latest"]
    assert llama.details is not None
    assert (llama.details.family, llama.details.parameter_size) == ("llama", "3.2B")
    assert llama.details.quantization_level == "Q4_K_M"
    assert llama.details.format == "gguf"
    assert isinstance(llama.modified_at, datetime) and llama.modified_at.tzinfo is not None
    assert llama.size and llama.size > 1_000_000_000
    assert llama.digest and len(llama.digest) == 64


def test_show_resolves_short_names_and_reports_model_info(client: ollama.Client) -> None:
    info = client.show("llama3.2")
    assert info.modelinfo is not None
    assert info.modelinfo["general.architecture"] == "llama"
    assert info.modelinfo["llama.context_length"] == 131072
    assert info.capabilities == ["completion"]
    assert info.modelfile and "FROM llama3.2:latest" in info.modelfile
    embed = client.show("nomic-embed-text")
    assert embed.capabilities == ["embedding"]
    assert embed.modelinfo is not None and embed.modelinfo["nomic-bert.context_length"] == 2048


def test_unknown_model_is_a_404_with_ollamas_text(client: ollama.Client) -> None:
    for call in (
        lambda: client.show("nope"),
        lambda: client.chat("nope", messages=user("hi")),
        lambda: client.generate("nope", prompt="hi"),
        lambda: client.embed("nope", input="hi"),
    ):
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == 404
        assert err.value.error == 'model "nope" not found, try pulling it first'


def test_bad_json_and_missing_model_are_400(ollama_server: OllamaTestServer) -> None:
    bad = httpx.post(f"{ollama_server.url}/api/chat", content=b"{not json")
    assert bad.status_code == 400 and "error" in bad.json()
    no_model = httpx.post(f"{ollama_server.url}/api/chat", json={"messages": []})
    assert no_model.status_code == 400
    assert no_model.json() == {"error": "model is required"}


def test_name_normalisation() -> None:
    assert normalize_name("llama3.2") == "llama3.2:latest"
    assert normalize_name("Smollm2:135M") == "smollm2:135m"
    assert normalize_name("user/model") == "user/model:latest"


# --- chat and generate -----------------------------------------------------------------------


def test_chat_stream_cites_sources_and_ends_with_stats(
    client: ollama.Client, ollama_server: OllamaTestServer
) -> None:
    parts = list(client.chat("llama3.2", messages=user(SOURCES_PROMPT), stream=True))
    body, final = parts[:-1], parts[-1]
    assert len(body) > 5 and all(not p.done for p in body)
    assert all(p.message.role == "assistant" and p.created_at for p in parts)
    answer = "".join(p.message.content or "" for p in body)
    assert '"Install the package with pip and run the" [1]' in answer
    assert "[1]" in answer and "[2]" in answer
    assert final.done and final.done_reason == "stop"
    assert final.eval_count == len(body)
    assert final.prompt_eval_count and final.prompt_eval_count > 20
    for stat in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(getattr(final, stat), int), stat
    assert ollama_server.chat_count == 1


def test_chat_without_sources_says_it_does_not_know(client: ollama.Client) -> None:
    response = client.chat("smollm2:135m", messages=user("What is the moon made of?"))
    assert response.message.content == "I don't know."
    assert response.done and response.eval_count == 3


def test_chat_reply_override_and_recorded_options(
    client: ollama.Client, ollama_server: OllamaTestServer
) -> None:
    ollama_server.reply = "Exactly this text."
    parts = list(
        client.chat(
            "llama3.2",
            messages=user("q"),
            stream=True,
            options={"num_ctx": 8192, "temperature": 0.1},
            keep_alive="10m",
        )
    )
    assert "".join(p.message.content or "" for p in parts) == "Exactly this text."
    (body,) = ollama_server.bodies("/api/chat")
    assert body["options"] == {"num_ctx": 8192, "temperature": 0.1}
    assert body["keep_alive"] == "10m"
    assert body["messages"] == [{"role": "user", "content": "q"}]

    ollama_server.reply = lambda messages: (
        f"{len(messages)} messages, last: {messages[-1]['content']}"
    )
    response = client.chat("llama3.2", messages=[*user("a"), *user("b")])
    assert response.message.content == "2 messages, last: b"


def test_num_predict_cuts_the_answer(
    client: ollama.Client, ollama_server: OllamaTestServer
) -> None:
    ollama_server.reply = "one two three four five six"
    response = client.chat("llama3.2", messages=user("q"), options={"num_predict": 2})
    assert response.message.content == "one two"
    assert response.done_reason == "length" and response.eval_count == 2


def test_generate_stream_and_single_object(client: ollama.Client) -> None:
    parts = list(client.generate("llama3.2", prompt=SOURCES_PROMPT, stream=True))
    assert parts[-1].done and parts[-1].done_reason == "stop"
    streamed = "".join(p.response or "" for p in parts)
    single = client.generate("llama3.2", prompt=SOURCES_PROMPT)
    assert single.done and single.response == streamed and "[1]" in streamed


def test_ps_lists_models_used_recently(client: ollama.Client) -> None:
    assert client.ps().models == []
    client.chat("llama3.2", messages=user("hi"))
    (running,) = client.ps().models
    assert running.model == "llama3.2:latest" and running.expires_at is not None


# --- embeddings -------------------------------------------------------------------------------


def test_embed_with_real_minilm(client: ollama.Client, ollama_server: OllamaTestServer) -> None:
    texts = ["A cat sits on the mat.", "A kitten is resting on a rug.", "Stock markets fell."]
    response = client.embed("all-minilm", input=texts)
    vectors = response.embeddings
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-3) for v in vectors)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    v = [list(x) for x in vectors]
    assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.2
    assert response.prompt_eval_count and response.prompt_eval_count > 10
    single = client.embed("nomic-embed-text", input="A cat sits on the mat.")
    assert len(single.embeddings) == 1
    assert ollama_server.embed_count == 4


def test_hash_backend_is_deterministic(
    client: ollama.Client, ollama_server: OllamaTestServer
) -> None:
    ollama_server.embed_backend = "hash"
    first = client.embed("all-minilm", input=["alpha beta", "gamma"]).embeddings
    again = client.embed("all-minilm", input=["alpha beta"]).embeddings
    assert list(first[0]) == list(again[0]) == hash_embed("alpha beta")
    assert list(first[0]) != list(first[1])


def test_embed_without_truncation_refuses_long_input(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.embed("all-minilm", input="word " * 400, truncate=False)
    assert err.value.status_code == 400 and err.value.error == CONTEXT_ERROR


# --- pull, blobs, create, delete --------------------------------------------------------------


def test_pull_streams_progress_and_installs(
    client: ollama.Client, ollama_server: OllamaTestServer
) -> None:
    progress = list(client.pull("mxbai-embed-large", stream=True))
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    layer = [p for p in progress if p.digest]
    assert len(layer) >= 3
    completed = [p.completed or 0 for p in layer]
    assert completed == sorted(completed) and completed[-1] == layer[0].total
    assert "mxbai-embed-large:latest" in {m.model for m in client.list().models}
    assert client.pull("qwen2.5:0.5b").status == "success"


def test_pull_unknown_model_fails_with_ollamas_text(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError, match="pull model manifest: file does not exist"):
        list(client.pull("no-such-model", stream=True))
    with pytest.raises(ollama.ResponseError) as err:
        client.pull("no-such-model")
    assert err.value.status_code == 500


def test_blob_head_and_upload_verifies_the_digest(
    client: ollama.Client, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    data = b"GGUF" + b"\x00" * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    url = f"{ollama_server.url}/api/blobs/{digest}"
    assert httpx.head(url).status_code == 404

    other = "sha256:" + hashlib.sha256(b"other").hexdigest()
    bad = httpx.post(f"{ollama_server.url}/api/blobs/{other}", content=data)
    assert bad.status_code == 400
    assert bad.json() == {"error": f"digest mismatch, expected {other}, got {digest}"}
    assert httpx.head(f"{ollama_server.url}/api/blobs/{other}").status_code == 404

    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert client.create_blob(path) == digest
    assert httpx.head(url).status_code == 200
    assert ollama_server.blobs[digest].read_bytes() == data


def test_create_from_gguf_blob_appears_in_tags(client: ollama.Client, tmp_path: Path) -> None:
    meta: dict[str, str | int] = {
        "llama.context_length": 4096,
        "general.size_label": "135M",
        "general.file_type": 3,
    }
    digest = gguf_blob(client, tmp_path, **meta)
    progress = list(
        client.create(
            "my-finetune",
            files={"model.gguf": digest},
            system="You answer from the sources.",
            parameters={"temperature": 0.2},
            stream=True,
        )
    )
    assert progress[-1].status == "success"
    tags = {m.model: m for m in client.list().models}
    created = tags["my-finetune:latest"]
    assert created.details is not None
    assert (created.details.family, created.details.parameter_size) == ("llama", "135M")
    assert created.details.quantization_level == "Q4_1"
    info = client.show("my-finetune")
    assert info.modelinfo is not None and info.modelinfo["llama.context_length"] == 4096
    assert info.modelfile and 'SYSTEM """You answer from the sources."""' in info.modelfile
    assert info.parameters and "temperature" in info.parameters
    # the new model chats like any other
    assert client.chat("my-finetune", messages=user("hi")).message.content == "I don't know."


def test_create_refuses_non_gguf_and_unknown_blobs(client: ollama.Client, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"PK\x03\x04 not a gguf")
    digest = client.create_blob(junk)
    with pytest.raises(ollama.ResponseError, match=NOT_GGUF):
        list(client.create("bad", files={"junk.gguf": digest}, stream=True))
    with pytest.raises(ollama.ResponseError) as err:
        client.create("bad", files={"junk.gguf": digest})
    assert err.value.status_code == 400 and err.value.error == NOT_GGUF

    missing = "sha256:" + "0" * 64
    with pytest.raises(ollama.ResponseError, match=f"blob {missing} not found"):
        client.create("bad", files={"x.gguf": missing})
    with pytest.raises(ollama.ResponseError) as err:
        client.create("bad", from_="no-such-base")
    assert err.value.error == 'model "no-such-base" not found, try pulling it first'
    with pytest.raises(ollama.ResponseError, match="neither 'from' or 'files'"):
        client.create("bad")
    assert "bad:latest" not in {m.model for m in client.list().models}


def test_create_from_existing_model_copies_and_overrides(client: ollama.Client) -> None:
    assert client.create("helper", from_="llama3.2", system="Be brief.").status == "success"
    info = client.show("helper")
    assert info.details is not None and info.details.parent_model == "llama3.2:latest"
    assert info.modelinfo is not None and info.modelinfo["llama.context_length"] == 131072
    assert info.modelfile and 'SYSTEM """Be brief."""' in info.modelfile


def test_adapters_are_refused_like_current_ollama(
    client: ollama.Client, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    adapter = gguf_blob(client, tmp_path, **{"general.type": "adapter"})
    with pytest.raises(ollama.ResponseError) as err:
        list(client.create("tuned", from_="llama3.2", adapters={"a.gguf": adapter}, stream=True))
    assert err.value.error == ADAPTER_REFUSED
    assert "tuned:latest" not in {m.model for m in client.list().models}

    ollama_server.allow_adapters = True
    with pytest.raises(ollama.ResponseError, match="only one adapter"):
        client.create("tuned", from_="llama3.2", adapters={"a.gguf": adapter, "b": adapter})
    assert client.create("tuned", from_="llama3.2", adapters={"a.gguf": adapter}).status
    assert "tuned:latest" in {m.model for m in client.list().models}


def test_delete(client: ollama.Client) -> None:
    assert client.delete("smollm2:135m").status == "success"
    assert "smollm2:135m" not in {m.model for m in client.list().models}
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("smollm2:135m")
    assert err.value.status_code == 404


def test_gguf_metadata_of_the_real_smollm2() -> None:
    from tests.ollama_server import smollm2_path

    with smollm2_path().open("rb") as f:
        meta = read_gguf_metadata(f)
    assert meta["general.architecture"] == "llama"
    assert meta["llama.context_length"] == 8192


# --- faults ------------------------------------------------------------------------------------


def test_fault_down_refuses_connections_and_up_reuses_the_port(
    client: ollama.Client, ollama_server: OllamaTestServer
) -> None:
    port = ollama_server.port
    assert client.list().models  # a pooled keep-alive connection now exists
    ollama_server.fault = "down"
    with pytest.raises(ConnectionError):
        client.list()
    with pytest.raises(httpx.ConnectError):
        list(client.chat("llama3.2", messages=user("hi"), stream=True))
    ollama_server.up()
    assert ollama_server.port == port and ollama_server.fault is None
    assert client.list().models


def test_fault_slow_times_out_a_short_client(ollama_server: OllamaTestServer) -> None:
    ollama_server.fault = "slow"
    ollama_server.delay_s = 5.0
    with (
        ollama.Client(host=ollama_server.url, timeout=httpx.Timeout(0.3, connect=1.0)) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.list()
    ollama_server.delay_s = 0.05
    with ollama.Client(host=ollama_server.url, timeout=httpx.Timeout(5.0, connect=1.0)) as patient:
        assert patient.list().models


def test_fault_drop_cuts_the_stream_after_a_few_tokens(
    client: ollama.Client, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = "drop"
    ollama_server.drop_after = 2
    received: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        for part in client.chat("llama3.2", messages=user(SOURCES_PROMPT), stream=True):
            received.append(part.message.content or "")
    assert len(received) == 2
    with pytest.raises(httpx.RemoteProtocolError):
        client.chat("llama3.2", messages=user("hi"))


def test_fault_404_hides_every_model(
    client: ollama.Client, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = "404"
    assert client.list().models == []
    with pytest.raises(ollama.ResponseError) as err:
        list(client.chat("llama3.2", messages=user("hi"), stream=True))
    assert err.value.status_code == 404
    ollama_server.fault = None
    assert client.chat("llama3.2", messages=user("hi")).done


def test_fault_500_keeps_the_server_text(
    client: ollama.Client, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault = "500"
    ollama_server.error_text = "llama runner process has terminated: signal: killed"
    with pytest.raises(ollama.ResponseError) as err:
        client.embed("all-minilm", input="x")
    assert err.value.status_code == 500
    assert err.value.error == "llama runner process has terminated: signal: killed"
    assert httpx.get(f"{ollama_server.url}/api/version").status_code == 200


def test_fault_context(client: ollama.Client, ollama_server: OllamaTestServer) -> None:
    ollama_server.fault = "context"
    for call in (
        lambda: list(client.chat("llama3.2", messages=user("hi"), stream=True)),
        lambda: client.embed("all-minilm", input="x"),
    ):
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == 400 and err.value.error == CONTEXT_ERROR


def test_fault_no_embed(client: ollama.Client, ollama_server: OllamaTestServer) -> None:
    ollama_server.fault = "no_embed"
    names = {m.model for m in client.list().models}
    assert names == {"llama3.2:latest", "smollm2:135m"}
    with pytest.raises(ollama.ResponseError) as err:
        client.embed("nomic-embed-text", input="x")
    assert err.value.status_code == 404
    assert client.chat("llama3.2", messages=user("hi")).done


def test_reset_restores_everything(client: ollama.Client, ollama_server: OllamaTestServer) -> None:
    client.delete("all-minilm")
    ollama_server.reply = "x"
    ollama_server.fault = "down"
    ollama_server.reset()
    assert ollama_server.fault is None and ollama_server.reply is None
    assert ollama_server.requests == [] and ollama_server.embed_count == 0
    assert "all-minilm:latest" in {m.model for m in client.list().models}


def test_unknown_fault_is_rejected(ollama_server: OllamaTestServer) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        ollama_server.fault = "flaky"


def test_server_logged_no_unexpected_errors(ollama_server_session: OllamaTestServer) -> None:
    # Runs after the tests above in this module: handler threads raised nothing unexpected.
    assert ollama_server_session.errors == []
