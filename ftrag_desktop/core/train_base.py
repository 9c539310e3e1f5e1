"""The model a fine-tune starts from: a GGUF file, or a model already in the local Ollama.

For an Ollama model the GGUF is found where Ollama keeps it, and read in place (a 5 GB base is
never copied): `/api/show` gives the modelfile, whose `FROM` names the blob for models pulled
or imported on this machine; failing that, the manifest under Ollama's model store
(`manifests/<registry>/<namespace>/<name>/<tag>`) names the model layer's digest, which is the
file `blobs/sha256-<hex>`.  Either way the file's own header decides what it is
(`gguf_info.read_gguf`), never its name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftrag_desktop.core.gguf_info import GGUFInfo, read_gguf
from ftrag_desktop.core.import_plan import ollama_models_dir
from ftrag_desktop.core.llm import normalize_model_name
from ftrag_desktop.core.models import modelfile_sources
from ftrag_desktop.errors import ModelFileError, UserError

if TYPE_CHECKING:
    from ftrag_desktop.core.llm import OllamaClient

__all__ = ["BaseModel", "BaseNotFound", "find_ollama_blob", "resolve_base"]

MODEL_LAYER = "application/vnd.ollama.image.model"
DEFAULT_REGISTRY = "registry.ollama.ai"


class BaseNotFound(UserError):
    """The base model's GGUF cannot be found or used."""


@dataclass(frozen=True)
class BaseModel:
    """A base model's GGUF, read in place."""

    path: Path
    ollama_name: str  # "" when the base was given as a file
    info: GGUFInfo

    @property
    def label(self) -> str:
        return self.ollama_name or self.path.name

    @property
    def identity(self) -> str:
        """What names these exact weights, cheaply (no hash of a multi-GB file): the file's
        path (an Ollama blob's path is its digest), size and modification time."""
        st = self.path.stat()
        return f"{self.path}:{st.st_size}:{st.st_mtime_ns}"

    def to_dict(self) -> dict[str, Any]:
        i = self.info
        return {
            "path": str(self.path),
            "ollama_name": self.ollama_name,
            "architecture": i.architecture,
            "name": i.name,
            "quantization": i.quantization,
            "parameters": i.parameter_count,
            "context_length": i.context_length,
            "file_bytes": i.file_size,
        }


def _looks_like_path(spec: str) -> bool:
    return spec.lower().endswith(".gguf") or os.sep in spec or spec.startswith(("~", "."))


def resolve_base(spec: str, client: OllamaClient | None) -> BaseModel:
    """A GGUF path or an Ollama model name -> the base model; raises `UserError`s."""
    spec = spec.strip()
    if not spec:
        raise BaseNotFound("No base model was given.", "Name an Ollama model or a .gguf file.")
    path = Path(spec).expanduser()
    if path.is_file():
        return _checked(path.resolve(), "")
    if _looks_like_path(spec):
        raise BaseNotFound(
            f"There is no file {path}.", "Check the path of the base model's .gguf file."
        )
    if client is None:
        raise BaseNotFound(
            f"'{spec}' is neither a file nor reachable in Ollama (no Ollama connection).",
            "Start Ollama, or give the base model's .gguf file instead.",
        )
    name = normalize_model_name(spec)
    show = client.show(name)  # ModelNotFound says how to pull it
    blob = find_ollama_blob(name, show)
    return _checked(blob, name)


def _checked(path: Path, ollama_name: str) -> BaseModel:
    info = read_gguf(path)
    what = ollama_name or path.name
    if info.is_adapter:
        raise ModelFileError(
            f"{what} is a LoRA adapter, not a whole model: there is nothing to fine-tune.",
            "Start from the base model the adapter was made for (or merge it into its base "
            "with `ftrag merge-adapter` first).",
        )
    if info.kind != "model" or not info.architecture or info.tensor_count == 0:
        raise ModelFileError(
            f"{what} is not a language model GGUF (type '{info.kind}', "
            f"{info.tensor_count} tensors).",
            "Choose the GGUF file of a language model.",
        )
    return BaseModel(path, ollama_name, info)


def find_ollama_blob(name: str, show: dict[str, Any]) -> Path:
    """The GGUF file behind an installed Ollama model, in Ollama's own store."""
    modelfile = str(show.get("modelfile") or "")
    from_, adapters = modelfile_sources(modelfile)
    if adapters:
        raise BaseNotFound(
            f"{name} is a base model with a LoRA adapter on top; training on it would start "
            "from the base alone.",
            "Merge the adapter into its base first (`ftrag merge-adapter`), import the result, "
            "and train on that.",
        )
    if from_ and Path(from_).is_absolute() and Path(from_).is_file():
        return Path(from_)
    store = ollama_models_dir()
    blob = _blob_from_manifest(store, name)
    if blob is not None:
        return blob
    raise BaseNotFound(
        f"The GGUF file of {name} is not readable on this machine (looked for its manifest and "
        f"blob under {store}).",
        "Training reads the base model's file in place: run it where Ollama stores its models, "
        "set OLLAMA_MODELS to that folder, or give the base model's .gguf file instead.",
    )


def _manifest_path(store: Path, name: str) -> Path:
    """`manifests/<registry>/<namespace>/<model>/<tag>` for "ns/model:tag" or
    "host/ns/model:tag" (the library's models live in namespace "library")."""
    ref, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "latest")
    parts = ref.split("/")
    if len(parts) == 1:
        parts = [DEFAULT_REGISTRY, "library", parts[0]]
    elif len(parts) == 2:
        parts = [DEFAULT_REGISTRY, *parts]
    return store.joinpath("manifests", *parts, tag or "latest")


def _blob_from_manifest(store: Path, name: str) -> Path | None:
    try:
        manifest = json.loads(_manifest_path(store, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and layer.get("mediaType") == MODEL_LAYER:
            digest = str(layer.get("digest") or "")
            blob = store / "blobs" / digest.replace(":", "-", 1)
            if digest.startswith("sha256:") and blob.is_file():
                return blob
    return None
