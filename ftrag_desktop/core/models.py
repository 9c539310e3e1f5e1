"""The models manager: what Ollama has installed, where each model came from, pull and delete.

`ModelManager` is the one entry point for the GUI dialog and `ftrag models`:

- `list_models()` returns a `ModelRecord` per installed model: tags plus `/api/show` (context
  length, the num_ctx it runs with) plus lineage, i.e. whether it is a fine-tuned variant and
  of which base.  Lineage comes, most trusted first, from the JSON record ftrag writes when it
  imports a model (`Home.models_dir/<name>.json`, valid only while the model's digest is the
  one recorded), from an `ADAPTER` line in the modelfile, from the GGUF's own
  `general.base_model.*` metadata, or from `details.parent_model` (a variant with the same
  weights: `base` set, `fine_tuned` false).
- `pull(name, cancel)` and `import_model(request, cancel)` are generators of typed events;
  setting `cancel` stops them, cleans up and raises `Cancelled` (never shown as an error).
- `delete(name)` removes the model and its lineage record.

No Qt here: the GUI runs these on a worker and turns the events into signals.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ftrag_desktop.core.llm import ModelInfo, OllamaClient, PullProgress, normalize_model_name
from ftrag_desktop.errors import Cancelled, ModelNotFound, OllamaServerError
from ftrag_desktop.paths import Home

if TYPE_CHECKING:
    from ftrag_desktop.core.model_import import ImportEvent, ImportRequest

LINEAGE_SCHEMA = 1
# Room left on Ollama's disk after an import, so the import cannot fill the disk to the brim.
DEFAULT_KEEP_FREE_BYTES = 1 << 30
_MODELFILE_LINE = re.compile(r"^(FROM|ADAPTER)\s+(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Lineage:
    """What ftrag recorded when it imported a model: enough to say what the model is."""

    name: str
    kind: str  # "gguf" (a whole model) or "adapter" (a LoRA on `base`)
    source: str  # the file or folder imported, absolute
    source_sha256: str  # digest of the GGUF, or of the adapter's safetensors weights
    source_bytes: int
    base: str  # the Ollama model it was fine-tuned from / applied to ("" when not given)
    reported_base: str  # what the file itself names as its base (a Hugging Face name)
    architecture: str
    template: str  # where the chat template came from: "gguf (chatml)", "base", "ollama"
    system: str
    parameters: dict[str, Any]
    created_at: str
    model_digest: str  # the digest Ollama gave the model: a re-created model is not ours
    ollama_version: str
    schema: int = LINEAGE_SCHEMA
    # Set when ftrag trained the model itself (`train_pipeline`): the base, the dataset's
    # sha256, the hyperparameters, the final losses, steps, device and duration.
    training: dict[str, Any] | None = None
    # Set when ftrag merged an outside LoRA adapter into a base GGUF and imported the result
    # (`merge_import`): the adapter's path, format and sha256, the base file, the merge.
    merged_from: dict[str, Any] | None = None

    @property
    def fine_tuned(self) -> bool:
        changed = self.training is not None or self.merged_from is not None
        return changed or self.kind == "adapter" or bool(self.base or self.reported_base)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Lineage:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})


class LineageStore:
    """One JSON file per imported model; written atomically, unreadable files ignored."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, name: str) -> Path:
        # quote() keeps names readable and unambiguous ("a/b:c" -> "a%2Fb%3Ac.json").
        return self.directory / f"{quote(normalize_model_name(name), safe='')}.json"

    def load(self, name: str) -> Lineage | None:
        try:
            raw = json.loads(self.path_for(name).read_text(encoding="utf-8"))
            return Lineage.from_dict(raw) if isinstance(raw, dict) else None
        except (OSError, ValueError, TypeError):
            return None

    def save(self, lineage: Lineage) -> Path:
        path = self.path_for(lineage.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(lineage.to_dict(), indent=2), encoding="utf-8")
        os.replace(tmp, path)
        return path

    def remove(self, name: str) -> None:
        self.path_for(name).unlink(missing_ok=True)


@dataclass(frozen=True)
class ModelRecord:
    """One installed model as the manager shows it."""

    name: str
    family: str
    parameter_size: str
    quantization: str
    context_length: int | None  # trained context, from model_info "<arch>.context_length"
    num_ctx: int | None  # the context the model is set to run with (PARAMETER num_ctx)
    size: int  # bytes on disk
    modified_at: str
    digest: str
    is_embedding: bool
    fine_tuned: bool
    base: str  # the model it derives from ("" none/unknown)
    adapter: bool  # runs a LoRA adapter on top of `base`
    imported: bool  # ftrag imported it (see `lineage`)
    lineage: Lineage | None = None
    parameters: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["lineage"] = self.lineage.to_dict() if self.lineage else None
        return doc


def parse_parameters(text: str) -> dict[str, list[str]]:
    """`/api/show` "parameters" ("num_ctx   4096\\nstop   \\"<|im_end|>\\"") as lists of values."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            out.setdefault(key, []).append(value)
    return out


def modelfile_sources(modelfile: str) -> tuple[str, list[str]]:
    """(FROM, [ADAPTER ...]) of a modelfile as `/api/show` returns it."""
    base, adapters = "", []
    for kind, value in _MODELFILE_LINE.findall(modelfile):
        if kind == "FROM" and not base:
            base = value
        elif kind == "ADAPTER":
            adapters.append(value)
    return base, adapters


def _is_model_name(value: str) -> bool:
    """A FROM that names a model, not a blob path (Ollama writes blob paths for GGUF imports)."""
    return bool(value) and not any(c in value for c in "\\") and not value.startswith(("/", "."))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def build_record(tag: ModelInfo, show: dict[str, Any], lineage: Lineage | None) -> ModelRecord:
    """Combine a tags entry, its `/api/show` answer and our lineage record into one record."""
    info: dict[str, Any] = show.get("model_info") or {}
    details: dict[str, Any] = show.get("details") or {}
    arch = str(info.get("general.architecture") or tag.family or "")
    params = parse_parameters(str(show.get("parameters") or ""))
    from_, adapters = modelfile_sources(str(show.get("modelfile") or ""))
    parent = str(details.get("parent_model") or "")
    num_ctx = _int_or_none(params["num_ctx"][-1]) if params.get("num_ctx") else None

    if lineage is not None and lineage.model_digest and lineage.model_digest != tag.digest:
        lineage = None  # the model was re-created since we imported it: our record is stale
    fine_tuned, base, adapter = False, "", bool(adapters)
    if lineage is not None:
        fine_tuned = lineage.fine_tuned
        base = lineage.base or lineage.reported_base
        adapter = adapter or lineage.kind == "adapter"
    elif adapters:
        fine_tuned = True
        base = parent or (from_ if _is_model_name(from_) else "")
    else:
        reported = str(info.get("general.base_model.0.name") or "")
        if int(info.get("general.base_model.count") or 0) > 0 and reported:
            fine_tuned, base = True, reported
        elif parent:
            base = parent  # same weights, other prompt or parameters: a variant, not a tune
    return ModelRecord(
        name=tag.name,
        family=tag.family or arch,
        parameter_size=tag.parameter_size,
        quantization=tag.quantization,
        context_length=_int_or_none(info.get(f"{arch}.context_length")) if arch else None,
        num_ctx=num_ctx,
        size=tag.size,
        modified_at=tag.modified_at,
        digest=tag.digest,
        is_embedding=tag.is_embedding,
        fine_tuned=fine_tuned,
        base=base,
        adapter=adapter,
        imported=lineage is not None,
        lineage=lineage,
        parameters=params,
    )


class ModelManager:
    """List, pull, delete and import Ollama models for one data home."""

    def __init__(
        self,
        client: OllamaClient,
        home: Home,
        *,
        keep_free_bytes: int = DEFAULT_KEEP_FREE_BYTES,
    ) -> None:
        self.client = client
        self.home = home
        self.lineages = LineageStore(home.models_dir)
        self.keep_free_bytes = keep_free_bytes

    # --- reading ---------------------------------------------------------------------------

    def list_models(self) -> list[ModelRecord]:
        """Every installed model, sorted by name, with details and lineage."""
        records = []
        for tag in self.client.list_models():
            try:
                show = self.client.show(tag.name)
            except ModelNotFound:
                continue  # deleted between the two calls
            records.append(build_record(tag, show, self.lineages.load(tag.name)))
        return sorted(records, key=lambda r: r.name)

    def get(self, name: str) -> ModelRecord:
        """One installed model; `ModelNotFound` when it is not installed."""
        wanted = normalize_model_name(name)
        tag = next(
            (t for t in self.client.list_models() if normalize_model_name(t.name) == wanted),
            None,
        )
        if tag is None:
            raise ModelNotFound(name)
        return build_record(tag, self.client.show(tag.name), self.lineages.load(tag.name))

    # --- pull and delete -------------------------------------------------------------------

    def pull(self, name: str, cancel: threading.Event | None = None) -> Iterator[PullProgress]:
        """Download `name`, yielding progress; `cancel` closes the download and raises
        `Cancelled` (Ollama then creates no model)."""
        cancel = cancel or threading.Event()
        if cancel.is_set():
            raise Cancelled
        stream = self.client.pull(name)
        try:
            for progress in stream:
                yield progress
                if cancel.is_set():
                    raise Cancelled
        except OllamaServerError as e:
            raise OllamaServerError(e.server_message, e.status_code, _pull_hint(name, e)) from e
        finally:
            stream.close()

    def delete(self, name: str) -> None:
        """Remove the model from Ollama and forget its lineage."""
        try:
            self.client.delete(name)
        except ModelNotFound as e:
            raise ModelNotFound(
                name,
                f"There is no model '{name}' to delete.",
                "`ftrag models list` shows the installed models.",
            ) from e
        self.lineages.remove(name)

    # --- import ----------------------------------------------------------------------------

    def import_model(
        self, request: ImportRequest, cancel: threading.Event | None = None
    ) -> Iterator[ImportEvent]:
        """Validate, upload, create, verify: see `ftrag_desktop.core.model_import`."""
        from ftrag_desktop.core.model_import import run_import

        return run_import(self, request, cancel or threading.Event())


def _pull_hint(name: str, e: OllamaServerError) -> str:
    text = e.server_message.lower()
    if "manifest" in text or "does not exist" in text or "not found" in text:
        return (
            f"Check the name: '{name}' is not in the Ollama library, or that tag does not "
            "exist (the library lists the names and tags)."
        )
    return "Check the network connection of the machine Ollama runs on, then pull again."
