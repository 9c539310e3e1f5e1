"""The transparent scoring rules of the evaluation workbench: pure functions over text.

Every number the workbench reports about an answer comes from one of these rules, so a user
can check any score by hand:

- **Tokens** (`tokens`): lower-cased words and numbers (`\\w+`), with the English articles
  "a", "an", "the" dropped (the SQuAD normalisation).  **Content words** (`content_words`)
  also drop the common function words in `STOP_WORDS`.
- **Token F1** (`token_f1`): the SQuAD answer metric, the harmonic mean of the precision and
  recall of the answer's tokens against the reference's (a multiset overlap).
- **Key-fact containment** (`containment`): the share of the reference's distinct content
  words that appear in the answer.  A long answer that contains the reference scores 1.0 where
  its F1 is low; an answer is counted *correct* when containment is at least
  `CORRECT_CONTAINMENT`.
- **Citation support** (`citation_support`): the answer is split into sentences; a sentence
  that cites `[n]` makes a claim (the sentence without its citations), and citation `[n]` is
  *supported* when at least `SUPPORT_OVERLAP` of the claim's distinct content words occur in
  source n's text.  Claims with fewer than `MIN_CLAIM_WORDS` content words (e.g. "See also
  [2].") are checked against the previous sentence's claim instead, since they only point on.
- **Abstention** (`is_abstention`): an answer abstains when it matches one of the refusal
  patterns in `ABSTENTION_PATTERNS` (the built-in "The documents do not say.", "I don't know",
  "not in the sources", "no information", "cannot answer", ...), looked for in its first
  `ABSTENTION_WINDOW` characters so that a long answer that merely mentions a missing detail
  in passing still counts as an answer.
- **Lexical overlap** (`overlap`): the share of one text's distinct content words found in
  another; used to say whether a retrieved passage is about a question at all.
- **Near duplicates** (`near_duplicate`): two questions whose normalised text is equal, or
  whose word-bigram sets have a Jaccard similarity of at least `DUPLICATE_JACCARD`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "ABSTENTION_PATTERNS",
    "CORRECT_CONTAINMENT",
    "DUPLICATE_JACCARD",
    "MIN_CLAIM_WORDS",
    "STOP_WORDS",
    "SUPPORT_OVERLAP",
    "CitationCheck",
    "citation_support",
    "containment",
    "content_words",
    "is_abstention",
    "mean",
    "median",
    "near_duplicate",
    "normalise",
    "overlap",
    "token_f1",
    "tokens",
]

CORRECT_CONTAINMENT = 0.5
SUPPORT_OVERLAP = 0.5
MIN_CLAIM_WORDS = 3
DUPLICATE_JACCARD = 0.7
ABSTENTION_WINDOW = 200

_ARTICLES = frozenset({"a", "an", "the"})
_STOP_WORDS_TEXT = """
a an the and or but if of to in on at by for with from as into onto about over under is
are was were be been being am do does did done has have had having it its this that
these those there here their they them he she his her him we our you your i me my what
which who whom whose when where why how not no nor so than then too very can could
should would will shall may might must also just only such any some all each both more
most other same own s t according source sources document documents
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

ABSTENTION_PATTERNS: tuple[str, ...] = (
    r"\b(?:the )?(?:documents?|sources?|context|passages?|texts?) (?:do|does) not (?:say|"
    r"mention|contain|provide|include|cover|specify|state|answer)",
    r"\b(?:don'?t|do not|doesn'?t|does not|cannot|can'?t|can not) (?:know|say|tell|find|"
    r"determine|answer)",
    r"\bnot (?:in|mentioned in|found in|covered by|provided in|stated in|included in|"
    r"given in|part of) (?:the |any |my |your )?(?:sources?|documents?|context|passages?|"
    r"texts?|information)",
    r"\bnot (?:mentioned|specified|stated|provided|covered|available|known)\b",
    r"\bno (?:information|mention|data|details?|answer|relevant|record)\b",
    r"\b(?:unable|not able) to (?:answer|find|determine|say|provide)",
    r"\bi(?: a|')?m not sure\b",
    r"\bthere is no (?:way|information|mention|answer)",
    r"\b(?:insufficient|not enough) (?:information|context|data)",
)
_ABSTAIN = re.compile("|".join(f"(?:{p})" for p in ABSTENTION_PATTERNS), re.IGNORECASE)
_WORD = re.compile(r"\w+")
_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def tokens(text: str) -> list[str]:
    """Lower-cased words and numbers, articles dropped (the SQuAD normalisation)."""
    return [w for w in _WORD.findall(text.lower()) if w not in _ARTICLES]


def content_words(text: str) -> set[str]:
    """The distinct tokens of `text` that are not function words."""
    return {w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS}


def normalise(text: str) -> str:
    """Lower case, punctuation and articles removed, spaces collapsed: for equality tests."""
    return " ".join(tokens(text))


def token_f1(answer: str, reference: str) -> float:
    """SQuAD token F1 of `answer` against `reference`; 1.0 when both are empty."""
    pred, gold = tokens(answer), tokens(reference)
    if not pred or not gold:
        return 1.0 if pred == gold else 0.0
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def containment(answer: str, reference: str) -> float:
    """Share of the reference's distinct content words present in the answer (key facts).

    A reference made only of function words falls back to all its tokens.
    """
    facts = content_words(reference) or set(tokens(reference))
    if not facts:
        return 0.0
    have = set(_WORD.findall(answer.lower()))
    return len(facts & have) / len(facts)


def overlap(text: str, passage: str) -> float:
    """Share of `text`'s distinct content words that occur in `passage` (0.0 when it has none)."""
    words = content_words(text)
    if not words:
        return 0.0
    return len(words & set(_WORD.findall(passage.lower()))) / len(words)


def is_abstention(answer: str) -> bool:
    """True when the answer declines to answer (see `ABSTENTION_PATTERNS`)."""
    head = answer.strip()[:ABSTENTION_WINDOW]
    return not head or _ABSTAIN.search(head) is not None


def _bigrams(text: str) -> set[tuple[str, ...]]:
    words = tokens(text)
    if len(words) < 2:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + 2]) for i in range(len(words) - 1)}


def near_duplicate(a: str, b: str, threshold: float = DUPLICATE_JACCARD) -> bool:
    """Equal once normalised, or word-bigram Jaccard similarity at least `threshold`."""
    if normalise(a) == normalise(b):
        return True
    sa, sb = _bigrams(a), _bigrams(b)
    if not sa or not sb:
        return False
    return len(sa & sb) / len(sa | sb) >= threshold


@dataclass(frozen=True)
class CitationCheck:
    """The citations of one answer: how many there were and how many their sources support."""

    total: int
    supported: int
    unsupported: tuple[int, ...] = ()  # the source numbers of the unsupported citations

    @property
    def rate(self) -> float | None:
        return self.supported / self.total if self.total else None


def citation_support(answer: str, sources: Mapping[int, str]) -> CitationCheck:
    """Check every `[n]` citation of `answer` against the text of source n (see the module
    docstring).  A citation of a number that is not in `sources` is unsupported."""
    total = supported = 0
    unsupported: list[int] = []
    previous = ""
    for sentence in _SENTENCE_END.split(answer):
        numbers = _cited_numbers(sentence)
        claim = _CITE.sub(" ", sentence).strip()
        if len(content_words(claim)) < MIN_CLAIM_WORDS and previous:
            claim = previous
        if not numbers:
            if claim:
                previous = claim
            continue
        previous = claim
        for n in numbers:
            total += 1
            text = sources.get(n)
            if text is not None and overlap(claim, text) >= SUPPORT_OVERLAP:
                supported += 1
            else:
                unsupported.append(n)
    return CitationCheck(total, supported, tuple(unsupported))


def _cited_numbers(sentence: str) -> list[int]:
    found: list[int] = []
    for match in _CITE.finditer(sentence):
        for part in re.split(r"\s*[,;]\s*", match.group(1)):
            n = int(part)
            if n not in found:
                found.append(n)
    return found


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean, or None for no values."""
    return sum(values) / len(values) if values else None


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
