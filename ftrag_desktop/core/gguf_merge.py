"""Merge a LoRA adapter into its base GGUF, writing a whole new GGUF; check a GGUF generates.

`merge_adapter` reads the base GGUF memory-mapped, fits the adapter onto it (`gguf_lora`), and
streams a new file: the base's metadata copied byte for byte (architecture, tokenizer with its
vocabulary, merges and token types, chat template, ...) plus `general.file_type`, the
provenance keys `general.base_model.*` and an `ftrag.merge.*` record; every tensor the adapter
does not touch copied byte for byte in its own quantization; every tensor it touches
dequantized, given `scale * B @ A`, and written as `out_type` (F32, F16, BF16, Q8_0, Q5_x,
Q4_x; F16 when a row does not fit the type's blocks, as llama.cpp does).  Tensor order and
alignment are the base's.  Only one tensor is dequantized at a time, so a 7B model costs a few
hundred MB of memory, not 28 GB.  The file is written beside `out` under a temporary name,
then renamed: a failure or a cancel leaves no partial output.

`verify_gguf` loads a GGUF with llama-cpp-python, checks its logits are numbers, and generates.
Only numpy, the `gguf` package and (for verifying) llama-cpp-python: no torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from gguf import (
    GGML_QUANT_SIZES,
    GGMLQuantizationType,
    GGUFEndian,
    GGUFReader,
    GGUFValueType,
    GGUFWriter,
    Keys,
    LlamaFileType,
)
from gguf.gguf_writer import WriterState
from gguf.quants import dequantize, quantize

from ftrag_desktop import __version__
from ftrag_desktop.core.gguf_lora import (
    BaseModel,
    LoraAdapter,
    LoraTensor,
    base_model_info,
    field_value,
    open_gguf,
    read_lora,
)
from ftrag_desktop.errors import Cancelled, ModelFileError, ModelImportFailed

__all__ = ["OUT_TYPES", "MergeResult", "merge_adapter", "verify_gguf"]

Progress = Callable[[int, int], None]

# What merged tensors may be written as: everything the `gguf` package can quantize to that
# llama.cpp reads on every backend.
OUT_TYPES: dict[str, GGMLQuantizationType] = {
    "F32": GGMLQuantizationType.F32,
    "F16": GGMLQuantizationType.F16,
    "BF16": GGMLQuantizationType.BF16,
    "Q8_0": GGMLQuantizationType.Q8_0,
    "Q5_1": GGMLQuantizationType.Q5_1,
    "Q5_0": GGMLQuantizationType.Q5_0,
    "Q4_1": GGMLQuantizationType.Q4_1,
    "Q4_0": GGMLQuantizationType.Q4_0,
}
# general.file_type for a file whose weights are mostly of one type.
_FILE_TYPES: dict[GGMLQuantizationType, LlamaFileType] = {
    GGMLQuantizationType.F32: LlamaFileType.ALL_F32,
    GGMLQuantizationType.F16: LlamaFileType.MOSTLY_F16,
    GGMLQuantizationType.BF16: LlamaFileType.MOSTLY_BF16,
    GGMLQuantizationType.Q8_0: LlamaFileType.MOSTLY_Q8_0,
    GGMLQuantizationType.Q5_1: LlamaFileType.MOSTLY_Q5_1,
    GGMLQuantizationType.Q5_0: LlamaFileType.MOSTLY_Q5_0,
    GGMLQuantizationType.Q4_1: LlamaFileType.MOSTLY_Q4_1,
    GGMLQuantizationType.Q4_0: LlamaFileType.MOSTLY_Q4_0,
}
_CHUNK = 32 * 1024 * 1024  # bytes copied between progress reports and cancel checks
_KEEP_FREE = 64 * 1024 * 1024  # never fill a disk to the last byte
_PROVENANCE = ("general.base_model.", "ftrag.merge.")


@dataclass(frozen=True)
class MergeResult:
    """What a merge wrote."""

    out: Path
    tensors_merged: int
    out_type: str
    bytes: int
    merged: tuple[str, ...]  # GGUF names of the tensors that changed
    fallback_f16: tuple[str, ...]  # merged tensors whose rows do not fit out_type's blocks
    base: Path
    adapter: Path
    adapter_format: str  # "peft" or "gguf"
    rank: int
    alpha: float
    file_type: str  # general.file_type written, e.g. "Q8_0" or "Q4_1"
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "tensors_merged": self.tensors_merged,
            "out_type": self.out_type,
            "bytes": self.bytes,
            "merged": list(self.merged),
            "fallback_f16": list(self.fallback_f16),
            "base": str(self.base),
            "adapter": str(self.adapter),
            "adapter_format": self.adapter_format,
            "rank": self.rank,
            "alpha": self.alpha,
            "file_type": self.file_type,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class _Planned:
    """One tensor of the output: where it comes from and how it is stored."""

    source: Any  # gguf ReaderTensor
    lora: LoraTensor | None
    qtype: GGMLQuantizationType
    shape: tuple[int, ...]  # numpy order
    nbytes: int


class _RawField(bytes):
    """A metadata entry copied byte for byte from the base, key included."""


class _Writer(GGUFWriter):
    """GGUFWriter that writes copied metadata entries as they were (no decoding of the
    vocabulary: 49k strings for SmolLM2, 128k for Llama 3)."""

    def write_kv_data_to_file(self) -> None:
        if self.state is not WriterState.HEADER:
            raise ValueError(f"Expected output file to contain the header, got {self.state}")
        assert self.fout is not None and len(self.fout) == 1
        data = bytearray()
        for key, val in self.kv_data[0].items():
            if isinstance(val.value, _RawField):
                data += val.value
            else:
                data += self._pack_val(key, GGUFValueType.STRING, add_vtype=False)
                data += self._pack_val(val.value, val.type, add_vtype=True, sub_type=val.sub_type)
        self.fout[0].write(data)
        self.flush()
        self.state = WriterState.KV_DATA


def merge_adapter(
    base_gguf: Path,
    adapter: Path,
    out: Path,
    *,
    out_type: str = "Q8_0",
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    name: str | None = None,
) -> MergeResult:
    """Merge `adapter` (PEFT folder or GGUF LoRA) into `base_gguf`, writing the model to `out`.

    `progress(done_bytes, total_bytes)` is called as the file is written; setting `cancel`
    stops at the next chunk with `Cancelled` and no output.  `name` replaces general.name.
    Raises `ModelFileError` for inputs that are unusable or do not fit each other, and
    `ModelImportFailed` when the output cannot be written (no space, not writable).
    """
    started = time.monotonic()
    qtype = OUT_TYPES.get(out_type.upper())
    if qtype is None:
        raise ModelFileError(
            f"Merged weights cannot be written as {out_type}.",
            f"Choose one of {', '.join(OUT_TYPES)} (Q8_0 is nearly lossless and half of F16).",
        )
    out_type = qtype.name
    base_path, adapter_path, out = Path(base_gguf), Path(adapter), Path(out)
    _check_output(out, base_path, adapter_path)
    reader = open_gguf(base_path)
    try:
        if reader.endianess != GGUFEndian.LITTLE or sys.byteorder != "little":
            raise ModelFileError(
                f"{base_path.name} is a big-endian GGUF; only little-endian files can be merged.",
                "Use the ordinary (little-endian) GGUF of the model.",
            )
        base = base_model_info(reader, base_path)
        lora = read_lora(adapter_path, base)
        plan = _plan(reader, lora, qtype)
        file_type = _file_type(reader, plan)
        fields = _metadata(reader, base, lora, plan, out_type, file_type, name)
        total = sum(_padded(p.nbytes, reader.alignment) for p in plan)
        _check_space(out.parent, total + int(reader.data_offset) + 1024 * 1024)
        _write(out, reader, fields, plan, total, progress, cancel)
    finally:
        del reader  # release the memory map
    merged = tuple(p.source.name for p in plan if p.lora is not None)
    fallback = tuple(p.source.name for p in plan if p.lora is not None and p.qtype != qtype)
    return MergeResult(
        out=out,
        tensors_merged=len(merged),
        out_type=out_type,
        bytes=out.stat().st_size,
        merged=merged,
        fallback_f16=fallback,
        base=base_path,
        adapter=adapter_path,
        adapter_format=lora.format,
        rank=lora.rank,
        alpha=lora.alpha,
        file_type=_file_type_name(file_type),
        seconds=time.monotonic() - started,
    )


def _check_output(out: Path, base: Path, adapter: Path) -> None:
    resolved = out.resolve()
    for other, what in ((base, "base model"), (adapter, "adapter")):
        if resolved == other.resolve():
            raise ModelFileError(
                f"The output {out} is the {what} itself.",
                "Choose another output file, e.g. a new name ending in .gguf.",
            )
    if out.is_dir():
        raise ModelFileError(
            f"The output {out} is a folder.", "Give the path of the .gguf file to write."
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelImportFailed(
            f"Cannot create the folder {out.parent}: {e.strerror or e}.",
            "Choose an output folder you may write to.",
        ) from e


def _plan(reader: GGUFReader, lora: LoraAdapter, qtype: GGMLQuantizationType) -> list[_Planned]:
    by_target = {t.target: t for t in lora.tensors}
    plan: list[_Planned] = []
    for tensor in reader.tensors:
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
        delta = by_target.get(tensor.name)
        if delta is None:
            plan.append(_Planned(tensor, None, tensor.tensor_type, shape, int(tensor.n_bytes)))
            continue
        _check_readable(tensor)
        block, _ = GGML_QUANT_SIZES[qtype]
        out_q = qtype if shape[-1] % block == 0 else GGMLQuantizationType.F16
        plan.append(_Planned(tensor, delta, out_q, shape, _nbytes(shape, out_q)))
    return plan


def _check_readable(tensor: Any) -> None:
    _, size = GGML_QUANT_SIZES[tensor.tensor_type]
    try:
        dequantize(np.zeros((1, size), dtype=np.uint8), tensor.tensor_type)
    except NotImplementedError as e:
        raise ModelFileError(
            f"The base stores {tensor.name} as {tensor.tensor_type.name}, which cannot be "
            "dequantized here, so the adapter cannot be added to it.",
            "Merge into a copy of the base in F16, Q8_0, Q4_K_M or another common type.",
        ) from e


def _nbytes(shape: tuple[int, ...], qtype: GGMLQuantizationType) -> int:
    block, size = GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape)) // block * size


def _padded(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def _file_type(reader: GGUFReader, plan: list[_Planned]) -> int:
    """general.file_type: the base's when its weights' main type is unchanged, else the new one."""

    def dominant(types: Iterator[tuple[GGMLQuantizationType, int]]) -> GGMLQuantizationType:
        weights: Counter[GGMLQuantizationType] = Counter()
        for qtype, n in types:
            weights[qtype] += n
        return weights.most_common(1)[0][0] if weights else GGMLQuantizationType.F32

    matrices = [p for p in plan if len(p.shape) >= 2]
    before = dominant((p.source.tensor_type, int(p.source.n_elements)) for p in matrices)
    after = dominant((p.qtype, int(p.source.n_elements)) for p in matrices)
    base_ft = field_value(reader, Keys.General.FILE_TYPE)
    if after == before and isinstance(base_ft, int):
        return base_ft
    return int(_FILE_TYPES.get(after, LlamaFileType.GUESSED))


def _file_type_name(code: int) -> str:
    try:
        name = LlamaFileType(code).name
    except ValueError:
        return f"type {code}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _raw_fields(reader: GGUFReader) -> Iterator[tuple[str, _RawField]]:
    """Each metadata entry of the file with its bytes (from its key to the next entry)."""
    entries = [f for f in reader.fields.values() if not f.name.startswith("GGUF.")]
    ends = [f.offset for f in entries[1:]] + [reader.tensors[0].field.offset]
    for field, end in zip(entries, ends, strict=True):
        yield field.name, _RawField(reader.data[field.offset : end].tobytes())


def _metadata(
    reader: GGUFReader,
    base: BaseModel,
    lora: LoraAdapter,
    plan: list[_Planned],
    out_type: str,
    file_type: int,
    name: str | None,
) -> list[tuple[str, Any, GGUFValueType]]:
    """The output's metadata entries in order: the base's, then provenance."""
    fields: list[tuple[str, Any, GGUFValueType]] = []
    for key, raw in _raw_fields(reader):
        if key == Keys.General.ARCHITECTURE or key.startswith(_PROVENANCE):
            # The writer adds the architecture; the base model is now `base`, and the record
            # of the merge that made `base` (if any) gives way to this merge's.
            continue
        if key == Keys.General.FILE_TYPE:
            fields.append((key, file_type, GGUFValueType.UINT32))
        elif key == Keys.General.NAME and name:
            fields.append((key, name, GGUFValueType.STRING))
        else:
            fields.append((key, raw, GGUFValueType.STRING))
    present = {k for k, _, _ in fields}
    if Keys.General.FILE_TYPE not in present:
        fields.append((Keys.General.FILE_TYPE, file_type, GGUFValueType.UINT32))
    if name and Keys.General.NAME not in present:
        fields.append((Keys.General.NAME, name, GGUFValueType.STRING))

    def text(key: str) -> str:
        value = field_value(reader, key)
        return value if isinstance(value, str) else ""

    fields.append(("general.base_model.count", 1, GGUFValueType.UINT32))
    fields.append(("general.base_model.0.name", base.name, GGUFValueType.STRING))
    for part in ("organization", "version", "repo_url", "url"):
        if value := text(f"general.{part}"):
            fields.append((f"general.base_model.0.{part}", value, GGUFValueType.STRING))
    merged = sum(1 for p in plan if p.lora is not None)
    record: list[tuple[str, Any, GGUFValueType]] = [
        ("ftrag.merge.tool", f"ftrag-desktop {__version__}", GGUFValueType.STRING),
        ("ftrag.merge.base_file", base.path.name, GGUFValueType.STRING),
        ("ftrag.merge.base_bytes", base.path.stat().st_size, GGUFValueType.UINT64),
        ("ftrag.merge.adapter", lora.path.name, GGUFValueType.STRING),
        ("ftrag.merge.adapter_format", lora.format, GGUFValueType.STRING),
        ("ftrag.merge.adapter_sha256", _sha256(lora.weights_file), GGUFValueType.STRING),
        ("ftrag.merge.adapter_base_model", lora.base_model_hint, GGUFValueType.STRING),
        ("ftrag.merge.rank", lora.rank, GGUFValueType.UINT32),
        ("ftrag.merge.alpha", lora.alpha, GGUFValueType.FLOAT32),
        ("ftrag.merge.rslora", lora.use_rslora, GGUFValueType.BOOL),
        ("ftrag.merge.tensors", merged, GGUFValueType.UINT32),
        ("ftrag.merge.out_type", out_type, GGUFValueType.STRING),
    ]
    fields.extend(r for r in record if r[1] != "")  # the writer refuses empty strings
    return fields


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free - needed < _KEEP_FREE:
        raise ModelImportFailed(
            f"Not enough disk space in {folder}: the merged model needs about "
            f"{_size(needed)} (and {_size(_KEEP_FREE)} should stay free), but only "
            f"{_size(free)} is available.",
            "Free some space, or write the merged model to another disk.",
        )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


def _write(
    out: Path,
    reader: GGUFReader,
    fields: list[tuple[str, Any, GGUFValueType]],
    plan: list[_Planned],
    total: int,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> None:
    arch = field_value(reader, Keys.General.ARCHITECTURE)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    writer = _Writer(None, str(arch))
    writer.data_alignment = int(reader.alignment)
    for key, value, vtype in fields:
        writer.add_key_value(key, value, vtype)
    for p in plan:
        # A non-uint8 dtype makes the writer take `shape` as elements (numpy order).
        writer.add_tensor_info(p.source.name, p.shape, np.dtype(np.float32), p.nbytes, p.qtype)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        if cancel is not None and cancel.is_set():
            raise Cancelled("The merge was cancelled.")
        done += n
        if progress is not None:
            progress(done, total)

    try:
        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        assert writer.fout is not None
        fout = writer.fout[0]
        writer.write_padding(fout, fout.tell())
        step(0)
        for p in plan:
            data = _tensor_bytes(p)
            for start in range(0, p.nbytes, _CHUNK):
                fout.write(data[start : start + _CHUNK].data)
                step(min(_CHUNK, p.nbytes - start))
            pad = _padded(p.nbytes, writer.data_alignment) - p.nbytes
            fout.write(bytes(pad))
            step(pad)
            del data
        fout.flush()
        os.fsync(fout.fileno())
        writer.close()
        os.replace(tmp, out)
    except OSError as e:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise ModelImportFailed(
            f"Writing {out.name} failed: {e.strerror or e}.",
            "Check there is free space and that you may write to that folder.",
        ) from e
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise


def _tensor_bytes(p: _Planned) -> npt.NDArray[np.uint8]:
    """The output bytes of one tensor: the base's own, or the merged weight quantized."""
    if p.lora is None:
        return np.asarray(p.source.data).reshape(-1).view(np.uint8)
    # A plain view, not a memmap: numpy's memmap bookkeeping costs more than the arithmetic.
    weight = dequantize(np.asarray(p.source.data), p.source.tensor_type).reshape(p.shape)
    merged = weight + p.lora.delta()  # a new array: the base's memory map stays read-only
    del weight
    if not np.isfinite(merged).all():
        raise ModelFileError(
            f"Adding the adapter to {p.source.name} gives invalid numbers (overflow).",
            "The adapter's weights are far too large: check the training run.",
        )
    data = np.ascontiguousarray(quantize(merged, p.qtype)).reshape(-1).view(np.uint8)
    if data.nbytes != p.nbytes:  # pragma: no cover - a gguf package change
        raise RuntimeError(f"{p.source.name}: {data.nbytes} bytes, expected {p.nbytes}")
    return data


# ---- verification -------------------------------------------------------------------------------


def verify_gguf(path: Path, prompt: str = "Hello", max_tokens: int = 8) -> str:
    """Load a GGUF with llama-cpp-python, check its logits, generate; return the text.

    Raises `ModelImportFailed` when llama-cpp-python is missing and `ModelFileError` when the
    file does not load or computes invalid numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist.", "Check the path of the merged model.")
    try:
        import llama_cpp
    except ImportError as e:
        raise ModelImportFailed(
            "Cannot check that the model loads: llama-cpp-python is not installed.",
            "Install it (pip install llama-cpp-python), or skip the check.",
        ) from e
    threads = max(1, min(4, os.cpu_count() or 1))
    try:
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=threads, verbose=False)
    except (ValueError, RuntimeError, OSError) as e:
        raise ModelFileError(
            f"{path.name} does not load in llama.cpp: {e}.",
            "The file is damaged or was written for another llama.cpp version: merge again, "
            "and report it if it fails again.",
        ) from e
    with contextlib.closing(llm):
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        if tokens:
            llm.eval(tokens)
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)
            )
            if not np.isfinite(logits).all():
                raise ModelFileError(
                    f"{path.name} loads, but computes invalid numbers (NaN).",
                    "The merged weights are broken: check the adapter and merge again.",
                )
            llm.reset()  # type: ignore[no-untyped-call]
        reply = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0)
        return str(reply["choices"][0]["text"])  # type: ignore[index]
