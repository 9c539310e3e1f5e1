"""Which part of a retrieved passage supports an answer: spans to highlight, passages to find.

Pure text functions, no Qt.  `supporting_spans` marks the passage sentences that share the most
content words with the answer sentences citing it (stopwords dropped, words lower-cased and
crudely stemmed), plus any long word sequence quoted verbatim.  `find_passage` locates a passage
inside another rendering of the same text (a PDF viewer's text layer, a file changed since it
was indexed) by the longest run of words they share.  `sentence_support` maps each sentence of
an answer to the single best-supporting span among the passages it cites (or among all of them
when it cites none): sentence-by-sentence citation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import NamedTuple

from ftrag_desktop.core.answer import parse_citations

_WORD = re.compile(r"\w+(?:['’]\w+)*")
# A sentence ends after . ! ? (with closing quotes and brackets, and any [n] citations that
# follow it) and whitespace, at a blank line, or before a list item.  `keep` stays with it.
_ANSWER_BREAK = re.compile(
    r"(?P<keep>[.!?…][\"'”’)\]]*(?:[ \t]*\[\d+(?:\s*[,;\-–]\s*\d+)*\])*)\s+"
    r"|\n\s*\n|\n(?=[ \t]*(?:[-*+]|\d+[.)])\s)"
)
_PASSAGE_BREAK = re.compile(r"(?P<keep>[.!?…][\"'”’)\]]*)\s+|\n[^\S\n]*\n\s*")
_SUB_BREAKS = (re.compile(r"(?<=[;:])\s+|\n"), re.compile(r"(?<=,)\s+"))
_WINDOW_WORDS = 30  # what is still too long is cut into runs of this many words
_MAX_SENTENCE = 320  # longer "sentences" (tables, PDF text without stops) are cut at ; : or lines
_NGRAM = 5  # a verbatim run of this many words is a quote, highlighted whatever its sentence

_STOPWORD_LIST = """a about above after again against all also am an and any are as at be
    because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves may might must shall however thus therefore e g etc via per"""
STOPWORDS = frozenset(_STOPWORD_LIST.split())
_SUFFIXES = (
    "ational", "ization", "ations", "ingly", "ation", "ments", "ness", "ment", "ings", "edly",
    "ies", "ied", "ing", "ers", "est", "ly", "ed", "er", "es", "s",
)  # fmt: skip


def stem(word: str) -> str:
    """A crude stem: the word lower-cased without its longest common suffix."""
    word = word.lower().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stemmed = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                stemmed += "y"
            return stemmed
    return word


def content_words(text: str) -> set[str]:
    """The stems of the words in `text` that carry meaning (no stopwords, no 1-letter words)."""
    return {
        stem(w)
        for w in _WORD.findall(text)
        if len(w) > 1 and w.lower() not in STOPWORDS and not w.isdigit()
    }


def _split(text: str, breaks: re.Pattern[str]) -> list[tuple[int, int]]:
    """Spans of the non-blank pieces of `text` between matches of `breaks`, stripped."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in breaks.finditer(text):
        keep = match.groupdict().get("keep")
        spans.append((start, match.end("keep") if keep is not None else match.start()))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        piece = text[a:b]
        if piece.strip():
            a += len(piece) - len(piece.lstrip())
            b -= len(piece) - len(piece.rstrip())
            out.append((a, b))
    return out


def sentence_spans(passage: str) -> list[tuple[int, int]]:
    """The passage's sentences as spans; overlong ones are cut at ; : lines, commas, words."""
    spans = _split(passage, _PASSAGE_BREAK)
    for breaks in _SUB_BREAKS:
        finer: list[tuple[int, int]] = []
        for a, b in spans:
            if b - a <= _MAX_SENTENCE:
                finer.append((a, b))
            else:
                finer.extend((a + x, a + y) for x, y in _split(passage[a:b], breaks))
        spans = finer
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if b - a <= _MAX_SENTENCE:
            out.append((a, b))
            continue
        words = [m.span() for m in re.finditer(r"\S+", passage[a:b])]
        for i in range(0, len(words), _WINDOW_WORDS):
            window = words[i : i + _WINDOW_WORDS]
            out.append((a + window[0][0], a + window[-1][1]))
    return out


def answer_sentences(answer: str) -> list[str]:
    """The answer's sentences (list items count as sentences), citations kept."""
    return [answer[a:b] for a, b in _split(answer, _ANSWER_BREAK)]


def answer_sentences_citing(answer: str, n: int) -> list[str]:
    """The sentences of `answer` that cite source `n` ([n], [1, n], [n-3] and so on)."""
    return [s for s in answer_sentences(answer) if n in parse_citations(s, max(n, 1))]


def _strip_citations(text: str) -> str:
    return re.sub(r"\[\d+(?:\s*[,;\-–]\s*\d+)*\]", " ", text)


def _ngram_spans(passage: str, claim: str, length: int) -> list[tuple[int, int]]:
    """Spans of `passage` covered by word runs of at least `length` words also found in `claim`."""
    p_words = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(passage)]
    c_words = [w.lower() for w in _WORD.findall(claim)]
    if len(p_words) < length or len(c_words) < length:
        return []
    grams = {tuple(c_words[i : i + length]) for i in range(len(c_words) - length + 1)}
    spans: list[tuple[int, int]] = []
    for i in range(len(p_words) - length + 1):
        gram = tuple(w for _, _, w in p_words[i : i + length])
        if gram in grams and len(content_words(" ".join(gram))) >= 2:
            spans.append((p_words[i][0], p_words[i + length - 1][1]))
    return spans


def merge_spans(spans: list[tuple[int, int]], text: str = "") -> list[tuple[int, int]]:
    """Sorted, non-overlapping spans; spans separated only by whitespace in `text` are joined."""
    merged: list[tuple[int, int]] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if merged and (a <= merged[-1][1] or not text[merged[-1][1] : a].strip()):
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def supporting_spans(passage: str, answer: str, *, min_words: int = 3) -> list[tuple[int, int]]:
    """Character spans of `passage` that support `answer`: merged, sorted, empty if none.

    `answer` is the text the passage should support: the answer sentences that cite it, or the
    whole answer.  For every answer sentence, the passage sentences sharing the most content
    words with it (at least `min_words` of them) are marked, and so is every run of five or
    more words the two have verbatim.
    """
    sentences = sentence_spans(passage)
    if not sentences:
        return []
    sentence_words = [content_words(passage[a:b]) for a, b in sentences]
    spans: list[tuple[int, int]] = []
    for claim in answer_sentences(answer):
        claim = _strip_citations(claim)
        words = content_words(claim)
        if not words:
            continue
        overlaps = [len(words & sw) for sw in sentence_words]
        best = max(overlaps)
        if best >= min_words:
            spans.extend(s for s, o in zip(sentences, overlaps, strict=True) if o == best)
        spans.extend(_ngram_spans(passage, claim, _NGRAM))
    return merge_spans(spans, passage)


class SentenceSupport(NamedTuple):
    """Where one answer sentence is supported (see `sentence_support`).

    `passage` is a 0-based index into the passages given (source `[passage + 1]`), `span` a
    character span of that passage; both are None when no passage supports the sentence.
    `score` is the share of the sentence's content words found in the span (0.0 to 1.0).
    """

    sentence: str
    passage: int | None
    span: tuple[int, int] | None
    score: float


def sentence_support(
    answer: str, passages: Sequence[str], *, min_words: int = 3
) -> list[SentenceSupport]:
    """For each sentence of `answer`, the passage sentence that supports it best.

    A sentence that cites sources ([2], [1, 3], [2-4]) is looked for only in those passages;
    one that cites none (or only numbers out of range) in all of them.  Support is measured as
    in `supporting_spans`: the content words a passage sentence shares with the answer
    sentence, at least `min_words` of them (or all of the sentence's, when it has fewer).
    Ties go to the shorter span (it says less besides), then to the passage cited first, or
    ranked first when the sentence cites none.
    """
    spans_of: dict[int, list[tuple[tuple[int, int], set[str]]]] = {}
    out: list[SentenceSupport] = []
    for sentence in answer_sentences(answer):
        words = content_words(_strip_citations(sentence))
        cited = [n - 1 for n in parse_citations(sentence, len(passages))]
        candidates = cited or list(range(len(passages)))
        # The best so far: ((shared words, -span words, -candidate order), passage, span).
        best: tuple[tuple[int, int, int], int, tuple[int, int]] | None = None
        for order, index in enumerate(candidates):
            if index not in spans_of:
                text = passages[index]
                spans_of[index] = [
                    ((a, b), content_words(text[a:b])) for a, b in sentence_spans(text)
                ]
            for span, span_words in spans_of[index]:
                key = (len(words & span_words), -len(span_words), -order)
                if best is None or key > best[0]:
                    best = (key, index, span)
        if not words or best is None or best[0][0] < min(min_words, len(words)):
            out.append(SentenceSupport(sentence, None, None, 0.0))
        else:
            out.append(SentenceSupport(sentence, best[1], best[2], best[0][0] / len(words)))
    return out


def find_passage(haystack: str, passage: str, *, min_words: int = 4) -> tuple[int, int] | None:
    """The span of `haystack` holding the longest run of `passage`'s words, in order.

    Words are compared lower-cased, so differences in whitespace, line breaks and punctuation
    between two renderings of the same text do not matter.  None when the longest shared run
    is shorter than `min_words` (or the whole passage, if it is shorter).
    """
    h_words = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(haystack)]
    p_words = [w.lower() for w in _WORD.findall(passage)]
    if not h_words or not p_words:
        return None
    matcher = SequenceMatcher(None, [w for _, _, w in h_words], p_words, autojunk=False)
    match = matcher.find_longest_match(0, len(h_words), 0, len(p_words))
    if match.size < min(min_words, len(p_words)):
        return None
    return h_words[match.a][0], h_words[match.a + match.size - 1][1]
