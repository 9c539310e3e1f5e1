"""A trained model's lineage in words: the base, the data, the hyperparameters, the losses.

`training_rows(training)` turns the ``training`` record of a `core.models.Lineage` (written by
`core.train_pipeline` when ftrag trained the model itself) into (label, value) rows, for
`ftrag models show`, the models manager's details and tooltip (`app.models_table.describe`) and
the Train tab's summary of a finished run; `merge_rows(merged_from)` does the same for a model
merged from an outside adapter (`core.merge_import`).  The records come from a JSON file, so
every field is optional here.  `local_time` is how every lineage timestamp is shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = [
    "duration_text",
    "hyperparameters_text",
    "local_time",
    "loss_text",
    "merge_rows",
    "training_rows",
]

# (key, label) in the order people read them; the rest follow under their own names.
HYPERPARAMETERS = (
    ("rank", "rank"),
    ("alpha", "alpha"),
    ("lr", "learning rate"),
    ("epochs", "epochs"),
    ("max_length", "max length"),
    ("batch_size", "batch"),
    ("grad_accum", "gradient accumulation"),
    ("dropout", "dropout"),
    ("warmup_ratio", "warmup"),
    ("max_steps", "max steps"),
    ("seed", "seed"),
    ("val_fraction", "validation share"),
    ("out_type", "written as"),
)


def local_time(iso: str) -> str:
    """An ISO-8601 timestamp in local time to the minute; the input when it does not parse."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def loss_text(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "—"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) if value else "all linear layers"
    return str(value)


def hyperparameters_text(hyper: dict[str, Any]) -> str:
    """`rank 8, alpha 16, learning rate 0.0002, …, target modules all linear layers`."""
    known = dict(HYPERPARAMETERS)
    parts = [f"{label} {_value(hyper[key])}" for key, label in HYPERPARAMETERS if key in hyper]
    if hyper.get("max_steps") == 0:
        parts = [p for p in parts if not p.startswith("max steps")]
    if "target_modules" in hyper:
        parts.append(f"target modules {_value(hyper['target_modules'])}")
    rest = sorted(k for k in hyper if k not in known and k != "target_modules")
    parts += [f"{k.replace('_', ' ')} {_value(hyper[k])}" for k in rest]
    return ", ".join(parts)


def training_rows(training: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of a `Lineage.training` record."""
    rows: list[tuple[str, str]] = []
    base = str(training.get("base") or "")
    arch = str(training.get("base_architecture") or "")
    if base:
        rows.append(("Trained from", f"{base} ({arch})" if arch else base))
    if training.get("base_path") and training.get("base_path") != base:
        rows.append(("Base file", str(training["base_path"])))
    if training.get("dataset"):
        rows.append(("Training data", str(training["dataset"])))
    if training.get("dataset_sha256"):
        rows.append(("Data sha256", str(training["dataset_sha256"])))
    if "train_examples" in training:
        rows.append(
            (
                "Examples",
                f"{training.get('train_examples', 0)} training, "
                f"{training.get('valid_examples', 0)} validation",
            )
        )
    hyper = training.get("hyperparameters")
    if isinstance(hyper, dict) and hyper:
        rows.append(("Hyperparameters", hyperparameters_text(hyper)))
    rows.append(
        (
            "Final loss",
            f"training {loss_text(training.get('train_loss'))}, "
            f"validation {loss_text(training.get('val_loss'))}",
        )
    )
    if "steps" in training:
        tokens = training.get("tokens")
        how = f"{training['steps']} steps"
        if isinstance(tokens, int):
            how += f", {tokens:,} tokens"
        if training.get("device"):
            how += f" on {training['device']}"
        if training.get("train_seconds") is not None:
            how += f" in {duration_text(float(training['train_seconds']))}"
        rows.append(("Training", how))
    if training.get("trained_at"):
        rows.append(("Trained", local_time(str(training["trained_at"]))))
    if training.get("run_id"):
        rows.append(("Run", str(training["run_id"])))
    return rows


def merge_rows(merged_from: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of a `Lineage.merged_from` record (read from JSON: all optional)."""
    rows: list[tuple[str, str]] = []
    adapter = str(merged_from.get("adapter") or "")
    if adapter:
        what = "PEFT folder" if merged_from.get("adapter_format") == "peft" else "GGUF LoRA"
        rows.append(("Merged from adapter", f"{adapter} ({what})"))
    if merged_from.get("adapter_sha256"):
        rows.append(("Adapter sha256", str(merged_from["adapter_sha256"])))
    if merged_from.get("adapter_base_model"):
        rows.append(("Adapter trained on", str(merged_from["adapter_base_model"])))
    base = str(merged_from.get("base_gguf") or "")
    if base:
        ollama = merged_from.get("base_ollama")
        rows.append(("Merged into", f"{base} ({ollama})" if ollama else base))
    how = []
    if "rank" in merged_from:
        how.append(f"rank {merged_from['rank']}")
    if "alpha" in merged_from:
        alpha = merged_from["alpha"]
        how.append(f"alpha {alpha:g}" if isinstance(alpha, int | float) else f"alpha {alpha}")
    if "tensors_merged" in merged_from:
        how.append(f"{merged_from['tensors_merged']} tensors")
    if merged_from.get("out_type"):
        how.append(f"written as {merged_from['out_type']}")
    if how:
        rows.append(("Merge", ", ".join(how)))
    if merged_from.get("merged_at"):
        rows.append(("Merged", local_time(str(merged_from["merged_at"]))))
    return rows
