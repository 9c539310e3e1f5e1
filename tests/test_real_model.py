"""A real (tiny) model behind the Ollama protocol: SmolLM2-135M through llama-cpp-python."""

from __future__ import annotations

import pytest

from ftrag_desktop.core.llm import OllamaClient
from ftrag_desktop.errors import ContextOverflow
from tests.ollama_server import OllamaTestServer

pytestmark = pytest.mark.slow


def test_real_model_streams_an_answer_with_token_stats(ollama_server: OllamaTestServer) -> None:
    ollama_server.chat_backend = "llama"
    client = OllamaClient(ollama_server.url, timeout_s=120.0)
    messages = [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name one colour of the sky."},
    ]
    deltas = list(
        client.chat_stream(
            "smollm2:135m", messages, options={"num_predict": 12, "temperature": 0.0, "seed": 1}
        )
    )
    *body, last = deltas
    answer = "".join(d.content for d in deltas)
    assert answer.strip(), "the model produced no text"
    assert last.done and last.stats is not None
    stats = last.stats
    assert 1 <= stats.completion_tokens <= 12
    assert stats.completion_tokens == len(body)  # one streamed piece per generated token
    assert stats.prompt_tokens >= 10  # system + user turn through the chat template
    assert stats.done_reason in ("stop", "length")
    assert stats.total_s > 0
    (sent,) = ollama_server.bodies("/api/chat")
    assert sent["options"]["num_predict"] == 12
    client.close()


def test_real_model_reports_an_overlong_prompt(ollama_server: OllamaTestServer) -> None:
    ollama_server.chat_backend = "llama"
    client = OllamaClient(ollama_server.url, timeout_s=120.0)
    long_prompt = "Summarise: " + "the quick brown fox jumps over the lazy dog " * 40
    with pytest.raises(ContextOverflow):
        list(
            client.chat_stream(
                "smollm2:135m",
                [{"role": "user", "content": long_prompt}],
                options={"num_ctx": 128, "num_predict": 4},
            )
        )
    client.close()
