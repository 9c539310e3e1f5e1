"""What a comparison leaves behind: its configurations, answers, figures and the user's pick.

Plain records with no behaviour beyond (de)serialisation, so `conversations.py` can store them
without importing the runner in `compare.py` (which itself imports `conversations`).  Reading
is lenient: missing keys take their defaults and unknown keys are ignored, so files written by
older or newer versions still load.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

MAX_CONFIGS = 4


@dataclass(frozen=True)
class CompareConfig:
    """One way of answering: a model, with or without the user's documents, and how many."""

    model: str
    rag: bool = True
    top_k: int = 0  # sources to retrieve; 0: the settings' top_k
    label: str = ""  # the user's name for it; blank: described from the fields

    def title(self) -> str:
        """A short description, e.g. "llama3.2 + documents (top 6)" or "llama3.2 alone"."""
        if self.label:
            return self.label
        if not self.rag:
            return f"{self.model} alone"
        k = f" (top {self.top_k})" if self.top_k else ""
        return f"{self.model} + documents{k}"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CompareConfig:
        return cls(
            model=str(raw.get("model") or ""),
            rag=bool(raw.get("rag", True)),
            top_k=int(raw.get("top_k") or 0),
            label=str(raw.get("label") or ""),
        )


@dataclass(frozen=True)
class AnswerMetrics:
    """The figures of one answer.  Times are in seconds, measured on this machine.

    `first_token_s` and `total_s` count from when this configuration's turn began (its
    retrieval, then its request), never from the start of the whole comparison.
    `tokens_per_s` comes from Ollama's eval_count / eval_duration when the server reported
    them (`speed_source` "ollama"), else from the stream's own timing ("measured").
    `queued_behind` lists the configurations (0-based) this one probably waited for when they
    were all sent at once: its first token came only after they had finished.
    """

    first_token_s: float | None = None
    total_s: float = 0.0
    tokens_per_s: float | None = None
    speed_source: str = ""  # "ollama" | "measured" | "" (no tokens)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    retrieval_s: float = 0.0
    started_s: float = 0.0  # when its turn began, from the start of the comparison
    queued_behind: tuple[int, ...] = ()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AnswerMetrics:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["queued_behind"] = tuple(int(i) for i in values.get("queued_behind") or ())
        return cls(**values)


@dataclass
class CompareAnswer:
    """What one configuration produced, and the model that produced it."""

    model: str
    text: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)  # as `source_to_dict` gives
    metrics: AnswerMetrics = field(default_factory=AnswerMetrics)
    search_mode: str = ""
    note: str = ""
    error: str = ""  # a message for people: this configuration failed (the others went on)
    cancelled: bool = False  # stopped by the user, part-way or before it began
    ran: bool = True  # False: stopped before its turn came; nothing was asked

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CompareAnswer:
        return cls(
            model=str(raw.get("model") or ""),
            text=str(raw.get("text") or ""),
            sources=[dict(s) for s in raw.get("sources") or [] if isinstance(s, Mapping)],
            metrics=AnswerMetrics.from_dict(raw.get("metrics") or {}),
            search_mode=str(raw.get("search_mode") or ""),
            note=str(raw.get("note") or ""),
            error=str(raw.get("error") or ""),
            cancelled=bool(raw.get("cancelled", False)),
            ran=bool(raw.get("ran", True)),
        )


@dataclass
class Comparison:
    """One question answered by up to four configurations; `answers[i]` is `configs[i]`'s."""

    id: str
    question: str
    configs: list[CompareConfig]
    answers: list[CompareAnswer]
    best: int | None = None  # the answer the user marked as best
    parallel: bool = False  # whether the configurations were sent at once
    created_at: float = field(default_factory=time.time)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Comparison:
        """Raises KeyError, TypeError or ValueError on a record that is not a comparison."""
        configs = [CompareConfig.from_dict(c) for c in raw["configs"]]
        answers = [CompareAnswer.from_dict(a) for a in raw["answers"]]
        if len(answers) != len(configs):
            raise ValueError("a comparison needs one answer per configuration")
        best = raw.get("best")
        return cls(
            id=str(raw["id"]),
            question=str(raw.get("question") or ""),
            configs=configs,
            answers=answers,
            best=int(best) if best is not None and 0 <= int(best) < len(answers) else None,
            parallel=bool(raw.get("parallel", False)),
            created_at=float(raw.get("created_at") or 0.0),
        )
