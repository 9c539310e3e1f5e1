"""The events a fine-tune yields, and their JSON form (one object per line in `ftrag train
--json`, which the GUI's Train tab reads).

Every JSON object has ``"event"``, one of the names below, plus the event's fields; the set
of fields of each event only grows.  See `ftrag_desktop.cli_train` for the full schema.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from ftrag_desktop.core.train_estimate import TrainEstimate

__all__ = [
    "STAGES",
    "AdapterSaved",
    "CheckpointSaved",
    "DataPrepared",
    "Merged",
    "Stage",
    "TrainEstimated",
    "TrainEvent",
    "TrainFinished",
    "TrainNotice",
    "TrainProgress",
    "TrainResumed",
    "TrainStage",
    "TrainStep",
    "ValidationLoss",
    "Verified",
    "event_to_dict",
]

Stage = Literal[
    "checking",
    "loading",
    "preparing",
    "training",
    "saving",
    "merging",
    "verifying",
    "importing",
    "recording",
]
STAGES: tuple[Stage, ...] = (
    "checking",
    "loading",
    "preparing",
    "training",
    "saving",
    "merging",
    "verifying",
    "importing",
    "recording",
)


@dataclass(frozen=True)
class TrainStage:
    """A stage began."""

    stage: Stage
    text: str


@dataclass(frozen=True)
class TrainNotice:
    """Something to know that does not stop the run."""

    text: str


@dataclass(frozen=True)
class TrainEstimated:
    """What the run will cost, before a model is loaded; refused after this when it cannot
    fit (the error follows)."""

    run_id: str
    run_dir: str
    estimate: TrainEstimate
    base: dict[str, Any]
    data: dict[str, Any]
    device: dict[str, Any]
    options: dict[str, Any]


@dataclass(frozen=True)
class DataPrepared:
    """The examples tokenized with the base model's chat template."""

    train_examples: int
    valid_examples: int
    tokens: int  # of the training examples, after cutting at the max length
    trained_tokens: int  # of those, the assistant's (the rest is prompt, masked)
    truncated: int
    dropped: int
    total_steps: int


@dataclass(frozen=True)
class TrainResumed:
    """Training continues from a checkpoint of an earlier, interrupted run."""

    step: int
    checkpoint: str


@dataclass(frozen=True)
class TrainStep:
    """One optimizer step done."""

    step: int
    total_steps: int
    epoch: float  # passes over the training data so far, e.g. 1.5
    loss: float  # mean over the step's assistant tokens
    lr: float
    tokens_per_s: float  # prompt and answer tokens through the model, this step
    tokens_seen: int
    elapsed_s: float
    eta_s: float


@dataclass(frozen=True)
class ValidationLoss:
    """The mean loss over the validation examples' assistant tokens."""

    step: int
    loss: float


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str


@dataclass(frozen=True)
class TrainProgress:
    """Part of a long stage (merging tensors, hashing or uploading for the import)."""

    stage: Stage
    done: int
    total: int
    unit: str  # "tensors", "bytes"
    text: str = ""


@dataclass(frozen=True)
class AdapterSaved:
    path: str


@dataclass(frozen=True)
class Merged:
    path: str
    bytes: int
    out_type: str
    tensors_merged: int
    seconds: float


@dataclass(frozen=True)
class Verified:
    """The merged GGUF loaded in llama.cpp and generated this."""

    path: str
    reply: str


@dataclass(frozen=True)
class TrainFinished:
    """Always last on success: the model exists in Ollama and its lineage is recorded."""

    model: str
    run_id: str
    gguf: str
    adapter: str
    steps: int
    train_loss: float | None
    val_loss: float | None
    seconds: float
    device: str
    lineage: dict[str, Any] = field(default_factory=dict)


TrainEvent = (
    TrainStage
    | TrainNotice
    | TrainEstimated
    | DataPrepared
    | TrainResumed
    | TrainStep
    | ValidationLoss
    | CheckpointSaved
    | TrainProgress
    | AdapterSaved
    | Merged
    | Verified
    | TrainFinished
)

EVENT_NAMES: dict[type, str] = {
    TrainStage: "stage",
    TrainNotice: "notice",
    TrainEstimated: "estimate",
    DataPrepared: "data",
    TrainResumed: "resumed",
    TrainStep: "step",
    ValidationLoss: "validation",
    CheckpointSaved: "checkpoint",
    TrainProgress: "progress",
    AdapterSaved: "adapter",
    Merged: "merged",
    Verified: "verified",
    TrainFinished: "finished",
}


def event_to_dict(event: TrainEvent) -> dict[str, Any]:
    """``{"event": name, **fields}``; the estimate is a nested object with its `fits`."""
    doc: dict[str, Any] = {"event": EVENT_NAMES[type(event)]}
    for f in fields(event):
        value = getattr(event, f.name)
        if isinstance(value, TrainEstimate):
            doc[f.name] = value.to_dict()
        elif hasattr(value, "__dataclass_fields__"):
            doc[f.name] = asdict(value)
        else:
            doc[f.name] = value
    return doc
