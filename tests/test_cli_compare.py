"""`ftrag compare`: one question, several model/RAG configurations, figures, saved, --json."""

from __future__ import annotations

import json
from pathlib import Path

from ftrag_desktop.core.conversations import ConversationStore
from ftrag_desktop.paths import Home
from tests.test_cli import folder, ftrag

__all__ = ["folder"]


def test_compare_json_rag_and_norag(capsys, folder: Path, ollama_server, ftrag_home: Path) -> None:  # type: ignore[no-untyped-def]
    url = ollama_server.url
    assert ftrag(capsys, url, "index", str(folder), "-q")[0] == 0
    code, out, _ = ftrag(
        capsys,
        url,
        "compare",
        "How hot should the water be for green tea?",
        "--config",
        "llama3.2",
        "--config",
        "llama3.2:norag",
        "--k",
        "2",
        "--json",
    )
    assert code == 0
    doc = json.loads(out)
    assert [c["rag"] for c in doc["configs"]] == [True, False]
    with_docs, alone = doc["answers"]
    assert with_docs["text"] and alone["text"]
    assert with_docs["sources"] and with_docs["sources"][0]["path"].endswith("tea.md")
    assert alone["sources"] == []
    for answer in (with_docs, alone):
        m = answer["metrics"]
        assert m["first_token_s"] is not None and 0 <= m["first_token_s"] <= m["total_s"]
        assert m["prompt_tokens"] and m["prompt_tokens"] > 0
    assert with_docs["metrics"]["prompt_tokens"] > alone["metrics"]["prompt_tokens"]
    saved = ConversationStore(Home(ftrag_home).conversations_dir).load(doc["conversation_id"])
    assert saved.comparisons[0].question == "How hot should the water be for green tea?"


def test_compare_text_output_and_a_missing_model(capsys, folder: Path, ollama_server) -> None:  # type: ignore[no-untyped-def]
    url = ollama_server.url
    code, out, err = ftrag(
        capsys, url, "compare", "Tea?", "--config", "llama3.2:norag", "--config", "nope:norag"
    )
    assert code == 0  # one configuration answered
    assert "== #1 llama3.2 alone ==" in out and "first token" in out
    assert "nope" in err


def test_compare_needs_a_model(capsys, ollama_server) -> None:  # type: ignore[no-untyped-def]
    code, _, err = ftrag(capsys, ollama_server.url, "compare", "Tea?", "--config", ":rag")
    assert code == 1 and "needs a model name" in err
