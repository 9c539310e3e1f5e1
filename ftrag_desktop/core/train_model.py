"""Load a GGUF base model for training with transformers, and put a peft LoRA adapter on it.

transformers reads GGUF files itself (`from_pretrained(folder, gguf_file=name)`): it builds
the config and tokenizer from the metadata and dequantizes every tensor to float.  The file is
read in place, which is how an Ollama blob (`sha256-<hex>`, no extension) is used without a copy.

One thing is done around that loader: it parses the file's metadata three or four times per
load (config, tokenizer, weights) with gguf's `GGUFReader`, whose `numpy.memmap` slices cost
about 6 s per pass over SmolLM2's 49k-token vocabulary, and it builds a fresh tensor-name map
for each of the model's ~400 submodules.  For the length of one load, `_fast_gguf_reading`
hands it one reader per file whose arrays are plain views of the same memory map (3x faster to
slice) and caches the name map: the same bytes and the same mapping, parsed once.  A 135M
model then loads in about 11 s instead of 37 s.

Imports torch, transformers and peft: only the training run reaches this module.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ftrag_desktop.core.train_base import BaseModel
from ftrag_desktop.core.train_env import Device
from ftrag_desktop.core.train_options import TrainOptions
from ftrag_desktop.errors import UserError

__all__ = [
    "BaseLoadFailed",
    "UnsupportedArchitecture",
    "add_lora",
    "check_architecture",
    "load_base",
    "supported_architectures",
]

log = logging.getLogger(__name__)
# llama.cpp architecture names transformers knows under another name (load_gguf_checkpoint).
_RENAMED = {
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "gpt-oss": "gpt_oss",
    "minimax-m2": "minimax_m2",
    "t5encoder": "t5",
}


class UnsupportedArchitecture(UserError):
    """transformers cannot load GGUF files of this architecture."""


class BaseLoadFailed(UserError):
    """The base model's GGUF could not be loaded for training."""


def supported_architectures() -> frozenset[str]:
    """The GGUF architectures transformers' loader reads."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return frozenset(str(a) for a in GGUF_SUPPORTED_ARCHITECTURES)


def check_architecture(base: BaseModel) -> None:
    arch = base.info.architecture
    known = supported_architectures()
    if arch in known or _RENAMED.get(arch) in known:
        return
    raise UnsupportedArchitecture(
        f"{base.label} is a '{arch}' model, and training cannot load '{arch}' GGUF files "
        "(transformers reads these architectures: " + ", ".join(sorted(known)) + ").",
        "Choose a base model of one of those architectures (llama, mistral, qwen2, qwen3, "
        "gemma2, gemma3, phi3, ... cover most small chat models).",
    )


@contextlib.contextmanager
def _fast_gguf_reading() -> Iterator[None]:
    """One `GGUFReader` per file, on plain array views, and a cached tensor-name map, for the
    duration of a load (see the module docstring)."""
    import gguf
    from transformers import modeling_gguf_pytorch_utils as hf_gguf

    original_reader = gguf.GGUFReader
    original_tqdm = hf_gguf.tqdm
    original_map = gguf.get_tensor_name_map

    class _PlainViewReader(original_reader):  # type: ignore[misc, valid-type]
        # np.memmap's __array_finalize__ runs on every slice; ndarray views of the same
        # mapping do not pay it.
        @property
        def data(self) -> Any:
            return self._plain_data

        @data.setter
        def data(self, value: Any) -> None:
            self._plain_data = value.view(np.ndarray)

    readers: dict[tuple[str, str], Any] = {}

    def reader(path: Any, mode: str = "r") -> Any:
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = _PlainViewReader(path, mode)
        return readers[key]

    patches = {
        (gguf, "GGUFReader"): reader,
        (gguf, "get_tensor_name_map"): functools.lru_cache(maxsize=None)(original_map),
        # Its per-tensor progress bar would land in the middle of `ftrag train`'s output.
        (hf_gguf, "tqdm"): functools.partial(original_tqdm, disable=True),
    }
    originals = {key: getattr(*key) for key in patches}
    for (module, name), value in patches.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for (module, name), value in originals.items():
            setattr(module, name, value)
        readers.clear()


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_base(base: BaseModel, device: Device) -> tuple[Any, Any]:
    """(model, tokenizer): the GGUF dequantized to float32 (bfloat16 on a CUDA GPU) on
    `device`, ready for peft; raises `UnsupportedArchitecture` or `BaseLoadFailed`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_architecture(base)
    _quiet_transformers()
    dtype = torch.bfloat16 if device.kind == "cuda" else torch.float32
    folder, name = str(base.path.parent), base.path.name
    try:
        with _fast_gguf_reading(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
    except ValueError as e:
        if "not supported" in str(e):
            raise UnsupportedArchitecture(
                f"transformers cannot load {base.label}: {e}",
                "Choose a base model of an architecture transformers reads from GGUF.",
            ) from e
        raise BaseLoadFailed(
            f"{base.label} could not be loaded for training: {e}", _LOAD_HINT
        ) from e
    except (KeyError, NotImplementedError, OSError, RuntimeError, TypeError) as e:
        raise BaseLoadFailed(
            f"{base.label} could not be loaded for training: {type(e).__name__}: {e}",
            _LOAD_HINT,
        ) from e
    model.config.use_cache = False
    if device.kind != "cpu":
        model.to(device.kind)
    return model, tokenizer


_LOAD_HINT = (
    "The file may use a quantization the gguf package cannot dequantize (IQ types, for "
    "example) or be damaged: try a Q8_0, Q4_K_M or F16 version of the model."
)


def add_lora(model: Any, options: TrainOptions) -> Any:
    """The model wrapped by peft with a fresh LoRA adapter (only the adapter trains)."""
    from peft import LoraConfig, get_peft_model

    targets: Any = list(options.target_modules) if options.target_modules else "all-linear"
    config = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return get_peft_model(model, config)
    except ValueError as e:  # e.g. a target module the model does not have
        raise UserError(
            f"The LoRA adapter cannot be attached: {e}",
            "Check the target modules (for llama-like models: q_proj, k_proj, v_proj, o_proj, "
            "gate_proj, up_proj, down_proj), or leave them empty for every linear layer.",
        ) from e
