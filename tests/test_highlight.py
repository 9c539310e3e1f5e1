"""Supporting-span highlighting and passage finding (core, no Qt)."""

from __future__ import annotations

from ftrag_desktop.core.highlight import (
    answer_sentences,
    answer_sentences_citing,
    content_words,
    find_passage,
    merge_spans,
    stem,
    supporting_spans,
)

PASSAGE = (
    "The capybara is the largest living rodent. "
    "In winter, capybaras in Japanese zoos bathe in hot springs for hours. "
    "Their teeth grow continuously throughout their lives.\n\n"
    "Keepers report that the animals are calm."
)


def _texts(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[a:b] for a, b in spans]


def test_sentence_sharing_content_words_is_highlighted() -> None:
    answer = "Capybaras bathing in hot springs is a winter habit in Japan [1]."
    spans = supporting_spans(PASSAGE, answer)
    assert _texts(PASSAGE, spans) == [
        "In winter, capybaras in Japanese zoos bathe in hot springs for hours."
    ]


def test_unrelated_answer_highlights_nothing() -> None:
    assert supporting_spans(PASSAGE, "The Eiffel Tower was finished in 1889 [2].") == []
    assert supporting_spans(PASSAGE, "") == []
    assert supporting_spans("", "Capybaras bathe in hot springs.") == []


def test_stopwords_alone_do_not_count_as_support() -> None:
    # Shares "the", "is", "in", "their", "are", "that" with the passage, but nothing meaningful.
    assert supporting_spans(PASSAGE, "That is the one that they are in, and it is theirs.") == []


def test_min_words_threshold() -> None:
    answer = "Rodent teeth keep growing."  # shares teeth, grow (stemmed) with one sentence
    assert supporting_spans(PASSAGE, answer) == []
    spans = supporting_spans(PASSAGE, answer, min_words=2)
    assert _texts(PASSAGE, spans) == ["Their teeth grow continuously throughout their lives."]


def test_each_answer_sentence_marks_its_best_sentence_and_spans_merge() -> None:
    answer = (
        "Capybaras bathe in hot springs in Japanese zoos [1]. "
        "Their teeth grow continuously through life [1]."
    )
    spans = supporting_spans(PASSAGE, answer)
    # Two adjacent sentences, separated only by a space, become one span.
    assert len(spans) == 1
    text = PASSAGE[spans[0][0] : spans[0][1]]
    assert text.startswith("In winter") and text.endswith("lives.")
    assert "largest" not in text and "Keepers" not in text


def test_verbatim_quote_is_highlighted_inside_a_long_sentence() -> None:
    long_sentence = (
        "Table 3 lists every measurement " + "and another unrelated clause " * 20 + "where "
        "the quick brown fox jumps over the lazy dog near the river bank"
    )
    spans = supporting_spans(long_sentence, 'It says "the quick brown fox jumps over" [1].')
    assert spans, "a five-word verbatim run must be highlighted"
    marked = "".join(_texts(long_sentence, spans))
    assert "quick brown fox jumps over" in marked
    assert "Table 3" not in marked


def test_spans_are_sorted_and_disjoint() -> None:
    answer = "Keepers say the animals are calm [1]. The capybara is the largest rodent [1]."
    spans = supporting_spans(PASSAGE, answer, min_words=2)
    assert spans == sorted(spans)
    assert all(a < b for a, b in spans)
    assert all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))
    marked = _texts(PASSAGE, spans)
    assert any("largest living rodent" in m for m in marked)
    assert any("Keepers report" in m for m in marked)
    assert not any("teeth" in m for m in marked)


def test_answer_sentences_keep_trailing_citations() -> None:
    answer = "Capybaras like warm water. [1] They eat grass [2].\n\n- A list item [1, 3]\n- Another"
    assert answer_sentences(answer) == [
        "Capybaras like warm water. [1]",
        "They eat grass [2].",
        "- A list item [1, 3]",
        "- Another",
    ]


def test_answer_sentences_citing() -> None:
    answer = "Alpha is first [1]. Beta follows [2][3]. Gamma spans [1-3]. Delta [4]."
    assert answer_sentences_citing(answer, 1) == ["Alpha is first [1].", "Gamma spans [1-3]."]
    assert answer_sentences_citing(answer, 3) == ["Beta follows [2][3].", "Gamma spans [1-3]."]
    assert answer_sentences_citing(answer, 5) == []
    assert answer_sentences_citing("No citations here.", 1) == []


def test_stemming_and_content_words() -> None:
    assert stem("Springs") == stem("spring")
    assert stem("studies") == stem("study")
    assert stem("bathing") == stem("bathed")
    assert content_words("The cats and the dog") == {"cat", "dog"}


def test_merge_spans_joins_overlaps_and_whitespace_gaps() -> None:
    text = "aaaa bbbb, cccc"
    assert merge_spans([(5, 9), (0, 4)], text) == [(0, 9)]
    assert merge_spans([(0, 4), (11, 15)], text) == [(0, 4), (11, 15)]
    assert merge_spans([(0, 6), (3, 9)]) == [(0, 9)]


def test_find_passage_across_different_whitespace() -> None:
    page = "Header line\r\nwritten and an impression of the\r\nlook. This text should contain all"
    passage = "written and an impression of the look. This text"
    span = find_passage(page, passage)
    assert span is not None
    assert page[span[0] : span[1]] == "written and an impression of the\r\nlook. This text"


def test_find_passage_none_when_absent() -> None:
    assert find_passage("completely different words here today", "capybaras bathe in hot") is None
    assert find_passage("", "anything") is None
    # A single shared word is not a match.
    assert find_passage("springs are warm", "hot springs in Japan") is None
