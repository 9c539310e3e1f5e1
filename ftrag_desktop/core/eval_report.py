"""The report of an evaluation run: one row of figures per configuration, a "which approach?"
summary drawn from them, and the same as CSV and as a self-contained HTML page.

`build_report(info, items, results)` aggregates the per-answer scores of `evaluate.py`:

- hit@k and MRR over answerable questions, RAG configurations only;
- token F1, key-fact containment and the correct rate over answerable questions;
- the LLM judge's correct rate, when a judge was asked (labelled with its model);
- citation support: supported citations / all citations; and the share of answers with one;
- abstention on unanswerable questions, and false abstention on answerable ones;
- medians of time to first token, tokens/s and time per answer, and the total time.

**Which approach?** (`recommend`) compares the best configuration *with* documents against the
best *without* them, and fine-tuned models (as Ollama's lineage marks them) against base ones,
on the correct rate.  A difference counts only when it is more than twice its standard error
(sqrt(p1(1-p1)/n + p2(1-p2)/n), at least `MIN_MARGIN`); smaller ones are called a tie.  Then,
following the criteria users know:

- documents add correct answers (and citations back them): **RAG**;
- a fine-tuned model with documents beats the base model with documents: **hybrid**;
- a model without documents is as correct as the best with them and answers faster:
  **fine-tuning** (or the model alone, when it is not fine-tuned: then the questions test
  general knowledge more than the documents);
- otherwise no clear winner.

Every recommendation lists the numbers behind it, and reminds of what the numbers cannot
show (how often the documents change, whether answers must cite sources).
"""

from __future__ import annotations

import csv
import html
import io
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ftrag_desktop.core.eval_metrics import mean, median
from ftrag_desktop.core.evalset import EvalItem

if TYPE_CHECKING:  # evaluate.py imports this module to build its reports
    from ftrag_desktop.core.evaluate import ItemResult, RunInfo

__all__ = [
    "CSV_COLUMNS",
    "ConfigRow",
    "EvalReport",
    "Recommendation",
    "build_report",
    "format_cell",
    "recommend",
    "report_csv",
    "report_html",
]

MIN_MARGIN = 0.05
FASTER = 0.75  # "answers faster": at most this share of the other's median time per answer


@dataclass(frozen=True)
class ConfigRow:
    """The aggregate figures of one configuration; None where a figure does not apply."""

    key: str
    title: str
    model: str
    rag: bool
    top_k: int
    fine_tuned: bool | None
    own_prompt: bool
    answered: int  # answers without an error
    errors: int
    answerable: int  # answered answerable questions
    unanswerable: int  # answered unanswerable questions
    hit_at_k: float | None = None
    mrr: float | None = None
    f1: float | None = None
    containment: float | None = None
    correct: float | None = None
    judge_correct: float | None = None
    judged: int = 0
    citation_support: float | None = None
    cited_answers: float | None = None
    abstention: float | None = None
    false_abstention: float | None = None
    first_token_s: float | None = None
    tokens_per_s: float | None = None
    answer_s: float | None = None
    total_s: float = 0.0
    first_error: str = ""


@dataclass(frozen=True)
class Recommendation:
    approach: str  # "rag" | "hybrid" | "fine-tuning" | "no clear winner"
    headline: str
    evidence: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EvalReport:
    run_id: str
    set_name: str
    set_version: int
    judge_model: str
    questions: int
    answerable: int
    unanswerable: int
    rows: list[ConfigRow]
    recommendation: Recommendation
    complete: bool  # every (question, configuration) pair has an answer without error
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def build_report(
    info: RunInfo, items: Sequence[EvalItem], results: Sequence[ItemResult]
) -> EvalReport:
    by_item = {i.id: i for i in items}
    rows: list[ConfigRow] = []
    for config in info.configs:
        mine = [r for r in results if r.config_key == config.key and r.item_id in by_item]
        ok = [r for r in mine if r.ok]
        ans = [r for r in ok if r.answerable]
        unans = [r for r in ok if not r.answerable]
        ranked = [r for r in ans if config.rag and r.k > 0]
        judged = [r.judge for r in ans if r.judge is not None]
        cited = [r for r in ok if r.citations is not None]
        citations = sum(r.citations or 0 for r in cited)
        rows.append(
            ConfigRow(
                key=config.key,
                title=config.title(),
                model=config.model,
                rag=config.rag,
                top_k=config.top_k,
                fine_tuned=config.fine_tuned,
                own_prompt=bool(config.system_prompt),
                answered=len(ok),
                errors=len(mine) - len(ok),
                answerable=len(ans),
                unanswerable=len(unans),
                hit_at_k=_rate([r.rank is not None for r in ranked]),
                mrr=mean([1.0 / r.rank if r.rank else 0.0 for r in ranked]),
                f1=mean([r.f1 for r in ans if r.f1 is not None]),
                containment=mean([r.containment for r in ans if r.containment is not None]),
                correct=_rate([bool(r.correct) for r in ans]),
                judge_correct=_rate(judged),
                judged=len(judged),
                citation_support=(
                    sum(r.citations_supported or 0 for r in cited) / citations
                    if citations
                    else None
                ),
                cited_answers=_rate([(r.citations or 0) > 0 for r in cited if r.answerable]),
                abstention=_rate([r.abstained for r in unans]),
                false_abstention=_rate([r.abstained for r in ans]),
                first_token_s=median([r.first_token_s for r in ok if r.first_token_s is not None]),
                tokens_per_s=median([r.tokens_per_s for r in ok if r.tokens_per_s is not None]),
                answer_s=median([r.total_s for r in ok]),
                total_s=sum(r.total_s for r in mine),
                first_error=next((r.error for r in mine if r.error), ""),
            )
        )
    n_ans = sum(i.answerable for i in items)
    complete = all(r.answered == len(items) for r in rows)
    return EvalReport(
        run_id=info.id,
        set_name=info.set_name,
        set_version=info.set_version,
        judge_model=info.judge_model,
        questions=len(items),
        answerable=n_ans,
        unanswerable=len(items) - n_ans,
        rows=rows,
        recommendation=recommend(rows),
        complete=complete,
    )


# ---- which approach? ---------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _secs(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f} s"


def margin(a: ConfigRow, b: ConfigRow) -> float:
    """Twice the standard error of the difference of two correct rates, at least MIN_MARGIN."""
    p1, p2 = a.correct or 0.0, b.correct or 0.0
    n1, n2 = max(a.answerable, 1), max(b.answerable, 1)
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return max(MIN_MARGIN, 2 * se)


def _best(rows: Sequence[ConfigRow]) -> ConfigRow | None:
    scored = [r for r in rows if r.correct is not None]
    return max(scored, key=lambda r: (r.correct or 0.0, -(r.answer_s or 0.0)), default=None)


def _describe(r: ConfigRow) -> str:
    return f"{r.title} answered {_pct(r.correct)} of {r.answerable} answerable questions correctly"


def recommend(rows: Sequence[ConfigRow]) -> Recommendation:
    """See the module docstring: the rule, the evidence, the caveats."""
    usable = [r for r in rows if r.answered]
    with_docs = _best([r for r in usable if r.rag])
    without = _best([r for r in usable if not r.rag])
    base_rag = _best([r for r in usable if r.rag and not r.fine_tuned])
    tuned_rag = _best([r for r in usable if r.rag and r.fine_tuned])
    tuned_alone = _best([r for r in usable if not r.rag and r.fine_tuned])
    evidence: list[str] = []
    caveats = [
        "Documents that change often, or a need to show sources, favour RAG whatever these "
        "numbers say: a fine-tuned model only knows what it was trained on, and cannot cite.",
        "A consistent style and format, or the lowest latency, favour fine-tuning; a "
        "hybrid (a fine-tuned model that also gets the documents) serves both.",
    ]
    if not usable or (with_docs is None and without is None):
        return Recommendation(
            "no clear winner",
            "No configuration answered any question, so there is nothing to compare yet.",
            [f"{r.title}: {r.errors} failed answers ({r.first_error})" for r in rows if r.errors],
            caveats,
        )
    for r in (with_docs, without, tuned_rag, tuned_alone):
        if r is not None and _describe(r) not in evidence:
            evidence.append(_describe(r))
    if with_docs is not None:
        evidence.append(
            f"With documents, retrieval found the source passage in the top {with_docs.top_k} "
            f"for {_pct(with_docs.hit_at_k)} of questions (MRR {with_docs.mrr or 0:.2f}), and "
            f"{_pct(with_docs.citation_support)} of its citations were supported by the cited "
            "passage."
        )
    for r in (with_docs, without):
        if r is not None and r.abstention is not None:
            evidence.append(
                f"On {r.unanswerable} questions the documents do not answer, {r.title} declined "
                f"{_pct(r.abstention)} of the time."
            )
    for r in (with_docs, without):
        if r is not None:
            evidence.append(
                f"{r.title}: median {_secs(r.answer_s)} per answer, first token after "
                f"{_secs(r.first_token_s)}."
            )
    small = min(r.answerable for r in usable)
    if small < 30:
        noise = margin(with_docs, without) if with_docs and without else 0.2
        caveats.insert(
            0,
            f"Only {small} answerable questions per configuration: differences under about "
            f"{100 * noise:.0f} points are within noise.",
        )
    if not any(r.fine_tuned for r in usable):
        caveats.append(
            "No fine-tuned model was evaluated: import one (`ftrag models import`) and run "
            "again to measure fine-tuning against RAG."
        )

    if tuned_rag is not None and base_rag is not None:
        gap = (tuned_rag.correct or 0) - (base_rag.correct or 0)
        if gap > margin(tuned_rag, base_rag):
            return Recommendation(
                "hybrid",
                f"Hybrid: the fine-tuned model with documents ({tuned_rag.title}) was correct "
                f"{_pct(tuned_rag.correct)} of the time, against {_pct(base_rag.correct)} for "
                f"the base model with documents ({base_rag.title}).",
                evidence,
                caveats,
            )
    if with_docs is not None and without is not None:
        gain = (with_docs.correct or 0) - (without.correct or 0)
        m = margin(with_docs, without)
        if gain > m:
            return Recommendation(
                "rag",
                f"RAG: with documents, {_pct(with_docs.correct)} correct against "
                f"{_pct(without.correct)} without ({100 * gain:.0f} points more, above the "
                f"{100 * m:.0f}-point noise margin); the knowledge is in your documents.",
                evidence,
                caveats,
            )
        fast = (
            without.answer_s is not None
            and with_docs.answer_s is not None
            and without.answer_s <= FASTER * with_docs.answer_s
        )
        if gain <= m and fast:
            what = "Fine-tuning" if without.fine_tuned else "The model alone"
            return Recommendation(
                "fine-tuning",
                f"{what}: without documents, {without.title} was as correct "
                f"({_pct(without.correct)} against {_pct(with_docs.correct)}, within the "
                f"{100 * m:.0f}-point noise margin) and faster ({_secs(without.answer_s)} against "
                f"{_secs(with_docs.answer_s)} per answer).",
                evidence,
                caveats,
            )
        return Recommendation(
            "no clear winner",
            f"No clear winner: {_pct(with_docs.correct)} correct with documents against "
            f"{_pct(without.correct)} without, a difference within the {100 * m:.0f}-point "
            "noise margin, at similar speed.",
            evidence,
            caveats,
        )
    only = with_docs or without
    assert only is not None
    side = "with" if only.rag else "without"
    return Recommendation(
        "no clear winner",
        f"Only configurations {side} documents were evaluated ({_describe(only)}); add one "
        f"{'without' if only.rag else 'with'} documents to compare the approaches.",
        evidence,
        caveats,
    )


# ---- CSV and HTML ------------------------------------------------------------------------

CSV_COLUMNS = [
    "title",
    "model",
    "rag",
    "top_k",
    "fine_tuned",
    "own_prompt",
    "answered",
    "errors",
    "hit_at_k",
    "mrr",
    "f1",
    "containment",
    "correct",
    "judge_correct",
    "citation_support",
    "cited_answers",
    "abstention",
    "false_abstention",
    "first_token_s",
    "tokens_per_s",
    "answer_s",
    "total_s",
]


def report_csv(report: EvalReport) -> str:
    """One row per configuration; rates as fractions (0..1), times in seconds, blank = n/a."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        values = asdict(row)
        cells = []
        for name in CSV_COLUMNS:
            v = values[name]
            cells.append("" if v is None else f"{v:.4f}" if isinstance(v, float) else v)
        writer.writerow(cells)
    return out.getvalue()


# Columns of the HTML table: (heading, field, kind)
_TABLE = [
    ("hit@k", "hit_at_k", "pct"),
    ("MRR", "mrr", "num"),
    ("token F1", "f1", "num"),
    ("key facts", "containment", "pct"),
    ("correct", "correct", "pct"),
    ("LLM judge", "judge_correct", "pct"),
    ("citations supported", "citation_support", "pct"),
    ("abstains (unanswerable)", "abstention", "pct"),
    ("abstains (answerable)", "false_abstention", "pct"),
    ("first token", "first_token_s", "s"),
    ("tokens/s", "tokens_per_s", "rate"),
    ("per answer", "answer_s", "s"),
]
_CHART = [
    ("correct", "correct"),
    ("hit@k", "hit_at_k"),
    ("citations supported", "citation_support"),
    ("abstains when it should", "abstention"),
]
_COLOURS = ["#3b6ea5", "#e08a2e", "#4c9a5b", "#b0463c", "#7a5aa6", "#6b6b6b"]


def format_cell(value: Any, kind: str) -> str:
    """A metric as the report shows it: kind "pct", "s", "rate" or plain; "–" when absent."""
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.0f}%"
    if kind == "s":
        return f"{value:.2f} s"
    if kind == "rate":
        return f"{value:.1f}"
    return f"{value:.2f}"


def _svg_chart(rows: Sequence[ConfigRow]) -> str:
    """Grouped horizontal bars: one group per rate, one bar per configuration."""
    bar, gap, label_w, width = 14, 10, 170, 360
    height = len(_CHART) * (len(rows) * bar + gap) + 20 + 18 * len(rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + width + 60}" '
        f'height="{height}" role="img" aria-label="rates by configuration">'
    ]
    y = 10
    for heading, name in _CHART:
        parts.append(f'<text x="0" y="{y + bar}" font-size="12">{html.escape(heading)}</text>')
        for i, row in enumerate(rows):
            value = getattr(row, name)
            w = 0 if value is None else round(width * value)
            colour = _COLOURS[i % len(_COLOURS)]
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar - 2}" fill="{colour}">'
                f"<title>{html.escape(row.title)}: {format_cell(value, 'pct')}</title></rect>"
            )
            parts.append(
                f'<text x="{label_w + w + 4}" y="{y + bar - 3}" font-size="11">'
                f"{format_cell(value, 'pct')}</text>"
            )
            y += bar
        y += gap
    for i, row in enumerate(rows):
        colour = _COLOURS[i % len(_COLOURS)]
        parts.append(f'<rect x="0" y="{y + 4}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="16" y="{y + 13}" font-size="12">{html.escape(row.title)}</text>')
        y += 18
    parts.append("</svg>")
    return "\n".join(parts)


def report_html(report: EvalReport) -> str:
    """A self-contained page: the summary with its evidence, the table, a bar chart."""
    e = html.escape
    rec = report.recommendation
    judge = f"LLM judge ({report.judge_model})" if report.judge_model else "LLM judge"
    heads = "".join(
        f"<th>{e(judge if name == 'judge_correct' else h)}</th>" for h, name, _ in _TABLE
    )
    body = []
    for row in report.rows:
        cells = "".join(
            f"<td>{format_cell(getattr(row, name), kind)}</td>" for _, name, kind in _TABLE
        )
        tuned = {True: "fine-tuned", False: "base", None: "?"}[row.fine_tuned]
        err = f' <span class="err">{row.errors} failed</span>' if row.errors else ""
        body.append(
            f"<tr><th>{e(row.title)}<br><small>{e(tuned)}, {row.answered} answered{err}"
            f"</small></th>{cells}</tr>"
        )
    evidence = "".join(f"<li>{e(x)}</li>" for x in rec.evidence)
    caveats = "".join(f"<li>{e(x)}</li>" for x in rec.caveats)
    status = "" if report.complete else "<p class='err'>This run is incomplete: resume it.</p>"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(report.created_at))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Evaluation {e(report.run_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 70em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
tbody th {{ text-align: left; }}
.err {{ color: #b0463c; }}
.summary {{ background: #f4f6fa; padding: 0.8em 1.2em; border-left: 4px solid #3b6ea5; }}
small {{ color: #666; font-weight: normal; }}
</style></head><body>
<h1>Fine-tuning or RAG? Evaluation report</h1>
<p>Set <b>{e(report.set_name)}</b> (version {report.set_version}): {report.answerable}
answerable and {report.unanswerable} unanswerable questions. Run {e(report.run_id)},
{e(when)}.</p>
{status}
<div class="summary"><h2>Which approach?</h2><p><b>{e(rec.headline)}</b></p>
<h3>Evidence</h3><ul>{evidence}</ul><h3>Keep in mind</h3><ul>{caveats}</ul></div>
<h2>Figures</h2>
<table><thead><tr><th>configuration</th>{heads}</tr></thead>
<tbody>{"".join(body)}</tbody></table>
{_svg_chart(report.rows)}
<h2>How the figures are computed</h2>
<ul>
<li>hit@k / MRR: whether, and how high, the passage a question was written from was retrieved
(answerable questions, configurations with documents).</li>
<li>token F1: word overlap of answer and reference (SQuAD F1). Key facts: share of the
reference's content words present in the answer; "correct" when at least half are.</li>
<li>{e(judge)}: a different local model's verdict; a model's judgement, not a measurement.</li>
<li>Citations supported: a citation [n] is supported when source n contains at least half of
the content words of the sentence that cites it.</li>
<li>Abstains: the answer declines ("The documents do not say", "I don't know", "not in the
sources", ...). Wanted on unanswerable questions, unwanted on answerable ones.</li>
<li>Times are medians per answer on this machine; tokens/s as Ollama reported it.</li>
</ul>
</body></html>
"""
