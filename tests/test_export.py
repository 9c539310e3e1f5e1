"""A conversation exported to Markdown: questions, answers, and citations as footnotes."""

from __future__ import annotations

import re

from ftrag_desktop.core.answer import AnswerResult, Source
from ftrag_desktop.core.conversations import Conversation, ConversationStore
from ftrag_desktop.core.export import conversation_to_markdown, replace_citations
from ftrag_desktop.core.types import Hit


def _source(n: int, path: str, text: str, cited: bool, **where: object) -> Source:
    hit = Hit(f"c{n}", "d", path, text, 0.5, **where)  # type: ignore[arg-type]
    return Source(n, hit, cited)


def _conversation() -> Conversation:
    conv = Conversation("abc", "Capybara facts", "llama3.2:latest")
    conv.add_exchange(
        AnswerResult(
            question="Where do capybaras live?",
            answer="They live in South America [1] near water [1][2].\n\nSee `arr[1]` too.",
            model="llama3.2:latest",
            rag=True,
            sources=(
                _source(
                    1, "/docs/zoo/capy.pdf", "Capybaras   live in\nSouth America.", True, page=4
                ),
                _source(2, "/docs/notes.md", "They like water.", True, heading_path=("A", "B")),
                _source(3, "/docs/other.txt", "Unrelated.", False, line_start=3, line_end=9),
            ),
            total_s=2.5,
        )
    )
    conv.add_exchange(
        AnswerResult(
            question="And what do they eat?",
            answer="Grass [1, 2]. Out of range [7].\n\n```\nx = y[1]\n```",
            model="qwen2.5:3b",
            rag=True,
            sources=(
                _source(1, "/docs/diet.txt", "Mostly grass " + "and plants " * 40, True),
                _source(2, "/docs/zoo/capy.pdf", "They graze.", True, page=9),
            ),
        )
    )
    return conv


def test_export_has_title_questions_answers_and_models() -> None:
    md = conversation_to_markdown(_conversation())
    assert md.startswith("# Capybara facts\n")
    assert "> Where do capybaras live?" in md
    assert "> And what do they eat?" in md
    assert md.index("Where do capybaras") < md.index("South America [^") < md.index("what do")
    assert "`llama3.2:latest`" in md and "`qwen2.5:3b`" in md
    assert "2.5 s" in md


def test_citations_become_document_wide_unique_footnotes() -> None:
    md = conversation_to_markdown(_conversation())
    # First answer: [1] -> ^1 (twice, same label), [2] -> ^2; second answer: [1, 2] -> ^3^4.
    assert "South America [^1] near water [^1][^2]." in md
    assert "Grass [^3][^4]." in md
    refs = set(re.findall(r"\[\^(\d+)\](?!:)", md))
    defs = re.findall(r"^\[\^(\d+)\]:", md, flags=re.M)
    assert refs == set(defs) == {"1", "2", "3", "4"}
    assert len(defs) == 4  # each defined exactly once
    # Out-of-range citations and code are left alone.
    assert "Out of range [7]." in md
    assert "`arr[1]`" in md and "x = y[1]" in md


def test_footnotes_name_file_folder_place_and_quote() -> None:
    md = conversation_to_markdown(_conversation())
    defs = dict(re.findall(r"^\[\^(\d+)\]: (.*(?:\n    .*)*)", md, flags=re.M))
    assert "**capy.pdf**, p. 4 (in `/docs/zoo`)" in defs["1"]
    assert "> Capybaras live in South America." in defs["1"]  # whitespace collapsed
    assert "A > B" in defs["2"] and "notes.md" in defs["2"]
    assert "**capy.pdf**, p. 9" in defs["4"]
    quote = defs["3"].split("> ", 1)[1]
    assert quote.endswith("…") and len(quote) < 260  # a short quote, not the whole passage
    # The retrieved-only source is listed, not footnoted.
    assert "other.txt (lines 3-9)" in md.split("Also retrieved, not cited:")[1]


def test_export_round_trips_through_the_store(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = ConversationStore(tmp_path / "convs")
    conv = _conversation()
    store.save(conv)
    assert (
        conversation_to_markdown(store.load(conv.id)).split("\n", 3)[3]
        == (conversation_to_markdown(conv).split("\n", 3)[3])
    )


def test_empty_conversation_and_replace_citations_helper() -> None:
    md = conversation_to_markdown(Conversation("x", "", "m"))
    assert md.startswith("# Conversation\n") and "0 questions" in md
    seen: list[list[int]] = []

    def render(numbers: list[int], original: str) -> str:
        seen.append(numbers)
        return "<" + ",".join(map(str, numbers)) + ">"

    out = replace_citations("a [1] b [2-3] `c [1]` [9] [x] [1](http://l)", 3, render)
    assert out == "a <1> b <2,3> `c [1]` [9] [x] [1](http://l)"
    assert seen == [[1], [2, 3]]
