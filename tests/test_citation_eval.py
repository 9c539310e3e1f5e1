"""Citation faithfulness: the SciFact sentence split, sentence-to-span citing, the bench loop."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.citation_eval import (
    SPAN_OVERLAP,
    abstract_sentences,
    build_evidence,
    evaluate_items,
    overlaps,
    place_hits,
    results_section,
    score_claim,
    whole_in_a_chunk,
    write_corpus_subset,
)
from bench.common import doc_text, write_beir_files
from ftrag_desktop.config import Settings
from ftrag_desktop.core.chunk import chunk_document
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.events import SyncFinished
from ftrag_desktop.core.highlight import sentence_support
from ftrag_desktop.core.parse import parse_file
from ftrag_desktop.paths import Home
from tests.conftest import SCIFACT_DIR
from tests.ollama_server import OllamaTestServer

# Claims whose evidence sentences are unambiguous in their abstracts (checked by hand).
CLAIM_IDS = ("2", "12", "79", "332", "815")
EVIDENCE_DOCS = ("13734012", "33409100", "5099266", "29023309", "8148304")


def _read(path: Path, ids: set[str]) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if str(row["_id"]) in ids:
                yield row


@pytest.fixture(scope="module")
def corpus() -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in _read(SCIFACT_DIR / "corpus.jsonl", set(EVIDENCE_DOCS))}


@pytest.fixture(scope="module")
def claims() -> list[dict[str, Any]]:
    return list(_read(SCIFACT_DIR / "queries-train.jsonl", set(CLAIM_IDS)))


def _sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in abstract_sentences(text)]


# ---- the sentence split ---------------------------------------------------------------------


def test_split_places_known_evidence_sentences(corpus: dict[str, dict[str, Any]]) -> None:
    prion = _sentences(corpus["13734012"]["text"])
    assert prion[4].startswith("RESULTS Of the 32,441 appendix samples 16 were positive")
    assert prion[3].startswith("SAMPLE 32,441 archived appendix samples")
    folic = _sentences(corpus["33409100"]["text"])
    assert len(folic) == 14
    assert folic[12].startswith("CONCLUSION Treatment with high doses of folic acid")
    assert folic[13] == "TRIAL REGISTRATION clinicaltrials.gov Identifier: NCT00032435."
    # A sentence may start lower-case: the original split breaks before "rim1 mutations".
    rim1 = _sentences(corpus["8148304"]["text"])
    assert rim1[1].startswith("rim1 mutations cause reduced expression of IME1")
    assert rim1[13].startswith("These findings suggest that RIM1 acts independently")
    assert len(rim1) == 14


def test_split_keeps_genus_names_whole(corpus: dict[str, dict[str, Any]]) -> None:
    th17 = _sentences(corpus["29023309"]["text"])
    assert th17[1].endswith("mucosal barrier functions to S. typhimurium dissemination.")
    assert th17[3].startswith("TH17 cells were markedly depleted in SIV-infected rhesus macaques")
    plain = [
        corpus["29023309"]["text"][a:b]
        for a, b in abstract_sentences(corpus["29023309"]["text"], abbreviations=False)
    ]
    assert plain[1].endswith("functions to S.")  # what a split at every full stop gets wrong


def test_split_rules_on_made_up_text() -> None:
    text = (
        "Growth of S. aureus slowed. Smith et al. (2017) saw it in E. coli too. "
        "Treated vs. untreated cells differed (ref. 3). rim1 cells died! "
        "It binds hnRNP K. Further work is needed.  "
    )
    assert _sentences(text) == [
        "Growth of S. aureus slowed.",
        "Smith et al. (2017) saw it in E. coli too.",
        "Treated vs. untreated cells differed (ref.",  # the original splits here too
        "3).",
        "rim1 cells died!",
        "It binds hnRNP K.",
        "Further work is needed.",
    ]
    assert abstract_sentences("") == []


def test_build_evidence_places_items_and_counts_drops(
    corpus: dict[str, dict[str, Any]], claims: list[dict[str, Any]]
) -> None:
    extra = [
        {
            "_id": "x1",
            "text": "A claim.",
            "metadata": {"13734012": [{"sentences": [99], "label": "SUPPORT"}]},
        },
        {
            "_id": "x2",
            "text": "B claim.",
            "metadata": {"404": [{"sentences": [0], "label": "SUPPORT"}]},
        },
    ]
    items, align = build_evidence(corpus, [*claims, *extra])
    assert len(items) == 9 and align.placed == 9
    assert align.indices == 11 and align.out_of_range == 1 and align.missing_doc == 1
    prion = next(i for i in items if i.claim_id == "2")
    assert (prion.doc_id, prion.index, prion.label) == ("13734012", 4, "CONTRADICT")
    for item in items:  # offsets are in the file the index sees: title, blank line, abstract
        assert doc_text(corpus[item.doc_id])[item.start : item.end] == item.sentence
    figures = align.figures()
    assert figures["placed_share"] == round(9 / 11, 4)
    # "S. typhimurium" (claim 332, sentences 1 and 3) and "L. pneumophila" (claim 79, sentence 4)
    assert figures["changed_by_abbreviation_rules"] == 3


# ---- answer sentences mapped to spans -------------------------------------------------------

PASSAGES = [
    "Capybaras are rodents. They live in South America near rivers and lakes.",
    "The capybara bathes in hot springs in Japanese zoos during winter. Keepers heat the water.",
    "Hot springs in Japan attract tourists. Zoos in Japan keep capybaras in winter enclosures.",
]


def test_sentence_without_citation_maps_to_best_passage_and_span() -> None:
    (support,) = sentence_support(
        "Capybaras bathe in hot springs in Japanese zoos in winter.", PASSAGES
    )
    assert support.passage == 1
    assert support.span is not None
    a, b = support.span
    assert PASSAGES[1][a:b] == "The capybara bathes in hot springs in Japanese zoos during winter."
    assert 0.8 < support.score <= 1.0


def test_sentence_citing_a_source_is_mapped_inside_it() -> None:
    supports = sentence_support(
        "Capybaras bathe in hot springs in Japanese zoos in winter [3]. "
        "They live near South American rivers [1].",
        PASSAGES,
    )
    assert [s.passage for s in supports] == [2, 0]
    first, second = supports
    assert first.span is not None and second.span is not None
    assert PASSAGES[2][first.span[0] : first.span[1]].startswith("Zoos in Japan keep capybaras")
    assert PASSAGES[0][second.span[0] : second.span[1]].startswith("They live in South America")
    assert first.sentence.endswith("[3].")


def test_unsupported_and_out_of_range_citations() -> None:
    unsupported, out_of_range = sentence_support(
        "The Eiffel Tower opened in 1889 [2]. Capybaras bathe in Japanese hot springs [9].",
        PASSAGES,
    )
    assert (unsupported.passage, unsupported.span, unsupported.score) == (None, None, 0.0)
    assert out_of_range.passage == 1  # [9] does not exist: looked for in every source
    assert sentence_support("", PASSAGES) == []
    assert sentence_support("Capybaras bathe.", []) == [("Capybaras bathe.", None, None, 0.0)]


def test_short_sentence_needs_only_its_own_words() -> None:
    (support,) = sentence_support("Keepers heat water.", PASSAGES)
    assert support.passage == 1 and support.score == 1.0
    (weak,) = sentence_support("Keepers heat water.", PASSAGES, min_words=4)
    assert weak.passage == 1  # three content words: all of them are enough
    (none,) = sentence_support("Keepers boil tea.", PASSAGES)
    assert none.passage is None  # one shared word of three


def test_overlap_threshold() -> None:
    assert overlaps((0, 100), (40, 100))  # the shorter one lies inside
    assert overlaps((0, 100), (50, 150))
    assert not overlaps((0, 100), (60, 200), SPAN_OVERLAP)  # 40 of the shorter 100
    assert overlaps((0, 100), (99, 200), 0.0)  # one character is "any overlap"
    assert not overlaps((0, 100), (100, 200), 0.0)


# ---- the bench's loop, end to end on a few documents ----------------------------------------


def test_evaluate_items_end_to_end(
    ftrag_home: Path,
    tmp_path: Path,
    ollama_server: OllamaTestServer,
    corpus: dict[str, dict[str, Any]],
    claims: list[dict[str, Any]],
) -> None:
    ollama_server.embed_backend = "hash"
    full = {d["_id"]: d for d in _read(SCIFACT_DIR / "corpus.jsonl", set(EVIDENCE_DOCS))}
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as fh:  # a few distractors
        for _, line in zip(range(6), fh, strict=False):
            doc = json.loads(line)
            full.setdefault(doc["_id"], doc)
    subset = tmp_path / "corpus.jsonl"
    assert write_corpus_subset(full, EVIDENCE_DOCS, 3, subset) == 8
    docs_dir = tmp_path / "docs"
    assert write_beir_files(subset, docs_dir) == 8
    items, align = build_evidence(corpus, claims)
    file_texts = {d: doc_text(doc) for d, doc in full.items()}

    settings = Settings(ollama_host=ollama_server.url, embed_model="all-minilm")
    with Engine(Home(ftrag_home), settings) as engine:
        events = list(engine.sync(docs_dir))
        summary = events[-1].summary if isinstance(events[-1], SyncFinished) else None
        assert summary is not None and summary.indexed == 8 and summary.failed == 0
        res = evaluate_items(engine, items, file_texts, k=6, mode="hybrid")
        outcomes = {}
        for claim_id in ("2", "79"):
            some = [i for i in items if i.claim_id == claim_id]
            hits = engine.search(some[0].claim, k=6, mode="hybrid").hits
            outcomes[claim_id] = score_claim(place_hits(hits, file_texts, Counter()), some)
            for hit in hits:  # `whole_in_a_chunk` chunks the files exactly as the index did
                chunks = chunk_document(
                    parse_file(Path(hit.path)),
                    chunk_size=settings.chunk_size,
                    overlap=settings.chunk_overlap,
                )
                assert (hit.char_start, hit.char_end) in {
                    (c.char_start, c.char_end) for c in chunks
                }

    # "1 in 5 million in UK have abnormal PrP positivity": the claim maps to the evidence
    # sentence itself ("... 16 were positive for abnormal PrP, ... 493 per million ...").
    (prion,) = outcomes["2"]
    assert prion.cited and prion.cited_span and prion.ceiling and not prion.unsupported
    # "Active caspase-11 protein promotes pyroptosis" shares under three content words with
    # every sentence retrieved: nothing is cited, though the evidence is among the sources.
    assert all(o.unsupported and not o.cited and o.ceiling for o in outcomes["79"])

    assert res["claims"] == 5 and res["items"] == 9
    assert res["modes_used"] == {"hybrid": 5} and res["fallback_searches"] == 0
    assert res["hits_realigned"] == 0 and res["hits_unplaced"] == 0  # offsets match the files
    p, s = res["passage"], res["span"]
    assert p["doc_in_sources"] == 1.0  # eight documents, six sources: each is found
    assert p["top1"] <= p["ceiling"] and p["cited"] <= p["ceiling"]
    assert p["ceiling"] == 1.0  # every evidence sentence lies whole in one of the passages
    whole = whole_in_a_chunk(
        items, docs_dir, chunk_size=settings.chunk_size, overlap=settings.chunk_overlap
    )
    assert whole == 9
    assert p["top1"] < 1.0 and 0.0 < p["cited"] < 1.0  # the bench can tell them apart
    assert s["cited_span"] <= p["cited"]  # a span overlapping the evidence lies in its passage
    assert set(res["by_label"]) == {"SUPPORT", "CONTRADICT"}
    # Per claim, one evidence sentence held is enough: claims 2, 332 and 815 of the five.
    assert res["per_claim"] == {"top1": 0.8, "cited": 0.6, "ceiling": 1.0}

    section = results_section(
        {
            "runs": [res],
            "alignment": align.figures(),
            "items": 9,
            "whole_in_a_chunk": whole / 9,
            "corpus_docs": 8,
            "chunks": 20,
            "embed_model": "all-minilm",
            "index_seconds": 1.0,
            "index_new_files": 8,
            "chunk_size": 1000,
            "chunk_overlap": 150,
            "limit": 0,
            "limit_docs": 3,
            "command": ".venv/bin/python bench/citation_eval.py --limit-docs 3",
        },
        {"date": "today", "cpu": "cpu", "cores": "2", "ram": "1 GB", "commit": "abc"},
    )
    assert f"**{100 * p['cited']:.1f} %**" in section
    assert "not the real figures" in section
    assert "Command: `.venv/bin/python bench/citation_eval.py --limit-docs 3`" in section
