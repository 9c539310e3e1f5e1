"""LoRA adapters in GGUF terms: read one, fit it onto a base GGUF, write it as a GGUF LoRA.

An adapter comes as a PEFT folder (`adapter_config.json` + `adapter_model.safetensors`, read
with numpy straight from the safetensors header: F32, F16 and BF16) or as a GGUF LoRA file
(`general.type = adapter`, tensors `<name>.lora_a` / `<name>.lora_b`, as llama.cpp's
convert_lora_to_gguf.py writes them).  `read_lora` turns either into `LoraTensor`s keyed by
the base model's GGUF tensor names (`blk.N.attn_q.weight`), with the scale each delta gets
(alpha/r, or alpha/sqrt(r) for rsLoRA) and, for llama, the Q/K row order llama.cpp's
HF-to-GGUF conversion gives those weights (`LlamaModel.permute`).  Everything the adapter does
not fit (architecture, layer count, widths, unknown modules, damaged files) raises
`ModelFileError` naming what is wrong.

`write_gguf_lora` writes such an adapter as a GGUF LoRA that llama.cpp (and llama-cpp-python's
`lora_path`) applies at run time.  Only numpy and the `gguf` package: no torch.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from gguf import (
    MODEL_ARCH_NAMES,
    GGMLQuantizationType,
    GGUFReader,
    GGUFType,
    GGUFValueType,
    GGUFWriter,
    Keys,
    get_tensor_name_map,
)
from gguf.quants import dequantize

from ftrag_desktop.core.gguf_info import (
    _MetadataReader,  # steps over the vocabulary instead of decoding it (seconds saved)
    _safetensors_header,
    is_gguf,
    read_adapter_folder,
)
from ftrag_desktop.errors import ModelFileError

__all__ = [
    "PEFT_ARCHITECTURES",
    "PERMUTED_QK_ARCHITECTURES",
    "BaseModel",
    "LoraAdapter",
    "LoraTensor",
    "base_model_info",
    "convert_peft_to_gguf",
    "llama_permute_rows",
    "read_base_model",
    "read_lora",
    "write_gguf_lora",
]

F32Array = npt.NDArray[np.float32]

# Architectures whose GGUF stores Q and K rows in llama.cpp's rotary order, not Hugging Face's:
# convert_hf_to_gguf.py permutes them (LlamaModel.permute), so a PEFT delta must be permuted too.
PERMUTED_QK_ARCHITECTURES = frozenset({"llama"})
# Architectures a PEFT (Hugging Face names) adapter can be mapped onto: the converter keeps
# their Q/K rows in Hugging Face order (rotary "neox" style), or permutes them as above.
PEFT_ARCHITECTURES = frozenset({"llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3"})
_ARCH_BY_NAME = {name: arch for arch, name in MODEL_ARCH_NAMES.items()}
_LORA_NAME = re.compile(r"^(?P<module>.+?)\.lora_(?P<ab>A|B)(?:\.[^.]+)?\.weight$")
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|blk)\.(\d+)\.")
_SAFETENSORS_DTYPES: dict[str, np.dtype[Any]] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
}
_GGUF_LORA_TYPES = {"F32": GGMLQuantizationType.F32, "F16": GGMLQuantizationType.F16}
_MAX_PROBLEMS = 6


@dataclass(frozen=True)
class BaseModel:
    """What fitting an adapter onto a base GGUF needs to know about the base."""

    path: Path
    name: str
    architecture: str
    block_count: int
    head_count: int | None
    head_count_kv: int | None
    shapes: Mapping[str, tuple[int, ...]]  # tensor name -> shape in numpy order (rows, cols)


@dataclass(frozen=True)
class LoraTensor:
    """One adapted weight: delta = scale * lora_b @ lora_a, in the base GGUF's row order."""

    target: str  # the base tensor, e.g. "blk.0.attn_q.weight"
    source: str  # the adapter's own name for it (for messages)
    a: npt.NDArray[Any]  # [rank, in], as stored (float32, float16 or raw bf16 as uint16)
    b: npt.NDArray[Any]  # [out, rank], as stored: Hugging Face row order for PEFT
    scale: float
    permute_heads: int  # > 0: rows of b are permuted as llama.cpp does Q/K with this many heads

    @property
    def rank(self) -> int:
        return int(self.a.shape[0])

    def lora_a(self) -> F32Array:
        return _as_f32(self.a)

    def lora_b(self) -> F32Array:
        """B as float32, its rows in the order of the base GGUF's tensor."""
        b = _as_f32(self.b)
        return llama_permute_rows(b, self.permute_heads) if self.permute_heads else b

    def delta(self) -> F32Array:
        """The change to the base weight, [out, in] float32."""
        return np.asarray(self.scale * (self.lora_b() @ self.lora_a()), dtype=np.float32)


@dataclass(frozen=True)
class LoraAdapter:
    """A LoRA adapter fitted onto one base model."""

    path: Path
    format: str  # "peft" (safetensors folder) or "gguf"
    weights_file: Path
    architecture: str
    rank: int  # the largest rank (modules may differ with rank_pattern)
    alpha: float
    use_rslora: bool
    base_model_hint: str  # PEFT's base_model_name_or_path, or the GGUF's base model name
    tensors: tuple[LoraTensor, ...]


def llama_permute_rows(rows: F32Array, n_head: int) -> F32Array:
    """Reorder rows [out, ...] as llama.cpp's converter does for Q/K (rotary pairs interleaved).

    Within each head, Hugging Face keeps the two halves of every rotary pair apart (row i and
    row i + d/2); llama.cpp wants them adjacent (rows 2i and 2i + 1).
    """
    out = rows.shape[0]
    if n_head <= 0 or out % (2 * n_head):
        raise ModelFileError(
            f"Cannot reorder {out} rows into {n_head} attention heads.",
            "The adapter does not fit this base model: choose the base it was trained on.",
        )
    return np.ascontiguousarray(
        rows.reshape(n_head, 2, out // n_head // 2, *rows.shape[1:])
        .swapaxes(1, 2)
        .reshape(rows.shape)
    )


def _as_f32(x: npt.NDArray[Any]) -> F32Array:
    if x.dtype == np.uint16:  # bf16: the top half of a float32
        return (x.astype(np.uint32) << 16).view(np.float32)
    return np.asarray(x, dtype=np.float32)


# ---- the base model --------------------------------------------------------------------------


def read_base_model(path: Path) -> BaseModel:
    """Open a base GGUF's header (not its vocabulary) and describe it; `ModelFileError` if not."""
    path = Path(path)
    reader = open_gguf(path)
    try:
        return base_model_info(reader, path)
    finally:
        del reader


def open_gguf(path: Path) -> GGUFReader:
    """A memory-mapped reader of a GGUF file; arrays of metadata are stepped over."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist or is not a file.", "Check the path.")
    if not is_gguf(path):
        raise ModelFileError(
            f"{path.name} is not a GGUF file (its first bytes are not the GGUF signature).",
            "Choose the .gguf file of the base model.",
        )
    try:
        return _MetadataReader(path)
    except (ValueError, IndexError, KeyError, OverflowError, UnicodeDecodeError, OSError) as e:
        raise ModelFileError(
            f"{path.name} starts like a GGUF file but cannot be read: {e}.",
            "The file is probably truncated or damaged: download or export it again.",
        ) from e


def field_value(reader: GGUFReader, key: str) -> Any:
    """A scalar or string metadata value, or None (arrays read as None too)."""
    field = reader.fields.get(key)
    if field is None or not field.types or field.types[0] == GGUFValueType.ARRAY:
        return None
    try:
        return field.contents()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def base_model_info(reader: GGUFReader, path: Path) -> BaseModel:
    """Describe the base model an open reader holds; refuse adapters and split files."""
    kind = field_value(reader, Keys.General.TYPE) or "model"
    if kind != "model":
        raise ModelFileError(
            f"{path.name} is a GGUF {kind}, not a whole model, so nothing can be merged into it.",
            "Choose the GGUF of the base model the adapter was trained on.",
        )
    if _int(field_value(reader, "split.count")) not in (None, 1):
        raise ModelFileError(
            f"{path.name} is one part of a model split into several files.",
            "Join the parts first (llama.cpp's llama-gguf-split --merge), then merge into the "
            "joined file.",
        )
    arch = field_value(reader, Keys.General.ARCHITECTURE)
    if not isinstance(arch, str) or not arch:
        raise ModelFileError(
            f"{path.name} does not say which architecture it is (no general.architecture).",
            "Choose a GGUF made by llama.cpp's converter (or downloaded ready-made).",
        )
    blocks = _int(field_value(reader, f"{arch}.block_count"))
    if not blocks or blocks < 1:
        raise ModelFileError(
            f"{path.name} does not say how many layers it has ({arch}.block_count).",
            "Choose a GGUF made by llama.cpp's converter (or downloaded ready-made).",
        )
    if not reader.tensors:
        raise ModelFileError(
            f"{path.name} holds no weights.", "Choose the GGUF of the base model itself."
        )
    name = field_value(reader, Keys.General.NAME)
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in reader.tensors}
    return BaseModel(
        path=path,
        name=name if isinstance(name, str) and name else path.stem,
        architecture=arch,
        block_count=blocks,
        head_count=_int(field_value(reader, f"{arch}.attention.head_count")),
        head_count_kv=_int(field_value(reader, f"{arch}.attention.head_count_kv")),
        shapes=shapes,
    )


# ---- reading adapters -------------------------------------------------------------------------


def read_lora(path: Path, base: BaseModel) -> LoraAdapter:
    """Read a PEFT folder or a GGUF LoRA file and fit it onto `base` (`ModelFileError` if not)."""
    path = Path(path)
    if path.is_dir():
        return _read_peft(path, base)
    if not path.exists():
        raise ModelFileError(f"{path} does not exist.", "Check the adapter's path.")
    if is_gguf(path):
        return _read_gguf_lora(path, base)
    if path.name == "adapter_config.json" or path.suffix == ".safetensors":
        return _read_peft(path.parent, base)
    raise ModelFileError(
        f"{path.name} is neither a GGUF LoRA file nor a PEFT adapter folder.",
        "Choose the folder holding adapter_config.json and adapter_model.safetensors, or a "
        ".gguf LoRA adapter.",
    )


def _read_peft(folder: Path, base: BaseModel) -> LoraAdapter:
    info = read_adapter_folder(folder)  # checks the config, peft_type and weights file
    config = json.loads(info.config_file.read_text(encoding="utf-8"))
    _refuse_unsupported_peft(folder, config)
    if base.architecture not in PEFT_ARCHITECTURES:
        raise ModelFileError(
            f"Merging a PEFT adapter into a {base.architecture} model is not supported yet "
            f"(supported: {', '.join(sorted(PEFT_ARCHITECTURES))}).",
            "Convert the adapter to GGUF with llama.cpp's convert_lora_to_gguf.py and merge "
            "that file instead: GGUF adapters work with any architecture.",
        )
    arrays = _safetensors_arrays(info.weights_file)
    use_rslora = bool(config.get("use_rslora"))
    alpha = _number(config.get("lora_alpha"), "lora_alpha", info.config_file)
    alpha_pattern = config.get("alpha_pattern") or {}
    pairs: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for name in arrays:
        m = _LORA_NAME.match(name)
        if m is None:
            problems.append(f"{name} is not a LoRA matrix (lora_A / lora_B)")
            continue
        pairs.setdefault(m.group("module"), {})[m.group("ab")] = name
    _raise_if(problems, folder, "holds tensors a merge cannot apply", _PEFT_HINT)
    _check_layers(
        (int(m.group(1)) for module in pairs if (m := _LAYER.search(module + "."))), base, folder
    )
    name_map = get_tensor_name_map(_ARCH_BY_NAME[base.architecture], base.block_count)
    tensors: list[LoraTensor] = []
    for module, parts in sorted(pairs.items(), key=lambda kv: _natural_key(kv[0])):
        if set(parts) != {"A", "B"}:
            missing = "lora_B" if "A" in parts else "lora_A"
            problems.append(f"{module} has no {missing}")
            continue
        hf_name = _hf_module_name(module)
        target = name_map.get_name(hf_name + ".weight", try_suffixes=(".weight",))
        if target is None:
            problems.append(f"{module} has no counterpart in a {base.architecture} GGUF")
            continue
        if target not in base.shapes:
            tied = (
                " (its output layer shares the token embeddings)"
                if target.startswith("output.")
                else ""
            )
            problems.append(f"{module} adapts {target}, which {base.name} does not have{tied}")
            continue
        a, b = arrays[parts["A"]], arrays[parts["B"]]
        problem = _shape_problem(module, target, a.shape, b.shape, base.shapes[target])
        if problem:
            problems.append(problem)
            continue
        rank = int(a.shape[0])
        module_alpha = _pattern_value(alpha_pattern, hf_name, alpha)
        scale = module_alpha / math.sqrt(rank) if use_rslora else module_alpha / rank
        tensors.append(
            LoraTensor(
                target=target,
                source=module,
                a=a,
                b=b,
                scale=scale,
                permute_heads=_permute_heads(target, base),
            )
        )
    _raise_if(problems, folder, "does not fit the base model " + base.name, _FIT_HINT)
    _check_finite(tensors, folder)
    if not tensors:
        raise ModelFileError(
            f"{folder.name} holds no LoRA weights.", "Save the adapter again after training."
        )
    return LoraAdapter(
        path=folder,
        format="peft",
        weights_file=info.weights_file,
        architecture=base.architecture,
        rank=max(t.rank for t in tensors),
        alpha=alpha,
        use_rslora=use_rslora,
        base_model_hint=info.base_model,
        tensors=tuple(tensors),
    )


_PEFT_HINT = (
    "Only LoRA matrices on linear layers can be merged. Train without modules_to_save and "
    "without LoRA on the embeddings, or merge the adapter with PEFT (merge_and_unload) and "
    "convert the merged model with llama.cpp."
)
_FIT_HINT = "Choose the base model the adapter was trained on (the same model, any quantization)."


def _refuse_unsupported_peft(folder: Path, config: dict[str, Any]) -> None:
    reasons = []
    if config.get("use_dora"):
        reasons.append("it is a DoRA adapter (use_dora)")
    if config.get("fan_in_fan_out"):
        reasons.append("its matrices are stored transposed (fan_in_fan_out, GPT-2 style)")
    if config.get("modules_to_save"):
        reasons.append(f"it also retrains whole modules ({config['modules_to_save']})")
    if config.get("lora_bias"):
        reasons.append("it trains biases (lora_bias)")
    if reasons:
        raise ModelFileError(f"{folder.name} cannot be merged: {'; '.join(reasons)}.", _PEFT_HINT)


def _number(value: Any, key: str, where: Path) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ModelFileError(
        f"{where.name} has no usable {key} (found {value!r}).",
        "Save the adapter again with your fine-tuning tool.",
    )


def _hf_module_name(module: str) -> str:
    """PEFT's wrapper prefix off: base_model.model.model.layers.0... -> model.layers.0..."""
    name = module.removeprefix("base_model.model.")
    for prefix, replacement in (("model.language_model.", "model."), ("language_model.", "")):
        if name.startswith(prefix):
            return replacement + name[len(prefix) :]
    return name


def _pattern_value(pattern: Mapping[str, Any], module: str, default: float) -> float:
    """PEFT's alpha_pattern lookup: a key matches the module name or its dotted suffix."""
    for key, value in pattern.items():
        if re.fullmatch(rf"(.*\.)?{key}", module) and isinstance(value, int | float):
            return float(value)
    return default


def _permute_heads(target: str, base: BaseModel) -> int:
    if base.architecture not in PERMUTED_QK_ARCHITECTURES:
        return 0
    if target.endswith(".attn_q.weight"):
        heads = base.head_count
    elif target.endswith(".attn_k.weight"):
        heads = base.head_count_kv or base.head_count
    else:
        return 0
    if not heads:
        raise ModelFileError(
            f"{base.path.name} does not say how many attention heads it has, which the "
            "adapter's Q/K matrices need.",
            "Choose a GGUF made by llama.cpp's converter.",
        )
    return heads


def _natural_key(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _shape_problem(
    module: str,
    target: str,
    a: tuple[int, ...],
    b: tuple[int, ...],
    weight: tuple[int, ...],
) -> str:
    if len(a) != 2 or len(b) != 2 or len(weight) != 2:
        return f"{module}: its matrices are not 2-D (A {list(a)}, B {list(b)})"
    if a[0] != b[1]:
        return f"{module}: lora_A has rank {a[0]} but lora_B has rank {b[1]}"
    rows, cols = weight
    if a[1] != cols or b[0] != rows:
        return (
            f"{module} maps {a[1]} inputs to {b[0]} outputs, but the base's {target} maps "
            f"{cols} to {rows}"
        )
    return ""


def _check_layers(layers: Iterable[int], base: BaseModel, where: Path) -> None:
    top = max(layers, default=-1)
    if top >= base.block_count:
        raise ModelFileError(
            f"{where.name} was trained for a model with at least {top + 1} layers; "
            f"{base.name} has {base.block_count}.",
            _FIT_HINT,
        )


def _raise_if(problems: list[str], where: Path, what: str, hint: str) -> None:
    if not problems:
        return
    shown = "; ".join(problems[:_MAX_PROBLEMS])
    more = f" (and {len(problems) - _MAX_PROBLEMS} more)" if len(problems) > _MAX_PROBLEMS else ""
    raise ModelFileError(f"{where.name} {what}: {shown}{more}.", hint)


def _check_finite(tensors: Iterable[LoraTensor], where: Path) -> None:
    bad = [
        t.source
        for t in tensors
        if not (np.isfinite(t.lora_a()).all() and np.isfinite(_as_f32(t.b)).all())
    ]
    if bad:
        raise ModelFileError(
            f"{where.name} holds invalid numbers (NaN or infinity) in {', '.join(bad[:3])}"
            + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            + ".",
            "The training diverged: train again with a lower learning rate.",
        )


def _safetensors_arrays(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Every tensor of a safetensors file as a read-only numpy view (bf16 as raw uint16)."""
    header = _safetensors_header(path)
    start = 8 + _header_length(path)
    size = path.stat().st_size
    data = np.memmap(path, mode="r", dtype=np.uint8) if size > start else np.zeros(0, np.uint8)
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name = str(meta["dtype"])
            shape = [int(d) for d in meta["shape"]]
            begin, end = (int(o) for o in meta["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise _damaged(path, f"the entry for {name} is malformed") from e
        dtype = _SAFETENSORS_DTYPES.get(dtype_name)
        if dtype is None:
            raise ModelFileError(
                f"{path.name} stores {name} as {dtype_name}; only F32, F16 and BF16 adapters "
                "can be merged.",
                "Save the adapter in float32, float16 or bfloat16.",
            )
        count = math.prod(shape)
        if begin < 0 or end - begin != count * dtype.itemsize or start + end > size:
            raise _damaged(
                path,
                f"{name} should hold {count * dtype.itemsize} bytes at {begin}..{end} but the "
                f"file has {max(size - start, 0)} bytes of data",
            )
        arrays[name] = data[start + begin : start + end].view(dtype).reshape(shape)
    return arrays


def _header_length(path: Path) -> int:
    with path.open("rb") as f:
        return int.from_bytes(f.read(8), "little")


def _damaged(path: Path, what: str) -> ModelFileError:
    return ModelFileError(
        f"{path.name} is damaged: {what}.",
        "The file is probably truncated: save or copy the adapter again.",
    )


def _read_gguf_lora(path: Path, base: BaseModel) -> LoraAdapter:
    try:
        reader = GGUFReader(path)  # adapters carry no vocabulary: the plain reader is quick
    except (ValueError, IndexError, KeyError, OverflowError, UnicodeDecodeError, OSError) as e:
        raise _damaged(path, f"its GGUF structure cannot be read ({e})") from e
    kind = field_value(reader, Keys.General.TYPE) or "model"
    if kind != "adapter":
        raise ModelFileError(
            f"{path.name} is a GGUF {kind}, not a LoRA adapter.",
            "Choose the adapter file (general.type = adapter); the base model goes in --base.",
        )
    adapter_type = field_value(reader, Keys.Adapter.TYPE)
    if adapter_type != "lora":
        raise ModelFileError(
            f"{path.name} is a {adapter_type or 'untyped'} adapter; only LoRA can be merged.",
            "Choose a LoRA adapter.",
        )
    if Keys.Adapter.ALORA_INVOCATION_TOKENS in reader.fields:
        raise ModelFileError(
            f"{path.name} is an activated LoRA (aLoRA): it applies only after its invocation "
            "tokens, so it cannot be merged into the weights.",
            "Use it at run time with llama.cpp instead.",
        )
    arch = field_value(reader, Keys.General.ARCHITECTURE)
    if arch != base.architecture:
        raise ModelFileError(
            f"{path.name} is an adapter for a {arch or 'unknown'} model, but {base.name} is "
            f"{base.architecture}.",
            _FIT_HINT,
        )
    alpha_value = field_value(reader, Keys.Adapter.LORA_ALPHA)
    alpha = float(alpha_value) if isinstance(alpha_value, int | float) else 0.0
    by_name = {t.name: t for t in reader.tensors}
    problems: list[str] = []
    targets: list[str] = []
    for name in by_name:
        if name.endswith(".lora_a"):
            targets.append(name.removesuffix(".lora_a"))
        elif not name.endswith(".lora_b"):
            problems.append(f"{name} is not a LoRA matrix")
    _raise_if(problems, path, "holds tensors a merge cannot apply", _PEFT_HINT)
    _check_layers((int(m.group(1)) for t in targets if (m := _LAYER.search(t))), base, path)
    tensors: list[LoraTensor] = []
    for target in sorted(targets, key=_natural_key):
        b_tensor = by_name.get(target + ".lora_b")
        if b_tensor is None:
            problems.append(f"{target} has no lora_b")
            continue
        if target.startswith("token_embd."):
            problems.append("token_embd (LoRA on the token embeddings cannot be merged yet)")
            continue
        if target not in base.shapes:
            problems.append(f"{target} is not a tensor of {base.name}")
            continue
        try:
            a = _gguf_matrix(by_name[target + ".lora_a"])
            b = _gguf_matrix(b_tensor)
        except NotImplementedError as e:
            raise ModelFileError(
                f"{path.name} stores {target} in a type that cannot be read here ({e}).",
                "Convert the adapter again with --outtype f32, f16 or q8_0.",
            ) from e
        problem = _shape_problem(target, target, a.shape, b.shape, base.shapes[target])
        if problem:
            problems.append(problem)
            continue
        rank = int(a.shape[0])
        # llama.cpp: scale = alpha / rank, or 1 when the file has no alpha.
        tensors.append(LoraTensor(target, target, a, b, alpha / rank if alpha else 1.0, 0))
    _raise_if(problems, path, "does not fit the base model " + base.name, _FIT_HINT)
    _check_finite(tensors, path)
    if not tensors:
        raise ModelFileError(f"{path.name} holds no LoRA weights.", "Convert the adapter again.")
    hint = field_value(reader, "general.base_model.0.name")
    return LoraAdapter(
        path=path,
        format="gguf",
        weights_file=path,
        architecture=arch,
        rank=max(t.rank for t in tensors),
        alpha=alpha,
        use_rslora=False,
        base_model_hint=hint if isinstance(hint, str) else "",
        tensors=tuple(tensors),
    )


def _gguf_matrix(tensor: Any) -> F32Array:
    data = dequantize(tensor.data, tensor.tensor_type)
    return np.asarray(data, dtype=np.float32).reshape(
        tuple(int(d) for d in reversed(tensor.shape.tolist()))
    )


# ---- writing a GGUF LoRA ----------------------------------------------------------------------


def write_gguf_lora(
    adapter: LoraAdapter, base: BaseModel, out: Path, *, out_type: str = "F32"
) -> Path:
    """Write the adapter as a GGUF LoRA for `base` (atomically: a temporary file, then rename).

    llama.cpp scales every pair by alpha / rank with one alpha for the file; a pair whose own
    scale differs (alpha_pattern, rsLoRA with mixed ranks) has the difference folded into B.
    """
    qtype = _GGUF_LORA_TYPES.get(out_type.upper())
    if qtype is None:
        raise ModelFileError(f"A GGUF LoRA cannot be written as {out_type}.", "Choose F32 or F16.")
    out = Path(out)
    first = adapter.tensors[0]
    alpha = first.scale * first.rank
    writer = GGUFWriter(None, base.architecture)
    writer.add_type(GGUFType.ADAPTER)
    writer.add_string(Keys.Adapter.TYPE, "lora")
    writer.add_float32(Keys.Adapter.LORA_ALPHA, float(alpha))
    writer.add_name(adapter.path.name)
    writer.add_base_model_count(1)
    writer.add_base_model_name(0, base.name)
    writer.add_string("ftrag.lora.source_format", adapter.format)
    for t in adapter.tensors:
        b = t.lora_b() * np.float32(t.scale / (alpha / t.rank))
        a = t.lora_a()
        if qtype == GGMLQuantizationType.F16:
            a, b = a.astype(np.float16), b.astype(np.float16)
        writer.add_tensor(t.target + ".lora_a", np.ascontiguousarray(a))
        writer.add_tensor(t.target + ".lora_b", np.ascontiguousarray(b))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return out


def convert_peft_to_gguf(
    adapter: Path, base_gguf: Path, out: Path, *, out_type: str = "F32"
) -> Path:
    """A PEFT adapter folder as a GGUF LoRA file for `base_gguf` (what llama.cpp loads)."""
    base = read_base_model(Path(base_gguf))
    return write_gguf_lora(read_lora(Path(adapter), base), base, Path(out), out_type=out_type)
