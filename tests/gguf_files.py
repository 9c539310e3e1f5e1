"""Real model files for import tests, written with the `gguf` package (and safetensors by hand).

Small, but real: a llama-architecture GGUF with tensors and a chat template, a GGUF LoRA
adapter (`general.type = adapter`), a GGUF of an architecture Ollama cannot adapt, a PEFT
adapter folder, and junk that only has the right name.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import gguf
import numpy as np

# SmolLM2's own chat template (ChatML), as Hugging Face tokenizers carry it.
CHATML_JINJA = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# A made-up format no converter knows.
ODD_JINJA = "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}### bot:"


def write_model_gguf(
    path: Path,
    *,
    arch: str = "llama",
    width: int = 576,
    layers: int = 2,
    context_length: int = 2048,
    chat_template: str | None = CHATML_JINJA,
    base_model: str | None = None,
    padding_mb: int = 0,
    general_type: str = "model",
) -> Path:
    """A small model GGUF: real header, metadata and tensors (`padding_mb` adds bulk)."""
    w = gguf.GGUFWriter(path, arch)
    w.add_type(general_type)
    w.add_name("ftrag test model")
    w.add_size_label("1M")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(context_length)
    w.add_embedding_length(width)
    w.add_block_count(layers)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    if base_model is not None:
        w.add_base_model_count(1)
        w.add_base_model_name(0, base_model)
    rng = np.random.default_rng(0)
    w.add_tensor("token_embd.weight", rng.standard_normal((32, width), dtype=np.float32))
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_q.weight", np.ones((width, width), dtype=np.float32))
    if padding_mb:
        w.add_tensor("output.weight", np.zeros((padding_mb * 1024, 256), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_lora_gguf(
    path: Path, *, arch: str = "llama", width: int = 576, layers: int = 2, rank: int = 4
) -> Path:
    """A GGUF LoRA adapter as llama.cpp's convert_lora_to_gguf.py writes one."""
    w = gguf.GGUFWriter(path, arch)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 16.0)
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_q.weight.lora_a", np.ones((rank, width), dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight.lora_b", np.zeros((width, rank), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_peft_adapter(
    folder: Path, *, width: int = 576, layers: int = 2, rank: int = 4, base: str = ""
) -> Path:
    """A PEFT LoRA folder: adapter_config.json and adapter_model.safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": 16,
        "base_model_name_or_path": base or "HuggingFaceTB/SmolLM2-135M-Instruct",
        "target_modules": ["q_proj"],
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    header: dict[str, object] = {}
    offset = 0
    for i in range(layers):
        prefix = f"base_model.model.model.layers.{i}.self_attn.q_proj"
        for part, shape in (("lora_A", [rank, width]), ("lora_B", [width, rank])):
            size = shape[0] * shape[1] * 4
            header[f"{prefix}.{part}.weight"] = {
                "dtype": "F32",
                "shape": shape,
                "data_offsets": [offset, offset + size],
            }
            offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with (folder / "adapter_model.safetensors").open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return folder


def write_junk(path: Path) -> Path:
    """A file named like a GGUF that is not one (a zip, as a browser might save)."""
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 4096)
    return path
