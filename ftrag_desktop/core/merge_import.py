"""Import an outside LoRA adapter by merging it into its base GGUF, then importing that GGUF.

Ollama 0.34.1 and later refuse to create adapter models, so an adapter (a PEFT safetensors
folder or a GGUF LoRA) becomes usable by merging it into the base model's GGUF first
(`gguf_merge.merge_adapter`) and importing the merged file as a whole model (`run_import`).

- `check_merge` is everything that can be checked before a byte is written: the base file is a
  whole model, the adapter fits it (architecture, layers, widths), and the import of the merged
  file would pass (`validate` on the base file, whose metadata the merged file keeps: the name,
  the Ollama base, the chat template, the parameters, Ollama's disk).
- `merge_then_import` yields those checks, the merge's progress (`MergeStep`, `MergeProgress`,
  `Merged`), then `run_import`'s events for the merged file, and records in the lineage that
  the model was merged from that adapter (`Lineage.merged_from`).

The merged file is written under the data home (`merged_dir`), never beside the user's files.
A cancel or a failure leaves no merged file behind (the merge writes under a temporary name;
a merged file whose import failed is removed) and nothing in Ollama (`run_import` cleans up).
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftrag_desktop.core.gguf_lora import field_value, open_gguf, read_base_model, read_lora
from ftrag_desktop.core.gguf_merge import OUT_TYPES, MergeResult, merge_adapter
from ftrag_desktop.core.import_plan import ImportPlan, ImportRequest, validate
from ftrag_desktop.core.model_import import ImportEvent, ImportFinished, ImportStep, run_import
from ftrag_desktop.errors import Cancelled, ModelFileError

if TYPE_CHECKING:
    from ftrag_desktop.core.models import ModelManager
    from ftrag_desktop.paths import Home

__all__ = [
    "DEFAULT_OUT_TYPE",
    "MergeCheck",
    "MergeEvent",
    "MergeImportRequest",
    "MergeProgress",
    "MergeStep",
    "MergeValidated",
    "Merged",
    "check_merge",
    "merge_then_import",
    "merged_dir",
    "merged_path",
]

DEFAULT_OUT_TYPE = "Q8_0"  # nearly lossless, half the size of F16


@dataclass(frozen=True)
class MergeImportRequest:
    """Merge `request.source` (the adapter: a PEFT folder or a GGUF LoRA) into `base_gguf`,
    then import the result as `request` says (name, Ollama base, system prompt, parameters)."""

    base_gguf: Path
    request: ImportRequest
    out_type: str = DEFAULT_OUT_TYPE

    @property
    def adapter(self) -> Path:
        return Path(self.request.source).expanduser()


@dataclass(frozen=True)
class MergeCheck:
    """What `check_merge` found: the adapter, the base file, and the import to come."""

    plan: ImportPlan  # the merged file's import, as validated on the base file
    adapter: Path
    adapter_format: str  # "peft" (safetensors folder) or "gguf"
    adapter_bytes: int
    adapter_base_hint: str  # what the adapter says it was trained on ("" when it does not)
    rank: int
    alpha: float
    tensors: int  # how many base tensors the adapter changes
    base_gguf: Path
    base_name: str  # the base file's general.name
    base_bytes: int
    architecture: str
    out: Path  # where the merged GGUF is written
    out_type: str


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeValidated:
    """The adapter fits the base file and the merged model's import would pass."""

    check: MergeCheck


@dataclass(frozen=True)
class MergeStep:
    """The merge began."""

    text: str


@dataclass(frozen=True)
class MergeProgress:
    """Bytes of the merged file written so far."""

    file: str
    done: int
    total: int


@dataclass(frozen=True)
class Merged:
    """The merged GGUF is complete; its import comes next."""

    result: MergeResult


MergeEvent = MergeValidated | MergeStep | MergeProgress | Merged


# --- where merged files live --------------------------------------------------------------------


def merged_dir(home: Home) -> Path:
    """Where merged GGUFs are written: under the data home, never beside the user's files."""
    path = home.root / "merged"
    path.mkdir(parents=True, exist_ok=True)
    return path


def merged_path(home: Home, name: str) -> Path:
    """The merged GGUF of the model `name` ("my-tune:latest" -> merged/my-tune-latest.gguf)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "merged"
    return merged_dir(home) / f"{stem}.gguf"


# --- checking ---------------------------------------------------------------------------------


def check_merge(manager: ModelManager, request: MergeImportRequest) -> MergeCheck:
    """Everything that can be checked before the merge writes a byte; raises `UserError`s."""
    if request.out_type.upper() not in OUT_TYPES:
        raise ModelFileError(
            f"Merged weights cannot be written as {request.out_type}.",
            f"Choose one of {', '.join(OUT_TYPES)} (Q8_0 is nearly lossless and half of F16).",
        )
    base_gguf = Path(request.base_gguf).expanduser().resolve()
    adapter = request.adapter.resolve()
    base = read_base_model(base_gguf)  # a whole model, not an adapter or one part of a split
    lora = read_lora(adapter, base)  # the adapter fits it: architecture, layers, widths
    target = replace(request.request, source=base_gguf, kind="gguf")
    plan = validate(manager.client, target, keep_free_bytes=manager.keep_free_bytes)
    return MergeCheck(
        plan=plan,
        adapter=adapter,
        adapter_format=lora.format,
        adapter_bytes=lora.weights_file.stat().st_size,
        adapter_base_hint=lora.base_model_hint,
        rank=lora.rank,
        alpha=lora.alpha,
        tensors=len(lora.tensors),
        base_gguf=base_gguf,
        base_name=base.name,
        base_bytes=base_gguf.stat().st_size,
        architecture=base.architecture,
        out=merged_path(manager.home, plan.name),
        out_type=request.out_type.upper(),
    )


# --- merge, then import -----------------------------------------------------------------------


def merge_then_import(
    manager: ModelManager, request: MergeImportRequest, cancel: threading.Event
) -> Iterator[MergeEvent | ImportEvent]:
    """Check, merge, import; see the module docstring.  Raises `UserError`s or `Cancelled`."""
    started = time.monotonic()
    adapter = request.adapter
    yield ImportStep("validating", f"Checking {adapter.name} against {request.base_gguf.name}")
    check = check_merge(manager, request)
    yield MergeValidated(check)
    _check(cancel)

    yield MergeStep(f"Merging {adapter.name} into {check.base_gguf.name}")
    result = yield from _merge(check, check.plan.name.removesuffix(":latest"), cancel)
    yield Merged(result)

    finished: ImportFinished | None = None
    target = replace(request.request, source=result.out, kind="gguf")
    try:
        _check(cancel)
        for event in run_import(manager, target, cancel):
            if isinstance(event, ImportFinished):
                finished = event
            else:
                yield event
    except BaseException:
        result.out.unlink(missing_ok=True)  # a merged file nobody imported is only clutter
        raise
    assert finished is not None
    lineage = replace(
        finished.lineage, merged_from=_merge_record(check, result, request.request.base)
    )
    manager.lineages.save(lineage)
    yield replace(
        finished,
        model=replace(finished.model, lineage=lineage, fine_tuned=True),
        lineage=lineage,
        seconds=time.monotonic() - started,
    )


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled


def _merge(
    check: MergeCheck, name: str, cancel: threading.Event
) -> Generator[MergeProgress, None, MergeResult]:
    """`merge_adapter` on a thread of its own, its progress callbacks turned into events."""
    updates: queue.Queue[tuple[int, int] | None] = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = merge_adapter(
                check.base_gguf,
                check.adapter,
                check.out,
                out_type=check.out_type,
                progress=lambda done, total: updates.put((done, total)),
                cancel=cancel,
                name=name,
            )
        except BaseException as e:  # handed to the generator's thread below
            outcome["error"] = e
        finally:
            updates.put(None)

    worker = threading.Thread(target=work, name="ftrag-merge-import", daemon=True)
    worker.start()
    ended = False
    last = -1
    try:
        while (item := updates.get()) is not None:
            done, total = item
            permille = 1000 * done // total if total else 1000
            if permille != last:  # a big model reports every 32 MB: one event per 0.1 %
                last = permille
                yield MergeProgress(check.out.name, done, total)
        ended = True
    finally:
        if not ended:
            cancel.set()  # the consumer went away: stop the merge rather than wait for it
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    result: MergeResult = outcome["result"]
    return result


def _merge_record(check: MergeCheck, result: MergeResult, ollama_base: str) -> dict[str, Any]:
    """What `Lineage.merged_from` keeps: the adapter, the base file and how they were merged."""
    return {
        "adapter": str(check.adapter),
        "adapter_format": result.adapter_format,
        "adapter_sha256": _recorded_adapter_sha256(result.out),
        "adapter_bytes": check.adapter_bytes,
        "adapter_base_model": check.adapter_base_hint,
        "rank": result.rank,
        "alpha": result.alpha,
        "base_gguf": str(check.base_gguf),
        "base_name": check.base_name,
        "base_ollama": ollama_base,
        "tensors_merged": result.tensors_merged,
        "out_type": result.out_type,
        "merged_file": str(result.out),
        "merged_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _recorded_adapter_sha256(merged: Path) -> str:
    """The adapter's sha256 as the merge wrote it into the merged file (`ftrag.merge.*`)."""
    reader = open_gguf(merged)
    try:
        value = field_value(reader, "ftrag.merge.adapter_sha256")
    finally:
        del reader
    return value if isinstance(value, str) else ""
