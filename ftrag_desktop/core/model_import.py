"""Import a fine-tuned model into Ollama: validate, upload, create, verify, record lineage.

`run_import` is a generator of typed events (the CLI prints them, the GUI turns them into a
progress dialog, tests collect them).  The steps, in order:

1. **validating** (`import_plan.validate`): the file's own header, the name, the base model
   (present, same architecture, width and depth), Ollama's free disk, the chat template.
2. **hashing** and 3. **uploading** (`blob_transfer`): sha256 of each file with progress, then
   each blob POSTed with progress, skipped when the server already has it (HEAD
   /api/blobs/<digest>).
4. **creating**: /api/create with `files` (a model) or `from` + `adapters` (an adapter).
5. **verifying**: the model is in /api/tags, /api/show kept its num_ctx and adapter, and it
   answers a one-line probe.  Only then is lineage recorded and `ImportFinished` yielded.

Setting `cancel` stops at the next chunk or step; whatever was created is deleted again and
`Cancelled` is raised.  A model that fails verification is deleted too: success means the
model exists and answers.  Every server error keeps Ollama's text word for word and gains a
hint on what to do.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ftrag_desktop.core.blob_transfer import DigestCache, ImportProgress, hash_file, upload
from ftrag_desktop.core.import_plan import (
    ADAPTER_ARCHITECTURES,
    DiskCheck,
    ImportPlan,
    ImportRequest,
    UploadFile,
    check_disk,
    validate,
)
from ftrag_desktop.core.llm import ModelInfo, normalize_model_name
from ftrag_desktop.core.models import Lineage, ModelRecord, build_record, parse_parameters
from ftrag_desktop.errors import (
    AdaptersUnsupported,
    Cancelled,
    ModelImportFailed,
    OllamaError,
    OllamaServerError,
)

if TYPE_CHECKING:
    from ftrag_desktop.core.llm import OllamaClient
    from ftrag_desktop.core.models import ModelManager

__all__ = [
    "ADAPTER_ARCHITECTURES",
    "STEPS",
    "BlobSkipped",
    "DiskCheck",
    "ImportEvent",
    "ImportFinished",
    "ImportNotice",
    "ImportPlan",
    "ImportProgress",
    "ImportRequest",
    "ImportServerStatus",
    "ImportStep",
    "ImportValidated",
    "UploadFile",
    "check_disk",
    "create_arguments",
    "run_import",
    "validate",
]

PROBE_QUESTION = "Reply with one short sentence: are you ready?"
MERGE_ADVICE = (
    "This Ollama version does not create adapter models: merge the adapter into its base and "
    "import the merged GGUF: `ftrag merge-adapter --base BASE.gguf --adapter ADAPTER "
    "--out merged.gguf` (a PEFT folder or a GGUF LoRA), then "
    "`ftrag models import merged.gguf --name NAME --base BASE`."
)
_ADAPTER_REFUSAL = re.compile(
    r"adapters?\b.*\b(no longer|not|un)\s*supported|does not support adapters", re.IGNORECASE
)

Step = Literal["validating", "hashing", "uploading", "creating", "verifying"]
STEPS: tuple[Step, ...] = ("validating", "hashing", "uploading", "creating", "verifying")


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportStep:
    """A step began."""

    step: Step
    text: str


@dataclass(frozen=True)
class ImportValidated:
    """Validation passed: the plan says what will happen (and what was checked)."""

    plan: ImportPlan


@dataclass(frozen=True)
class BlobSkipped:
    """The server already holds this file's blob: nothing to upload."""

    file: str
    digest: str
    size: int


@dataclass(frozen=True)
class ImportServerStatus:
    """A status line from Ollama while it creates the model."""

    text: str


@dataclass(frozen=True)
class ImportNotice:
    """Something the user should know that does not stop the import."""

    text: str


@dataclass(frozen=True)
class ImportFinished:
    """The model exists, answered the probe, and its lineage is recorded."""

    model: ModelRecord
    lineage: Lineage
    probe_reply: str
    uploaded_bytes: int
    skipped_bytes: int
    seconds: float
    notes: tuple[str, ...] = field(default=())


ImportEvent = (
    ImportStep
    | ImportValidated
    | ImportProgress
    | BlobSkipped
    | ImportServerStatus
    | ImportNotice
    | ImportFinished
)


# --- the pipeline -----------------------------------------------------------------------------


def run_import(
    manager: ModelManager, request: ImportRequest, cancel: threading.Event
) -> Iterator[ImportEvent]:
    """The import as events; see the module docstring.  Raises `UserError`s or `Cancelled`."""
    client = manager.client
    started = time.monotonic()
    yield ImportStep("validating", f"Checking {Path(request.source).name}")
    plan = validate(client, request, keep_free_bytes=manager.keep_free_bytes)
    yield ImportValidated(plan)
    for note in plan.notes:
        yield ImportNotice(note)
    _check(cancel)

    cache = DigestCache(manager.home.models_dir / "digests-cache.json")
    digests: dict[str, str] = {}
    for f in plan.files:
        yield ImportStep("hashing", f"Computing the sha256 of {f.path.name}")
        digests[f.name] = yield from hash_file(f, cache, cancel)

    uploaded = skipped = 0
    for f in plan.files:
        digest = digests[f.name]
        if client.has_blob(digest):
            skipped += f.size
            yield BlobSkipped(f.name, digest, f.size)
            continue
        yield ImportStep("uploading", f"Uploading {f.path.name} to Ollama")
        yield from upload(client, f, digest, cancel)
        uploaded += f.size
    _check(cancel)

    yield ImportStep("creating", f"Creating {plan.name}")
    created = False
    try:
        for status in _create(client, plan, digests):
            yield ImportServerStatus(status)
        created = True
        _check(cancel)
        yield ImportStep("verifying", f"Checking that {plan.name} exists and answers")
        tag, show, reply, notes = _verify(client, plan)
        _check(cancel)
        lineage = _lineage(client, plan, digests, tag.digest)
        manager.lineages.save(lineage)
    except BaseException:
        if created:  # also when cancelled: a cancelled import leaves no model behind
            _delete_quietly(client, plan.name)
            manager.lineages.remove(plan.name)
        raise
    record = build_record(tag, show, lineage)
    for note in notes:
        yield ImportNotice(note)
    yield ImportFinished(
        model=record,
        lineage=lineage,
        probe_reply=reply,
        uploaded_bytes=uploaded,
        skipped_bytes=skipped,
        seconds=time.monotonic() - started,
        notes=plan.notes + tuple(notes),
    )


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled


# --- 4. create --------------------------------------------------------------------------------


def create_arguments(plan: ImportPlan, digests: dict[str, str]) -> dict[str, Any]:
    """The keyword arguments of `OllamaClient.create` for a plan (the /api/create body)."""
    blobs = {f.name: digests[f.name] for f in plan.files}
    args: dict[str, Any] = {}
    if plan.kind == "adapter":
        args["from_"] = plan.base
        args["adapters"] = blobs
    else:
        args["files"] = blobs
    if plan.template:
        args["template"] = plan.template
    if plan.system:
        args["system"] = plan.system
    if plan.parameters:
        args["parameters"] = dict(plan.parameters)
    return args


def _create(client: OllamaClient, plan: ImportPlan, digests: dict[str, str]) -> Iterator[str]:
    try:
        yield from client.create(plan.name, **create_arguments(plan, digests))
    except OllamaServerError as e:
        text = e.server_message
        if plan.kind == "adapter" and _ADAPTER_REFUSAL.search(text):
            raise AdaptersUnsupported(text, e.status_code, MERGE_ADVICE) from e
        raise OllamaServerError(text, e.status_code, _create_hint(plan, text)) from e


def _create_hint(plan: ImportPlan, text: str) -> str:
    low = text.lower()
    if "adapter" in low:
        return MERGE_ADVICE
    if "gguf" in low:
        return (
            f"Ollama could not use {plan.source.name} as a GGUF model: check that the file is "
            "complete and was made by a current llama.cpp, then import again."
        )
    if "architecture" in low:
        return (
            f"This Ollama version cannot run '{plan.architecture}' models: update Ollama, "
            "then import again."
        )
    if "template" in low:
        return (
            "Ollama rejected the chat template: import again with the base model set to the one "
            "it was fine-tuned from, to use that model's template."
        )
    if "space" in low or "disk" in low:
        return "Free disk space on the machine Ollama runs on, then import again."
    return "The model was not created. See the Ollama server log for details, then try again."


# --- 5. verify --------------------------------------------------------------------------------


def _tag(client: OllamaClient, name: str) -> ModelInfo | None:
    wanted = normalize_model_name(name)
    return next((m for m in client.list_models() if normalize_model_name(m.name) == wanted), None)


def _verify(
    client: OllamaClient, plan: ImportPlan
) -> tuple[ModelInfo, dict[str, Any], str, list[str]]:
    """(tags entry, /api/show answer, probe reply, notes); raises `ModelImportFailed`."""
    removed = "The model was removed again, so nothing half-made is left in Ollama."
    tag = _tag(client, plan.name)
    if tag is None:
        raise ModelImportFailed(
            f"Ollama reported success but {plan.name} is not in its model list.",
            "Nothing was imported. See the Ollama server log, then try again.",
        )
    show = client.show(plan.name)
    record = build_record(tag, show, None)
    params = parse_parameters(str(show.get("parameters") or ""))
    notes: list[str] = []
    want_ctx = plan.parameters.get("num_ctx")
    if want_ctx is not None and record.num_ctx != want_ctx:
        raise ModelImportFailed(
            f"Ollama created {plan.name} but did not keep num_ctx {want_ctx} "
            f"(it reports {record.num_ctx or 'none'}).",
            f"{removed} Update Ollama, or set num_ctx per request instead.",
        )
    if plan.kind == "adapter" and not record.adapter:
        raise ModelImportFailed(
            f"Ollama created {plan.name} without the adapter: its modelfile has no ADAPTER line, "
            "so it would answer exactly like the base.",
            f"{removed} {MERGE_ADVICE}",
        )
    if plan.template and str(show.get("template") or "").strip() != plan.template.strip():
        notes.append(f"Ollama reports a different chat template for {plan.name} than was sent.")
    if "stop" in plan.parameters and not params.get("stop"):
        notes.append(f"Ollama did not keep the stop tokens for {plan.name}.")
    reply = _probe(client, plan, removed)
    return tag, show, reply, notes


def _probe(client: OllamaClient, plan: ImportPlan, removed: str) -> str:
    try:
        pieces = [
            d.content
            for d in client.chat_stream(
                plan.name,
                [{"role": "user", "content": PROBE_QUESTION}],
                options={"num_predict": 24, "temperature": 0.0},
            )
        ]
    except OllamaError as e:
        low = e.message.lower()
        hint = (
            f"This Ollama version cannot run '{plan.architecture}' models: update Ollama."
            if "architecture" in low
            else "Check the Ollama server log for why the model failed to load."
        )
        raise ModelImportFailed(
            f"{plan.name} was created but failed to answer a test question: {e.message}",
            f"{hint} {removed}",
        ) from e
    reply = "".join(pieces).strip()
    if not reply:
        raise ModelImportFailed(
            f"{plan.name} was created but answered a test question with nothing.",
            "The chat template is probably wrong: import again with the base model set to the "
            f"one it was fine-tuned from, to use that model's template. {removed}",
        )
    return reply


def _lineage(
    client: OllamaClient, plan: ImportPlan, digests: dict[str, str], model_digest: str
) -> Lineage:
    main = plan.files[0]
    try:
        version = client.version()
    except OllamaError:
        version = ""
    return Lineage(
        name=plan.name,
        kind=plan.kind,
        source=str(plan.source),
        source_sha256=digests[main.name].removeprefix("sha256:"),
        source_bytes=main.size,
        base=plan.base,
        reported_base=plan.reported_base,
        architecture=plan.architecture,
        template=plan.template_source,
        system=plan.system,
        parameters=dict(plan.parameters),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        model_digest=model_digest,
        ollama_version=version,
    )


def _delete_quietly(client: OllamaClient, name: str) -> None:
    # Best effort: the error already being raised is what the user needs to see.
    with contextlib.suppress(OllamaError):
        client.delete(name)
