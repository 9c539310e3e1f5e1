"""OllamaEmbedder and probe_embedder against the test server (real MiniLM where it matters)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from ftrag_desktop.core.embed import (
    MXBAI_QUERY,
    Embedder,
    EmbedderStatus,
    OllamaEmbedder,
    prefixes_for,
    probe_embedder,
)
from ftrag_desktop.core.llm import OllamaClient
from ftrag_desktop.errors import ModelNotFound, OllamaUnavailable
from tests.ollama_server import OllamaTestServer, hash_embed


@pytest.fixture
def client(ollama_server: OllamaTestServer) -> Iterator[OllamaClient]:
    c = OllamaClient(ollama_server.url, timeout_s=30.0, connect_timeout_s=2.0)
    yield c
    c.close()


def inputs(server: OllamaTestServer) -> list[list[str]]:
    return [body["input"] for body in server.bodies("/api/embed")]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("nomic-embed-text", ("search_document: ", "search_query: ")),
        ("nomic-embed-text:v1.5", ("search_document: ", "search_query: ")),
        ("mxbai-embed-large:latest", ("", MXBAI_QUERY)),
        ("snowflake-arctic-embed:335m", ("", MXBAI_QUERY)),
        ("snowflake-arctic-embed2", ("", MXBAI_QUERY)),
        ("bge-m3", ("", "")),
        ("bge-large:335m", ("", "")),
        ("all-minilm:l6-v2", ("", "")),
        ("some-new-embedder", ("", "")),
    ],
)
def test_prefix_table(model: str, expected: tuple[str, str]) -> None:
    assert prefixes_for(model) == expected


def test_nomic_prefixes_reach_the_server(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.embed_backend = "hash"
    embedder: Embedder = OllamaEmbedder(client, "nomic-embed-text")
    docs = embedder.embed_documents(["alpha text", "beta text"])
    query = embedder.embed_query("what is alpha?")
    assert inputs(ollama_server) == [
        ["search_document: alpha text", "search_document: beta text"],
        ["search_query: what is alpha?"],
    ]
    # the vectors are those of the prefixed texts, in order
    assert docs == [
        hash_embed("search_document: alpha text"),
        hash_embed("search_document: beta text"),
    ]
    assert query == hash_embed("search_query: what is alpha?")


def test_query_only_prefix_and_no_prefix(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.embed_backend = "hash"
    ollama_server.add_model(ollama_server.library["mxbai-embed-large:latest"])
    mxbai = OllamaEmbedder(client, "mxbai-embed-large")
    mxbai.embed_documents(["doc"])
    mxbai.embed_query("q")
    minilm = OllamaEmbedder(client, "all-minilm")
    minilm.embed_documents(["doc"])
    minilm.embed_query("q")
    assert inputs(ollama_server) == [["doc"], [MXBAI_QUERY + "q"], ["doc"], ["q"]]


def test_batching_keeps_order_and_embeds_each_text_once(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.embed_backend = "hash"
    texts = [f"passage number {i}" for i in range(10)]
    embedder = OllamaEmbedder(client, "all-minilm", batch_size=4)
    vectors = embedder.embed_documents(texts)
    assert [len(batch) for batch in inputs(ollama_server)] == [4, 4, 2]  # ceil(10 / 4) requests
    assert vectors == [hash_embed(t) for t in texts]
    assert ollama_server.embed_count == len(texts)
    assert embedder.embed_documents([]) == []
    assert len(ollama_server.bodies("/api/embed")) == 3


def test_dimension_is_learned_or_probed(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    ollama_server.embed_backend = "hash"
    learned = OllamaEmbedder(client, "all-minilm")
    learned.embed_documents(["x"])
    assert learned.dimension() == 384
    assert len(ollama_server.bodies("/api/embed")) == 1  # no extra request

    probed = OllamaEmbedder(client, "nomic-embed-text")
    assert probed.dimension() == 384
    assert probed.dimension() == 384
    assert len(ollama_server.bodies("/api/embed")) == 2  # one probe, then cached


def test_real_minilm_ranks_a_paraphrase_above_an_unrelated_sentence(
    client: OllamaClient, ollama_server: OllamaTestServer
) -> None:
    assert ollama_server.embed_backend == "minilm"
    embedder = OllamaEmbedder(client, "all-minilm")
    paraphrase, unrelated = embedder.embed_documents(
        [
            "The invoice must be paid within thirty days of receipt.",
            "Penguins live mostly in the southern hemisphere.",
        ]
    )
    query = embedder.embed_query("How long do I have to pay the bill?")
    assert len(query) == 384
    assert cosine(query, paraphrase) > cosine(query, unrelated) + 0.2


def test_embedder_errors_are_typed(client: OllamaClient, ollama_server: OllamaTestServer) -> None:
    with pytest.raises(ModelNotFound):
        OllamaEmbedder(client, "not-installed").embed_query("x")
    ollama_server.fault = "down"
    with pytest.raises(OllamaUnavailable):
        OllamaEmbedder(client, "all-minilm").embed_documents(["x"])


def test_probe_reachable(client: OllamaClient, ollama_server: OllamaTestServer) -> None:
    ollama_server.embed_backend = "hash"
    status = probe_embedder(client, "nomic-embed-text")
    assert status == EmbedderStatus(True, "nomic-embed-text", 384, "")
    (sent,) = inputs(ollama_server)
    assert sent[0].startswith("search_query: ")


def test_probe_down(client: OllamaClient, ollama_server: OllamaTestServer) -> None:
    ollama_server.fault = "down"
    status = probe_embedder(client, "nomic-embed-text")
    assert not status.available and status.dimension == 0
    assert status.reason == f"Ollama is not running at {ollama_server.url}"


def test_probe_missing_model(client: OllamaClient, ollama_server: OllamaTestServer) -> None:
    status = probe_embedder(client, "mxbai-embed-large")
    assert not status.available
    assert status.reason == (
        "embedding model 'mxbai-embed-large' is not installed: run `ollama pull mxbai-embed-large`"
    )
    ollama_server.fault = "no_embed"
    assert "is not installed" in probe_embedder(client, "nomic-embed-text").reason


def test_probe_server_error(client: OllamaClient, ollama_server: OllamaTestServer) -> None:
    ollama_server.fault = "500"
    ollama_server.error_text = "out of memory"
    status = probe_embedder(client, "all-minilm")
    assert not status.available and "out of memory" in status.reason
