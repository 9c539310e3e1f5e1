"""What an import will do, decided before a byte is uploaded: the request, checks and plan.

`validate()` reads the file's header (never its extension): a GGUF model, a GGUF LoRA
(`general.type == "adapter"`), or a PEFT safetensors adapter folder.  It checks that the name
is valid and free, that the base model is installed and has the adapter's architecture, width
and depth (a wrong base is caught here, not after a 5 GB upload), that the architecture is one
Ollama can apply an adapter to, and that Ollama's disk has room: only when Ollama runs on this
machine, since a remote disk cannot be seen from here (the plan then says so).  It also picks
the chat template (the GGUF's own, converted to Go; else the base's) and the parameters.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ftrag_desktop.core.chat_template import to_go_template
from ftrag_desktop.core.gguf_info import (
    KNOWN_ARCHITECTURES,
    AdapterFolderInfo,
    GGUFInfo,
    read_adapter_folder,
    read_gguf,
)
from ftrag_desktop.core.llm import normalize_model_name
from ftrag_desktop.core.models import parse_parameters
from ftrag_desktop.errors import ModelFileError, ModelImportFailed, ModelNotFound

if TYPE_CHECKING:
    from ftrag_desktop.core.llm import OllamaClient

# Ollama converts safetensors adapters only for these (convert.ConvertAdapter); its GGUF LoRA
# support is documented for the same families.
ADAPTER_ARCHITECTURES = frozenset({"llama", "gemma2"})
_NAME_PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"
_NAME_RE = re.compile(rf"^(?:{_NAME_PART}/){{0,2}}{_NAME_PART}(?::{_NAME_PART})?$")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", ""})


@dataclass(frozen=True)
class ImportRequest:
    """What the user asked for.  `kind` "auto" decides from the file's own header."""

    source: Path
    name: str
    base: str = ""
    system: str = ""
    num_ctx: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    replace: bool = False
    kind: Literal["auto", "gguf", "adapter"] = "auto"


@dataclass(frozen=True)
class DiskCheck:
    """What was checked about free space, in words fit for the user."""

    checked: bool
    path: str
    free_bytes: int | None
    needed_bytes: int
    note: str


@dataclass(frozen=True)
class UploadFile:
    """One file to upload: its path, the name Ollama gets for it, its size."""

    path: Path
    name: str
    size: int


@dataclass(frozen=True)
class ImportPlan:
    """The outcome of validation: exactly what will be uploaded and created."""

    kind: Literal["gguf", "adapter"]
    name: str
    source: Path
    architecture: str
    base: str
    reported_base: str
    files: tuple[UploadFile, ...]
    template: str | None  # None: inherit (adapter via `from`) or let Ollama choose
    template_source: str
    system: str
    parameters: dict[str, Any]
    disk: DiskCheck
    notes: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def validate(client: OllamaClient, request: ImportRequest, *, keep_free_bytes: int) -> ImportPlan:
    """Everything that can be checked before a byte is uploaded; raises `UserError`s."""
    name = request.name.strip()
    if not _NAME_RE.match(name):
        raise ModelImportFailed(
            f"'{request.name}' is not a valid Ollama model name.",
            "Use letters, digits, '.', '-' and '_' (for example my-model or my-model:v2).",
        )
    name = normalize_model_name(name)
    source = Path(request.source).expanduser().resolve()
    gguf: GGUFInfo | None = None
    folder: AdapterFolderInfo | None = None
    if source.is_dir():
        folder = read_adapter_folder(source)
    else:
        gguf = read_gguf(source)
        _check_gguf_kind(gguf)
    kind: Literal["gguf", "adapter"] = (
        "adapter" if folder is not None or (gguf is not None and gguf.is_adapter) else "gguf"
    )
    if request.kind == "gguf" and kind == "adapter":
        raise ModelFileError(
            f"{source.name} is a LoRA adapter, not a whole model.",
            "Import it as an adapter on its base model, or merge it into the base first.",
        )
    if request.kind == "adapter" and kind == "gguf":
        raise ModelFileError(
            f"{source.name} is a whole model (general.type is not 'adapter'), not a LoRA adapter.",
            "Import it as a GGUF model (`ftrag models import-gguf`).",
        )

    installed = {normalize_model_name(m.name) for m in client.list_models()}
    if name in installed and not request.replace:
        raise ModelImportFailed(
            f"A model named {name} already exists in Ollama.",
            "Choose another name, or replace it (--replace in the CLI), or delete it first.",
        )
    base = normalize_model_name(request.base) if request.base.strip() else ""
    if kind == "adapter" and not base:
        raise ModelImportFailed(
            f"{source.name} is a LoRA adapter: it needs the base model it was trained on.",
            "Choose the installed base model it was trained on (--base in the CLI).",
        )
    if base and base not in installed:
        raise ModelNotFound(
            base,
            f"The base model '{request.base}' is not installed in Ollama.",
            f"Pull it first (`ftrag models pull {request.base}`), or choose an installed model.",
        )
    base_show = client.show(base) if base else {}
    notes: list[str] = []
    if gguf is not None:
        arch = gguf.architecture
        _check_against_base(source.name, kind, gguf.architecture, gguf, None, base, base_show)
        reported = gguf.base_models[0] if gguf.base_models else ""
    else:
        assert folder is not None
        arch = _base_info(base_show)[0]
        _check_against_base(source.name, kind, arch, None, folder, base, base_show)
        reported = folder.base_model
        if reported:
            notes.append(
                f"The adapter says it was trained on {reported}: make sure {base} is that model."
            )

    template, template_source, stop = _choose_template(kind, gguf, base, base_show, notes)
    parameters = _parameters(request, stop, gguf, base_show, notes)
    files = _upload_files(source, gguf, folder)
    needed = sum(f.size for f in files)
    if folder is not None:
        needed += folder.weights_size  # Ollama converts the adapter into a GGUF beside it
    disk = check_disk(client.host, needed, keep_free_bytes)
    if not disk.checked:
        notes.append(disk.note)
    return ImportPlan(
        kind=kind,
        name=name,
        source=source,
        architecture=arch,
        base=base,
        reported_base=reported,
        files=files,
        template=template,
        template_source=template_source,
        system=request.system,
        parameters=parameters,
        disk=disk,
        notes=tuple(notes),
    )


def _check_gguf_kind(info: GGUFInfo) -> None:
    name = info.path.name
    if info.kind not in ("model", "adapter"):
        raise ModelFileError(
            f"{name} is a GGUF of type '{info.kind}', not a language model or LoRA adapter.",
            "Choose the GGUF of the model itself (a vision projector or imatrix file cannot "
            "be imported on its own).",
        )
    if not info.architecture:
        raise ModelFileError(
            f"{name} does not say which architecture it is (general.architecture is missing).",
            "Convert the model again with a current llama.cpp convert_hf_to_gguf.py.",
        )
    if info.tensor_count == 0:
        raise ModelFileError(
            f"{name} holds no weights (it has no tensors: a vocabulary-only GGUF?).",
            "Choose the GGUF that contains the model's weights.",
        )
    if not info.is_adapter and info.architecture not in KNOWN_ARCHITECTURES:
        raise ModelFileError(
            f"{name} has the architecture '{info.architecture}', which neither llama.cpp "
            "nor Ollama knows.",
            "Check that the file is a llama.cpp GGUF; a model of a newer architecture "
            "needs a newer Ollama and a matching converter.",
        )


def _base_info(show: dict[str, Any]) -> tuple[str, int | None, int | None]:
    info: dict[str, Any] = show.get("model_info") or {}
    arch = str(info.get("general.architecture") or (show.get("details") or {}).get("family") or "")

    def num(key: str) -> int | None:
        v = info.get(f"{arch}.{key}")
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    return arch, num("embedding_length"), num("block_count")


def _check_against_base(
    source_name: str,
    kind: str,
    arch: str,
    gguf: GGUFInfo | None,
    folder: AdapterFolderInfo | None,
    base: str,
    base_show: dict[str, Any],
) -> None:
    """The adapter (or the fine-tuned model) must fit the base it claims."""
    base_arch, base_width, base_blocks = _base_info(base_show) if base else ("", None, None)
    if kind == "adapter" and arch not in ADAPTER_ARCHITECTURES:
        what = f"the base {base} is" if folder is not None else f"{source_name} is"
        raise ModelFileError(
            f"Ollama can apply LoRA adapters only to {' and '.join(sorted(ADAPTER_ARCHITECTURES))} "
            f"models; {what} '{arch or 'unknown'}'.",
            "Merge the adapter into its base model and import the merged GGUF instead.",
        )
    if not base:
        return
    if base_arch and arch and base_arch != arch:
        raise ModelFileError(
            f"{source_name} is a '{arch}' {'adapter' if kind == 'adapter' else 'model'} but the "
            f"base {base} is a '{base_arch}' model: it was not trained on that base.",
            "Choose the base model the fine-tune was made from.",
        )
    width = (
        gguf.adapter_width
        if gguf is not None and kind == "adapter"
        else gguf.embedding_length
        if gguf is not None
        else folder.adapter_width
        if folder is not None
        else None
    )
    if width and base_width and width != base_width:
        raise ModelFileError(
            f"{source_name} was made for a model of hidden size {width}, but {base} has "
            f"hidden size {base_width}: it was not trained on that base.",
            "Choose the base model the fine-tune was made from (same model and size).",
        )
    layers = (
        gguf.adapter_layers
        if gguf is not None and kind == "adapter"
        else gguf.block_count
        if gguf is not None
        else folder.adapter_layers
        if folder is not None
        else None
    )
    too_many = kind == "adapter" and layers and base_blocks and layers > base_blocks
    differ = kind == "gguf" and layers and base_blocks and layers != base_blocks
    if too_many or differ:
        raise ModelFileError(
            f"{source_name} has {layers} layers but {base} has {base_blocks}: it was not "
            "trained on that base.",
            "Choose the base model the fine-tune was made from (same model and size).",
        )


def _choose_template(
    kind: str,
    gguf: GGUFInfo | None,
    base: str,
    base_show: dict[str, Any],
    notes: list[str],
) -> tuple[str | None, str, tuple[str, ...]]:
    """(template to send, where it came from, stop tokens that go with it)."""
    base_template = str(base_show.get("template") or "") or None
    base_stop = tuple(parse_parameters(str(base_show.get("parameters") or "")).get("stop", []))
    if kind == "adapter":
        return None, "base", ()  # `from` carries the base's template and stop tokens
    raw = gguf.chat_template if gguf is not None else None
    if raw:
        converted = to_go_template(raw)
        if converted is not None:
            return converted.template, f"gguf ({converted.format})", converted.stop
        if base_template:
            notes.append(
                f"The GGUF's chat template is not a format ftrag can convert to Ollama's; "
                f"using the template of {base} instead."
            )
            return base_template, "base", base_stop
        notes.append(
            "The GGUF's chat template is not a format ftrag can convert to Ollama's, and no "
            "base model was given: Ollama will pick a template by matching it. If answers look "
            "garbled, import again with the base model set to the one it was fine-tuned from."
        )
        return None, "ollama", ()
    if base_template:
        return base_template, "base", base_stop
    notes.append(
        "The GGUF carries no chat template and no base model was given: Ollama will send "
        "prompts without a chat format. Import again with its base model set, to use that "
        "model's template."
    )
    return None, "ollama", ()


def _parameters(
    request: ImportRequest,
    template_stop: tuple[str, ...],
    gguf: GGUFInfo | None,
    base_show: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if request.num_ctx is not None:
        if request.num_ctx < 1:
            raise ModelImportFailed(
                f"num_ctx must be a positive number of tokens, not {request.num_ctx}.",
                "Use e.g. --num-ctx 8192.",
            )
        trained = gguf.context_length if gguf is not None and not gguf.is_adapter else None
        if trained is None and base_show:
            arch = _base_info(base_show)[0]
            value = (base_show.get("model_info") or {}).get(f"{arch}.context_length")
            trained = int(value) if isinstance(value, int) else None
        if trained and request.num_ctx > trained:
            notes.append(
                f"num_ctx {request.num_ctx} is above the {trained} tokens the model was trained "
                "on: answers that long tend to degrade."
            )
        params["num_ctx"] = request.num_ctx
    if request.temperature is not None:
        if not 0.0 <= request.temperature <= 2.0:
            raise ModelImportFailed(
                f"temperature must be between 0 and 2, not {request.temperature:g}.",
                "Use e.g. --temperature 0.7 (lower is more deterministic).",
            )
        params["temperature"] = request.temperature
    stop = request.stop or template_stop
    if stop:
        params["stop"] = list(stop)
    return params


def _blob_name(name: str, suffix: str) -> str:
    """A name Ollama accepts for `files`/`adapters` (relative, no ':' or '\\')."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "model"
    return clean if clean.endswith(suffix) else clean + suffix


def _upload_files(
    source: Path, gguf: GGUFInfo | None, folder: AdapterFolderInfo | None
) -> tuple[UploadFile, ...]:
    if gguf is not None:
        return (UploadFile(source, _blob_name(source.name, ".gguf"), gguf.file_size),)
    assert folder is not None
    return (
        UploadFile(folder.weights_file, folder.weights_file.name, folder.weights_size),
        UploadFile(folder.config_file, folder.config_file.name, folder.config_file.stat().st_size),
    )


def ollama_models_dir() -> Path:
    """Where a local Ollama keeps its blobs: $OLLAMA_MODELS, else the first that exists of
    the user's ~/.ollama/models and the Linux service's directory (else the user's)."""
    env = os.environ.get("OLLAMA_MODELS")
    if env:
        return Path(env).expanduser()
    user = Path.home() / ".ollama" / "models"
    for candidate in (user, Path("/usr/share/ollama/.ollama/models")):
        if candidate.exists():
            return candidate
    return user


def check_disk(host: str, needed: int, keep_free_bytes: int) -> DiskCheck:
    """Free space where Ollama will store the blobs, when that disk is this machine's."""
    hostname = (urlsplit(host if "://" in host else f"http://{host}").hostname or "").lower()
    if hostname not in _LOCAL_HOSTS and not hostname.startswith("127."):
        return DiskCheck(
            False,
            "",
            None,
            needed,
            f"Free disk space was not checked: Ollama runs on another machine ({hostname}). "
            f"It needs about {_size(needed)} free there.",
        )
    models_dir = ollama_models_dir()
    probe = models_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free - needed < keep_free_bytes:
        raise ModelImportFailed(
            f"Not enough disk space: the import needs {_size(needed)} in {models_dir} and "
            f"{_size(keep_free_bytes)} should stay free, but only {_size(free)} is available.",
            "Free some space (delete models you no longer use), or move Ollama's models to a "
            "larger disk with OLLAMA_MODELS.",
        )
    return DiskCheck(
        True,
        str(models_dir),
        free,
        needed,
        f"{_size(free)} free where Ollama stores models ({models_dir}); "
        f"the import needs {_size(needed)}.",
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
