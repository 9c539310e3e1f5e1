"""What a model file holds, read from its bytes and never from its name.

Two kinds of input to an import: a GGUF file (a whole model, or a LoRA adapter when its
`general.type` is "adapter"), read with the `gguf` package; and a PEFT adapter folder
(`adapter_config.json` plus `adapter_model.safetensors`), whose safetensors header is read
directly (8-byte length, then JSON).  Only metadata and tensor shapes are read, so a 10 GB file
costs a memory map, not 10 GB of I/O.  Array values (the tokenizer's vocabulary and merges) are
stepped over, not decoded: `GGUFReader` builds a numpy view per string, which takes 9 s for
SmolLM2's 49k-token vocabulary and far longer for Llama 3's.  Anything unreadable raises
`ModelFileError` with what is wrong and what to do.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from gguf import MODEL_ARCH_NAMES, GGUFEndian, GGUFReader, GGUFValueType, LlamaFileType

from ftrag_desktop.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapters.safetensors")
# Projection layers whose LoRA "A" matrix reads the hidden state: its input width is the
# model's embedding length, which is how a wrong base model is caught before any upload.
_HIDDEN_INPUTS = ("attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up")
_HF_HIDDEN_INPUTS = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")
_BLOCK_RE = re.compile(r"(?:^|\.)(?:blk|layers)\.(\d+)\.")
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
# Every architecture llama.cpp (and so Ollama's GGUF loader) has a name for.
KNOWN_ARCHITECTURES = frozenset(MODEL_ARCH_NAMES.values())


@dataclass(frozen=True)
class GGUFInfo:
    """The parts of a GGUF header an import needs."""

    path: Path
    file_size: int
    version: int
    kind: str  # general.type: "model" (also when absent), "adapter", "mmproj", ...
    architecture: str
    name: str
    size_label: str
    quantization: str  # e.g. "Q4_1", from general.file_type ("" when absent)
    context_length: int | None
    embedding_length: int | None
    block_count: int | None
    chat_template: str | None
    tensor_count: int
    parameter_count: int
    base_models: tuple[str, ...]  # general.base_model.N.name: what it was fine-tuned from
    lora_alpha: float | None
    adapter_width: int | None  # adapters: the hidden size the LoRA matrices expect
    adapter_layers: int | None  # adapters: highest block index + 1

    @property
    def is_adapter(self) -> bool:
        return self.kind == "adapter"


@dataclass(frozen=True)
class AdapterFolderInfo:
    """A PEFT LoRA adapter saved as safetensors (what Hugging Face / Unsloth write)."""

    path: Path
    config_file: Path
    weights_file: Path
    weights_size: int
    peft_type: str
    rank: int | None
    alpha: float | None
    base_model: str  # base_model_name_or_path, a Hugging Face name: a hint, not an Ollama name
    target_modules: tuple[str, ...]
    tensor_count: int
    adapter_width: int | None
    adapter_layers: int | None


def is_gguf(path: Path) -> bool:
    """True when the file starts with the GGUF magic (whatever its name)."""
    try:
        with path.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_gguf(path: Path) -> GGUFInfo:
    """Read the header, metadata and tensor table of a GGUF file; raises `ModelFileError`."""
    path = Path(path)
    size = _file_size(path)
    if size < 24 or not is_gguf(path):
        raise ModelFileError(
            f"{path.name} is not a GGUF file (its first bytes are not the GGUF signature).",
            "Choose the .gguf file of the model itself. A safetensors model must be converted "
            "to GGUF first (llama.cpp's convert_hf_to_gguf.py); a LoRA adapter folder is "
            "imported as a folder.",
        )
    try:
        reader = _MetadataReader(path)
    except (
        ValueError,
        IndexError,
        KeyError,
        OverflowError,
        UnicodeDecodeError,
        OSError,
        struct.error,
    ) as e:
        raise ModelFileError(
            f"{path.name} starts like a GGUF file but cannot be read: {e}.",
            "The file is probably truncated or damaged (an interrupted download?). Compare its "
            "size and checksum with the source, and download it again.",
        ) from e
    try:
        return _gguf_info(path, size, reader)
    finally:
        del reader  # release the memory map before the file is uploaded


def _gguf_info(path: Path, size: int, reader: Any) -> GGUFInfo:
    fields: dict[str, Any] = reader.fields

    def value(key: str) -> Any:
        field = fields.get(key)
        if field is None:
            return None
        try:
            return field.contents()
        except (ValueError, IndexError, UnicodeDecodeError):
            return None

    def text(key: str) -> str:
        v = value(key)
        return v if isinstance(v, str) else ""

    def integer(key: str) -> int | None:
        v = value(key)
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    arch = text("general.architecture")
    base_count = integer("general.base_model.count") or 0
    bases = tuple(
        b
        for i in range(base_count)
        if (b := text(f"general.base_model.{i}.name") or text(f"general.base_model.{i}.repo_url"))
    )
    tensors = list(reader.tensors)
    kind = text("general.type") or "model"
    width, layers = None, None
    if kind == "adapter":
        width, layers = _lora_shape(
            ((t.name, [int(d) for d in t.shape]) for t in tensors), _HIDDEN_INPUTS, dims_first=True
        )
    alpha = value("adapter.lora.alpha")
    version = value("GGUF.version")
    return GGUFInfo(
        path=path,
        file_size=size,
        version=int(version) if isinstance(version, int) else 0,
        kind=kind,
        architecture=arch,
        name=text("general.name"),
        size_label=text("general.size_label"),
        quantization=_file_type_name(integer("general.file_type")),
        context_length=integer(f"{arch}.context_length") if arch else None,
        embedding_length=integer(f"{arch}.embedding_length") if arch else None,
        block_count=integer(f"{arch}.block_count") if arch else None,
        chat_template=text("tokenizer.chat_template") or None,
        tensor_count=len(tensors),
        parameter_count=sum(int(t.n_elements) for t in tensors),
        base_models=bases,
        lora_alpha=float(alpha) if isinstance(alpha, int | float) else None,
        adapter_width=width,
        adapter_layers=layers,
    )


_SCALAR_SIZES = {
    GGUFValueType.UINT8: 1,
    GGUFValueType.INT8: 1,
    GGUFValueType.BOOL: 1,
    GGUFValueType.UINT16: 2,
    GGUFValueType.INT16: 2,
    GGUFValueType.UINT32: 4,
    GGUFValueType.INT32: 4,
    GGUFValueType.FLOAT32: 4,
    GGUFValueType.UINT64: 8,
    GGUFValueType.INT64: 8,
    GGUFValueType.FLOAT64: 8,
}


class _MetadataReader(GGUFReader):
    """`GGUFReader` that steps over array values (their fields read as empty lists)."""

    def _get_field_parts(
        self, orig_offs: int, raw_type: int
    ) -> tuple[int, list[npt.NDArray[Any]], list[int], list[GGUFValueType]]:
        if GGUFValueType(raw_type) != GGUFValueType.ARRAY:
            return super()._get_field_parts(orig_offs, raw_type)
        item_type = self._get(orig_offs, np.uint32)
        count = self._get(orig_offs + 4, np.uint64)
        itype = GGUFValueType(int(item_type[0]))
        n = int(count[0])
        start = orig_offs + 12
        if itype in _SCALAR_SIZES:
            end = start + n * _SCALAR_SIZES[itype]
        elif itype == GGUFValueType.STRING:
            order = "<" if self.endianess == GGUFEndian.LITTLE else ">"
            buf, end = self.data.data, start  # the memory map as a memoryview
            for _ in range(n):
                (length,) = struct.unpack_from(f"{order}Q", buf, end)
                end += 8 + length
        else:  # arrays of arrays: rare and small; let the package walk them
            return super()._get_field_parts(orig_offs, raw_type)
        if end > len(self.data):
            raise ValueError("metadata array runs past the end of the file")
        return end - orig_offs, [item_type, count], [], [GGUFValueType.ARRAY, itype]


def _file_type_name(code: int | None) -> str:
    """Ollama's spelling of general.file_type: MOSTLY_Q4_K_M -> "Q4_K_M", ALL_F32 -> "F32"."""
    if code is None:
        return ""
    try:
        name = LlamaFileType(code).name
    except ValueError:
        return f"type {code}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _lora_shape(
    tensors: Any, hidden_inputs: tuple[str, ...], *, dims_first: bool
) -> tuple[int | None, int | None]:
    """(hidden size, layer count) that a set of LoRA tensors was trained for.

    GGUF lists dimensions innermost first (ne0 = input width of lora_a); safetensors lists
    them as PyTorch does ([rank, input width] for lora_A).
    """
    width: int | None = None
    top = -1
    for name, shape in tensors:
        m = _BLOCK_RE.search(name)
        if m:
            top = max(top, int(m.group(1)))
        low = name.lower()
        if (
            width is None
            and len(shape) == 2
            and ("lora_a" in low)
            and any(f"{part}." in low or low.endswith(part) for part in hidden_inputs)
        ):
            width = shape[0] if dims_first else shape[1]
    return width, (top + 1 if top >= 0 else None)


def read_adapter_folder(path: Path) -> AdapterFolderInfo:
    """Read a PEFT adapter folder (config + safetensors header); raises `ModelFileError`."""
    path = Path(path)
    config_file = path / ADAPTER_CONFIG
    if not config_file.is_file():
        raise ModelFileError(
            f"{path.name} has no {ADAPTER_CONFIG}, so it is not a LoRA adapter folder.",
            "Choose the folder your fine-tuning tool saved the adapter to (it holds "
            "adapter_config.json and adapter_model.safetensors), or a .gguf file.",
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise ModelFileError(
            f"{ADAPTER_CONFIG} in {path.name} cannot be read: {e}.",
            "Save the adapter again with your fine-tuning tool.",
        ) from e
    peft_type = str(config.get("peft_type") or "")
    if peft_type.upper() != "LORA":
        raise ModelFileError(
            f"{path.name} holds a {peft_type or 'non-PEFT'} adapter; only LoRA adapters can be "
            "applied by Ollama.",
            "Train a LoRA adapter, or merge the adapter into the base model and import the GGUF.",
        )
    weights = next((path / n for n in ADAPTER_WEIGHTS if (path / n).is_file()), None)
    if weights is None:
        raise ModelFileError(
            f"{path.name} has no adapter_model.safetensors.",
            "Save the adapter with safe_serialization=True (the default in PEFT), or "
            "convert adapter_model.bin to safetensors.",
        )
    header = _safetensors_header(weights)
    shapes = [
        (name, [int(d) for d in meta.get("shape", [])])
        for name, meta in header.items()
        if name != "__metadata__" and isinstance(meta, dict)
    ]
    if not any("lora_a" in n.lower() for n, _ in shapes):
        raise ModelFileError(
            f"{weights.name} holds no LoRA tensors (no lora_A weights).",
            "Choose the adapter's own safetensors file, not the base model's weights.",
        )
    width, layers = _lora_shape(shapes, _HF_HIDDEN_INPUTS, dims_first=False)
    rank, alpha = config.get("r"), config.get("lora_alpha")
    targets = config.get("target_modules") or []
    return AdapterFolderInfo(
        path=path,
        config_file=config_file,
        weights_file=weights,
        weights_size=_file_size(weights),
        peft_type=peft_type,
        rank=int(rank) if isinstance(rank, int) else None,
        alpha=float(alpha) if isinstance(alpha, int | float) else None,
        base_model=str(config.get("base_model_name_or_path") or ""),
        target_modules=tuple(str(t) for t in targets) if isinstance(targets, list) else (),
        tensor_count=len(shapes),
        adapter_width=width,
        adapter_layers=layers,
    )


def _safetensors_header(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ValueError("file too short")
            (length,) = struct.unpack("<Q", raw)
            if not 2 <= length <= _MAX_SAFETENSORS_HEADER:
                raise ValueError(f"implausible header length {length}")
            header = json.loads(f.read(length))
            if not isinstance(header, dict):
                raise ValueError("header is not a JSON object")
            return header
    except (OSError, ValueError) as e:
        raise ModelFileError(
            f"{path.name} is not a readable safetensors file ({e}).",
            "The file is probably truncated or damaged: save or download the adapter again.",
        ) from e


def _file_size(path: Path) -> int:
    if not path.exists():
        raise ModelFileError(f"{path} does not exist.", "Check the path and try again.")
    if not path.is_file():
        raise ModelFileError(
            f"{path} is not a file.", "Choose a .gguf file, or a LoRA adapter folder."
        )
    try:
        return path.stat().st_size
    except OSError as e:
        raise ModelFileError(
            f"Cannot read {path}: {e.strerror or e}.",
            "Check the path and that you may read the file.",
        ) from e
