"""Citation faithfulness on SciFact: does the passage cited for an answer hold the evidence?

    python bench/citation_eval.py [--mode hybrid|keyword|vector ...] [--k 6] [--home DIR]
        [--limit N] [--limit-docs M] [--json] [--no-write] [--ollama-host URL]

The evidence set comes from the training claims' metadata: for each claim, each evidence
document and each sentence index listed there, one item (claim, document, sentence, label).
BEIR joined each abstract's sentence list with spaces, so sentence k is recovered by
`abstract_sentences`, a split meant to match the original segmentation; items it cannot place
(index past the split's count, document missing) are dropped and counted, and the alignment is
measured (see `Alignment`).

The corpus is written and indexed exactly as `bench/retrieval_eval.py` does (its `--home` index
is reused), and every claim runs through `Engine.search(claim, k, mode)`.  The app's answers
assert or deny the claim, so the claim itself stands in for the answer sentence; the cited
passage is the one `sentence_support` maps it to (the best-supporting span among the k sources;
none when no sentence shares enough words with it).  The sources panel does not call it: it
highlights, in each passage an answer cites, the sentences `supporting_spans` picks by the same
shared-words rule.  A passage *holds* the
evidence when its character range covers the evidence sentence's whole range in the file (how
many evidence sentences lie whole in some chunk at all is reported too).  Reported: that rate
for the cited passage, for the plain top-1 passage (baseline) and for any of the k passages
(ceiling), per item and per claim; and whether the highlighted span overlaps the evidence
sentence (at least `SPAN_OVERLAP` of the shorter of the two).  The section `citation` of
bench/RESULTS.md is rewritten unless `--no-write`.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Keep the top-level imports light: parse workers are spawned, and a spawned process imports
# the parent's main module again.  The product is imported inside the functions that use it.
from bench.common import (
    SCIFACT_DIR,
    doc_text,
    log,
    percentile,
    read_jsonl,
    update_results_section,
    write_beir_files,
)
from bench.retrieval_eval import DEFAULT_EMBED_MODEL, MODES, ollama_url, sync_logged

if TYPE_CHECKING:
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.core.types import Hit

DEFAULT_K = 6  # the app's default number of sources (Settings.top_k)
SPAN_OVERLAP = 0.5  # a span "overlaps" the evidence when they share half of the shorter one

# ---- the sentences of a SciFact abstract ----------------------------------------------------

# A sentence ends at . ! ? or … (closing quotes and brackets kept with it) before whitespace.
_BREAK = re.compile(r"[.!?…][\"'”’)\]]*(?P<gap>\s+)")
# Abbreviations the original segmentation did not end sentences at ("et al.", "vs.").  "ref."
# is not one: the original splits "(ref. 3)".
_ABBREVIATIONS = frozenset({"al", "e.g", "i.e", "vs", "cf", "approx", "ca", "fig", "figs"})
_INITIAL = re.compile(r"[(\[]?[A-Z]\.")  # "S." of "S. aureus"


def abstract_sentences(text: str, *, abbreviations: bool = True) -> list[tuple[int, int]]:
    """Character spans of the sentences of a SciFact abstract, as BEIR joined them.

    Breaks at whitespace after . ! ? or …, except (with `abbreviations`) after an abbreviation
    that does not end sentences, and after a capital initial followed by a lower-case word
    (a genus: "S. aureus", "H. pylori").  A sentence may start lower-case ("iHepSCs ...",
    "rim1 mutations ..."): the original segmentation breaks there too.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BREAK.finditer(text):
        after = match.end()
        if after >= len(text):
            break  # trailing whitespace
        if abbreviations and text[match.start()] == ".":
            token = text[start : match.start() + 1].split()[-1]
            bare = token.lstrip("([{\"'").rstrip(".").lower()
            if bare in _ABBREVIATIONS:
                continue
            if _INITIAL.fullmatch(token) and text[after].islower():
                continue
        spans.append((start, match.start("gap")))
        start = after
    end = len(text.rstrip())
    if end > start:
        spans.append((start, end))
    return spans


# ---- the evidence set -----------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceItem:
    """One evidence sentence of one claim: where it is in its document's file.

    `start`/`end` are character offsets in the file text ("title, blank line, abstract"), the
    offsets the index keeps for every passage.
    """

    claim_id: str
    claim: str
    doc_id: str
    index: int
    label: str
    sentence: str
    start: int
    end: int


@dataclass
class Alignment:
    """How well the sentence split places the evidence indices of the metadata."""

    indices: int = 0  # (claim, document, sentence index) triples in the metadata
    placed: int = 0
    out_of_range: int = 0  # index past the split's sentence count: dropped
    missing_doc: int = 0  # document absent from the corpus: dropped
    changed_by_abbreviations: int = 0  # placed items whose sentence a plain split gives otherwise
    # placed items whose sentence k - 1, k, k + 1 shares the most content words with the claim
    best_match: dict[int, int] = field(default_factory=lambda: {-1: 0, 0: 0, 1: 0})

    def figures(self) -> dict[str, Any]:
        share = self.placed / self.indices if self.indices else 0.0
        return {
            "evidence_indices": self.indices,
            "placed": self.placed,
            "placed_share": round(share, 4),
            "dropped_out_of_range": self.out_of_range,
            "dropped_missing_doc": self.missing_doc,
            "changed_by_abbreviation_rules": self.changed_by_abbreviations,
            "best_lexical_match_at": {
                "k-1": self._share(-1),
                "k": self._share(0),
                "k+1": self._share(1),
            },
        }

    def _share(self, offset: int) -> float:
        return round(self.best_match[offset] / self.placed, 4) if self.placed else 0.0


def load_corpus(path: Path) -> dict[str, dict[str, Any]]:
    return {str(doc["_id"]): doc for doc in read_jsonl(path)}


def build_evidence(
    corpus: Mapping[str, Mapping[str, Any]], claims: Iterable[Mapping[str, Any]]
) -> tuple[list[EvidenceItem], Alignment]:
    """The evidence items of `claims` (BEIR queries with SciFact `metadata`), and the alignment.

    A sentence index listed in several evidence sets of one claim and document counts once.
    """
    from ftrag_desktop.core.highlight import content_words

    items: list[EvidenceItem] = []
    align = Alignment()
    seen: set[tuple[str, str, int]] = set()
    for claim in claims:
        claim_id, claim_text = str(claim["_id"]), str(claim["text"])
        claim_words = content_words(claim_text)
        for doc_id, evidence_sets in (claim.get("metadata") or {}).items():
            doc = corpus.get(str(doc_id))
            for evidence in evidence_sets:
                for index in evidence["sentences"]:
                    key = (claim_id, str(doc_id), int(index))
                    if key in seen:
                        continue
                    seen.add(key)
                    align.indices += 1
                    if doc is None:
                        align.missing_doc += 1
                        continue
                    text = str(doc.get("text") or "")
                    spans = abstract_sentences(text)
                    if not 0 <= index < len(spans):
                        align.out_of_range += 1
                        continue
                    align.placed += 1
                    a, b = spans[index]
                    plain = abstract_sentences(text, abbreviations=False)
                    if index >= len(plain) or plain[index] != (a, b):
                        align.changed_by_abbreviations += 1
                    _count_best_match(align, claim_words, text, spans, index)
                    offset = len(doc_text(dict(doc))) - len(text)  # the title and blank line
                    items.append(
                        EvidenceItem(
                            claim_id=claim_id,
                            claim=claim_text,
                            doc_id=str(doc_id),
                            index=int(index),
                            label=str(evidence["label"]),
                            sentence=text[a:b],
                            start=offset + a,
                            end=offset + b,
                        )
                    )
    return items, align


def _count_best_match(
    align: Alignment, claim_words: set[str], text: str, spans: list[tuple[int, int]], k: int
) -> None:
    """A misaligned split would make a neighbour of sentence k the claim's best match more often."""
    from ftrag_desktop.core.highlight import content_words

    shared = [len(claim_words & content_words(text[a:b])) for a, b in spans]
    best = max(shared)
    for offset in (-1, 0, 1):
        if 0 <= k + offset < len(spans) and shared[k + offset] == best:
            align.best_match[offset] += 1


def whole_in_a_chunk(
    items: Sequence[EvidenceItem], docs_dir: Path, *, chunk_size: int, overlap: int
) -> int:
    """How many evidence sentences lie whole in some chunk of their document.

    Only those can be held by a passage: the others straddle a chunk boundary.  The files are
    parsed and chunked as the indexer does (`parse_file`, `chunk_document`).
    """
    from ftrag_desktop.core.chunk import chunk_document
    from ftrag_desktop.core.parse import parse_file

    ranges: dict[str, list[tuple[int, int]]] = {}
    count = 0
    for item in items:
        if item.doc_id not in ranges:
            parsed = parse_file(docs_dir / f"{item.doc_id}.txt")
            chunks = chunk_document(parsed, chunk_size=chunk_size, overlap=overlap)
            ranges[item.doc_id] = [(c.char_start, c.char_end) for c in chunks]
        count += any(a <= item.start and item.end <= b for a, b in ranges[item.doc_id])
    return count


# ---- scoring one claim ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the app would show for one evidence item's claim, judged against the evidence."""

    label: str
    doc_in_sources: bool  # some passage of the k comes from the evidence document
    ceiling: bool  # some passage of the k holds the evidence sentence
    top1: bool  # the first passage holds it
    cited: bool  # the passage the claim sentence is mapped to holds it
    cited_doc: bool  # ... comes from the evidence document
    unsupported: bool  # no passage supports the claim sentence: nothing would be cited
    cited_span: bool  # the highlighted span of the cited passage overlaps the evidence
    cited_span_touch: bool  # ... shares at least one character with it
    top1_span: bool  # the best span of the first passage overlaps the evidence


def overlaps(a: tuple[int, int], b: tuple[int, int], threshold: float = SPAN_OVERLAP) -> bool:
    """Whether spans `a` and `b` share at least `threshold` of the shorter one (and something)."""
    shared = min(a[1], b[1]) - max(a[0], b[0])
    return shared > 0 and shared >= threshold * min(a[1] - a[0], b[1] - b[0])


@dataclass(frozen=True)
class Placed:
    """A hit with the offset of its text in its file (None when the text is not found there)."""

    hit: Hit
    doc_id: str
    start: int | None


def place_hits(
    hits: Sequence[Hit], file_texts: Mapping[str, str], counts: Counter[str]
) -> list[Placed]:
    """Check each hit's offsets against its file; a hit whose slice differs is looked for."""
    placed: list[Placed] = []
    for hit in hits:
        doc_id = Path(hit.path).stem
        text = file_texts.get(doc_id)
        start: int | None = None
        if text is not None and text[hit.char_start : hit.char_end] == hit.text:
            start = hit.char_start
        elif text is not None and (found := text.find(hit.text)) >= 0:
            start = found
            counts["hits_realigned"] += 1
        else:
            counts["hits_unplaced"] += 1
        placed.append(Placed(hit, doc_id, start))
    return placed


def _holds(p: Placed, item: EvidenceItem) -> bool:
    return (
        p.doc_id == item.doc_id
        and p.start is not None
        and p.start <= item.start
        and item.end <= p.start + len(p.hit.text)
    )


def _span_hits(
    p: Placed, span: tuple[int, int] | None, item: EvidenceItem, threshold: float
) -> bool:
    if span is None or p.start is None or p.doc_id != item.doc_id:
        return False
    return overlaps((p.start + span[0], p.start + span[1]), (item.start, item.end), threshold)


def best_support(claim: str, passages: Sequence[str]) -> tuple[int | None, tuple[int, int] | None]:
    """The passage and span the claim, as one answer sentence, is mapped to.

    A claim the answer splitter reads as two sentences ("In S. cerevisiae, ...") takes the
    mapping of its better-supported part.
    """
    from ftrag_desktop.core.highlight import sentence_support

    supports = sentence_support(claim, passages)
    best = max(supports, key=lambda s: s.score, default=None)
    if best is None or best.passage is None:
        return None, None
    return best.passage, best.span


def score_claim(placed: Sequence[Placed], items: Sequence[EvidenceItem]) -> list[Outcome]:
    """Judge the k passages retrieved for one claim against each of its evidence items."""
    if not items:
        return []
    passages = [p.hit.text for p in placed]
    cited_index, cited_span = best_support(items[0].claim, passages)
    _top_index, top_span = best_support(items[0].claim, passages[:1])
    outcomes = []
    for item in items:
        cited = placed[cited_index] if cited_index is not None else None
        outcomes.append(
            Outcome(
                label=item.label,
                doc_in_sources=any(p.doc_id == item.doc_id for p in placed),
                ceiling=any(_holds(p, item) for p in placed),
                top1=bool(placed) and _holds(placed[0], item),
                cited=cited is not None and _holds(cited, item),
                cited_doc=cited is not None and cited.doc_id == item.doc_id,
                unsupported=cited is None,
                cited_span=cited is not None and _span_hits(cited, cited_span, item, SPAN_OVERLAP),
                cited_span_touch=cited is not None and _span_hits(cited, cited_span, item, 0.0),
                top1_span=bool(placed) and _span_hits(placed[0], top_span, item, SPAN_OVERLAP),
            )
        )
    return outcomes


def _rate(outcomes: Sequence[Outcome], attr: str) -> float:
    return round(sum(getattr(o, attr) for o in outcomes) / len(outcomes), 4) if outcomes else 0.0


def _any_rate(groups: Sequence[Sequence[Outcome]], attr: str) -> float:
    hits = sum(any(getattr(o, attr) for o in group) for group in groups)
    return round(hits / len(groups), 4) if groups else 0.0


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    held = [o for o in outcomes if o.cited]
    by_label = {}
    for label in sorted({o.label for o in outcomes}):
        some = [o for o in outcomes if o.label == label]
        by_label[label] = {
            "items": len(some),
            "top1": _rate(some, "top1"),
            "cited": _rate(some, "cited"),
            "ceiling": _rate(some, "ceiling"),
            "cited_span": _rate(some, "cited_span"),
        }
    return {
        "items": len(outcomes),
        "passage": {
            "top1": _rate(outcomes, "top1"),
            "cited": _rate(outcomes, "cited"),
            "ceiling": _rate(outcomes, "ceiling"),
            "doc_in_sources": _rate(outcomes, "doc_in_sources"),
            "cited_doc": _rate(outcomes, "cited_doc"),
            "unsupported": _rate(outcomes, "unsupported"),
        },
        "span": {
            "overlap_threshold": SPAN_OVERLAP,
            "cited_span": _rate(outcomes, "cited_span"),
            "cited_span_any_overlap": _rate(outcomes, "cited_span_touch"),
            "cited_span_given_cited_passage_holds": _rate(held, "cited_span"),
            "top1_span": _rate(outcomes, "top1_span"),
        },
        "by_label": by_label,
    }


def evaluate_items(
    engine: Engine,
    items: Sequence[EvidenceItem],
    file_texts: Mapping[str, str],
    *,
    k: int = DEFAULT_K,
    mode: str = "hybrid",
) -> dict[str, Any]:
    """Search each claim once (k passages, `mode`) and judge it against its evidence items."""
    by_claim: dict[str, list[EvidenceItem]] = {}
    for item in items:
        by_claim.setdefault(item.claim_id, []).append(item)
    outcomes: list[Outcome] = []
    per_claim: list[list[Outcome]] = []
    times_ms: list[float] = []
    counts: Counter[str] = Counter()
    used: Counter[str] = Counter()
    for n, claim_items in enumerate(by_claim.values(), 1):
        t = time.perf_counter()
        result = engine.search(claim_items[0].claim, k=k, mode=mode)
        times_ms.append((time.perf_counter() - t) * 1000)
        used[result.mode] += 1
        placed = place_hits(result.hits, file_texts, counts)
        per_claim.append(score_claim(placed, claim_items))
        outcomes.extend(per_claim[-1])
        if n % 100 == 0:
            log(f"  {n}/{len(by_claim)} claims ({mode})")
    figures = summarize(outcomes)
    figures.update(
        {
            "mode": mode,
            "k": k,
            "claims": len(by_claim),
            # a claim counts when the passage holds any one of its evidence sentences
            "per_claim": {
                attr: _any_rate(per_claim, attr) for attr in ("top1", "cited", "ceiling")
            },
            "search_ms_p50": round(percentile(times_ms, 50), 1),
            "search_ms_p95": round(percentile(times_ms, 95), 1),
            "modes_used": dict(used),
            "fallback_searches": sum(c for m, c in used.items() if m != mode),
            "hits_realigned": counts["hits_realigned"],
            "hits_unplaced": counts["hits_unplaced"],
        }
    )
    return figures


# ---- the run --------------------------------------------------------------------------------


def select_items(items: list[EvidenceItem], limit: int) -> list[EvidenceItem]:
    return items[:limit] if limit else items


def write_corpus_subset(
    corpus: Mapping[str, Mapping[str, Any]], keep: Iterable[str], extra: int, path: Path
) -> int:
    """A corpus file with the documents `keep` plus the first `extra` others (smoke runs)."""
    wanted = set(keep)
    wanted.update([d for d in corpus if d not in wanted][:extra])
    with path.open("w", encoding="utf-8") as fh:
        for doc_id in corpus:
            if doc_id in wanted:
                fh.write(json.dumps(corpus[doc_id]) + "\n")
    return len(wanted)


def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    from ftrag_desktop.config import Settings
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.paths import Home

    corpus = load_corpus(Path(args.corpus))
    items, align = build_evidence(corpus, read_jsonl(Path(args.queries)))
    items = select_items(items, args.limit)
    log(
        f"{align.placed} of {align.indices} evidence sentences placed "
        f"({align.out_of_range} out of range, {align.missing_doc} missing documents); "
        f"{len(items)} evaluated"
    )
    corpus_path = Path(args.corpus)
    if args.limit_docs:
        corpus_path = home / "corpus-subset.jsonl"
        write_corpus_subset(corpus, (i.doc_id for i in items), args.limit_docs, corpus_path)
    docs_dir = home / "beir-docs"
    n_docs = write_beir_files(corpus_path, docs_dir)
    file_texts = {doc_id: doc_text(dict(doc)) for doc_id, doc in corpus.items()}

    needs_vectors = any(m != "keyword" for m in args.mode)
    server_args = argparse.Namespace(
        ollama_host=args.ollama_host, mode="hybrid" if needs_vectors else "keyword"
    )
    with ollama_url(server_args) as url:
        settings = Settings(ollama_host=url, embed_model=args.embed_model)
        with Engine(Home(home), settings) as engine:
            summary, index_seconds = sync_logged(engine, docs_dir)
            log(
                f"{n_docs} documents: indexed {summary.indexed}, unchanged {summary.unchanged}, "
                f"failed {summary.failed} in {index_seconds:.1f} s ({summary.embedding})"
            )
            status = engine.status()
            whole = whole_in_a_chunk(
                items, docs_dir, chunk_size=settings.chunk_size, overlap=settings.chunk_overlap
            )
            runs = [
                evaluate_items(engine, items, file_texts, k=args.k, mode=mode) for mode in args.mode
            ]
    return {
        "runs": runs,
        "alignment": align.figures(),
        "items": len(items),
        "whole_in_a_chunk": round(whole / len(items), 4) if items else 0.0,
        "corpus_docs": n_docs,
        "chunks": status["chunks"],
        "embed_model": status["embedding_model"] or None,
        "index_seconds": round(index_seconds, 1),
        "index_new_files": summary.indexed,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "limit": args.limit,
        "limit_docs": args.limit_docs,
    }


# ---- RESULTS.md -----------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def results_section(res: dict[str, Any], machine: Mapping[str, str]) -> str:
    a = res["alignment"]
    best = a["best_lexical_match_at"]
    quick = res["limit"] or res["limit_docs"]
    rows = []
    label_rows = []
    for r in res["runs"]:
        p, s = r["passage"], r["span"]
        rows.append(
            f"| {r['mode']} | {r['items']} ({r['claims']} claims) | {_pct(p['top1'])} | "
            f"**{_pct(p['cited'])}** | {_pct(p['ceiling'])} | {_pct(p['doc_in_sources'])} | "
            f"{_pct(s['cited_span'])} ({_pct(s['cited_span_given_cited_passage_holds'])} "
            f"when the passage holds it) | {_pct(s['top1_span'])} | "
            f"{r['search_ms_p50']} / {r['search_ms_p95']} ms |"
        )
        for label, f in r["by_label"].items():
            label_rows.append(
                f"| {r['mode']} | {label} | {f['items']} | {_pct(f['top1'])} | "
                f"{_pct(f['cited'])} | {_pct(f['ceiling'])} | {_pct(f['cited_span'])} |"
            )
    notes = []
    for r in res["runs"]:
        if r["fallback_searches"]:
            notes.append(
                f"{r['fallback_searches']} {r['mode']} searches fell back: {r['modes_used']}"
            )
        if r["hits_realigned"] or r["hits_unplaced"]:
            notes.append(
                f"{r['mode']}: {r['hits_realigned']} passages found at other offsets than "
                f"indexed, {r['hits_unplaced']} not found in their file"
            )
    lines = [
        "## Citation faithfulness on SciFact (`bench/citation_eval.py`)",
        "",
        f"- Date: {machine['date']}; machine: {machine['cpu']}, {machine['cores']} cores, "
        f"RAM {machine['ram']}; code: {machine['commit']}"
        + ("  (**--limit run: not the real figures**)" if quick else ""),
        "",
        "Evidence set: every evidence sentence listed in the SciFact training claims' metadata, "
        "one item per (claim, document, sentence).  The corpus is indexed as in "
        f"`retrieval_eval.py` ({res['corpus_docs']} abstracts, {res['chunks']} chunks of "
        f"{res['chunk_size']} characters, overlap {res['chunk_overlap']}; embeddings "
        f"{res['embed_model'] or 'none'}), and each claim runs through "
        "`Engine.search(claim, k, mode)`.  **The claim stands in for the answer sentence**: "
        "the app's answers assert or deny the claim.  The *cited* passage is the one "
        "`highlight.sentence_support` maps that sentence to (best-supporting span among the "
        "k sources, by shared content words; the sources panel highlights by the same rule "
        "with `supporting_spans`, in the passages an answer cites); the *top-1* passage is the "
        "baseline and *any "
        "of the k* the ceiling.  A passage holds the evidence when its character range covers "
        "the whole evidence sentence.  The highlighted span *overlaps* the evidence when they "
        f"share at least {int(SPAN_OVERLAP * 100)} % of the shorter of the two.",
        "",
        f"Sentence alignment: BEIR joined each abstract's sentences with spaces; "
        f"`abstract_sentences` places {a['placed']} of {a['evidence_indices']} evidence indices "
        f"({_pct(a['placed_share'])}; dropped: {a['dropped_out_of_range']} past the split's "
        f"sentence count, {a['dropped_missing_doc']} in missing documents).  The sentence at "
        f"index k is the claim's best lexical match in {_pct(best['k'])} of the placed items, "
        f"its neighbours k-1 and k+1 in {_pct(best['k-1'])} and {_pct(best['k+1'])} (a split "
        "shifted by one would favour a neighbour).  The abbreviation rules (et al., vs., "
        f"S. aureus ...) change the sentence of {a['changed_by_abbreviation_rules']} items "
        "against a plain split at every full stop; those were spot-checked by hand.",
        "",
        "| mode | items | top-1 passage holds evidence | cited passage holds evidence | "
        "any of the k holds it (ceiling) | evidence document among the k | cited span overlaps "
        "evidence | top-1 best span overlaps | search p50 / p95 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "Per claim (the passage holds any one of the claim's evidence sentences): "
        + "; ".join(
            f"{r['mode']} top-1 {_pct(r['per_claim']['top1'])}, cited "
            f"{_pct(r['per_claim']['cited'])}, ceiling {_pct(r['per_claim']['ceiling'])}"
            for r in res["runs"]
        )
        + ".",
        "",
        "Nothing cited (no sentence of the k sources shares enough content words with the "
        "claim): "
        + "; ".join(f"{r['mode']} {_pct(r['passage']['unsupported'])}" for r in res["runs"])
        + ".  The cited passage comes from the evidence document: "
        + "; ".join(f"{r['mode']} {_pct(r['passage']['cited_doc'])}" for r in res["runs"])
        + ".",
        "",
        "| mode | label | items | top-1 | cited | ceiling | cited span |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        *label_rows,
        "",
        f"{_pct(res['whole_in_a_chunk'])} of the {res['items']} evidence sentences lie whole "
        "in one chunk of their document; only those can be held by a passage, so this bounds "
        "every passage column.  "
        f"k = {res['runs'][0]['k']} (the app's default number of sources).  Index: "
        f"{res['index_new_files']} files new, {res['index_seconds']} s; search times are those "
        "of the index as the sync left it (no compaction is forced)."
        + ("  " + "; ".join(notes) + "." if notes else ""),
        "",
        f"Command: `{res['command']}`",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="How often the passage cited for a SciFact claim holds its evidence sentence."
    )
    p.add_argument("--corpus", default=str(SCIFACT_DIR / "corpus.jsonl"))
    p.add_argument("--queries", default=str(SCIFACT_DIR / "queries-train.jsonl"))
    p.add_argument(
        "--mode",
        action="append",
        choices=MODES,
        help="search mode (default hybrid); repeat to evaluate several on one index",
    )
    p.add_argument(
        "--k", type=int, default=DEFAULT_K, help=f"sources per claim (default {DEFAULT_K})"
    )
    p.add_argument("--home", help="keep the index (and the written files) here, reuse it")
    p.add_argument("--embed-model", default=DEFAULT_EMBED_MODEL)
    p.add_argument("--ollama-host", help="use this Ollama server instead of starting one")
    p.add_argument("--limit", type=int, default=0, help="only the first N evidence items")
    p.add_argument(
        "--limit-docs",
        type=int,
        default=0,
        help="index only the evaluated items' documents plus M others (smoke runs; no --home)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--no-write", action="store_true", help="leave bench/RESULTS.md alone")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.mode = list(dict.fromkeys(args.mode or ["hybrid"]))
    if args.limit_docs and args.home:
        parser.error("--limit-docs would drop the rest of the corpus from the --home index")
    keep = bool(args.home)
    home = Path(args.home) if keep else Path(tempfile.mkdtemp(prefix="ftrag-bench-cite-"))
    try:
        result = run(args, home.resolve())
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    given = sys.argv[1:] if argv is None else argv
    result["command"] = shlex.join([".venv/bin/python", "bench/citation_eval.py", *given])
    if not args.no_write:
        from bench.run_all import machine

        update_results_section("citation", results_section(result, machine()))
    if args.json:
        print(json.dumps(result))
    else:
        for r in result["runs"]:
            print(json.dumps(r, indent=1))
        print(json.dumps(result["alignment"], indent=1))
    fallbacks = sum(r["fallback_searches"] for r in result["runs"])
    if fallbacks:
        log(f"warning: {fallbacks} searches ran in another mode")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
