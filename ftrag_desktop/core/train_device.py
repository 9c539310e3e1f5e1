"""Where training runs: CUDA when torch sees a GPU, else Apple's MPS, else the CPU; and how fast
that device multiplies matrices (for the estimate).  Imports torch: only the training run
reaches this module (the GUI's checks live in `train_env`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ftrag_desktop.core.train_env import Device, available_memory_bytes
from ftrag_desktop.errors import UserError

__all__ = ["choose_device", "measure_matmul_flops"]


def choose_device(prefer: str = "auto", threads: int = 0) -> Device:
    """CUDA when torch sees a CUDA GPU, else Apple's MPS, else the CPU (`prefer` forces one).

    Sets torch's CPU threads when `threads` > 0."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    if prefer not in ("auto", "cuda", "mps", "cpu"):
        raise UserError(f"Unknown device '{prefer}'.", "Use auto, cuda, mps or cpu.")
    if prefer in ("auto", "cuda") and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info()
        return Device("cuda", str(torch.cuda.get_device_name(0)), int(free), 0)
    mps = getattr(torch.backends, "mps", None)
    if prefer in ("auto", "mps") and mps is not None and mps.is_available():
        return Device("mps", "Apple GPU", available_memory_bytes(), 0)
    if prefer in ("cuda", "mps"):
        raise UserError(
            f"torch sees no {prefer.upper()} device on this machine.",
            "Choose the device auto or cpu, or install a torch build for your GPU.",
        )
    return Device("cpu", _cpu_name(), available_memory_bytes(), int(torch.get_num_threads()))


def _cpu_name() -> str:
    try:
        for line in (
            Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
        ):
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return f"{os.cpu_count() or 1} cores"


def measure_matmul_flops(device: str = "cpu", seconds: float = 0.3) -> float:
    """FLOP/s of float32 matrix products on `device`: the best of three short windows of
    `seconds` / 3, i.e. what the device does when nothing else holds its cores."""
    import torch

    n = 512
    a = torch.randn(n, 4 * n, device=device)
    b = torch.randn(4 * n, n, device=device)
    a @ b  # warm up: allocation, kernels
    best = 0.0
    for _window in range(3):
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            a @ b
            done += 1
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        best = max(best, 2.0 * n * 4 * n * n * done / elapsed)
    return best
