"""`ftrag merge-adapter`: merge a LoRA adapter into its base GGUF (the same core, no Qt).

    ftrag merge-adapter --base FILE --adapter PATH --out FILE [--out-type Q8_0|F16|F32|...]
                        [--name NAME] [--verify | --no-verify] [--force] [--json]

The adapter is a PEFT folder (adapter_config.json + adapter_model.safetensors) or a GGUF LoRA.
Progress goes to stderr.  `--json` prints events, one JSON object per line, on stdout:
``{"event": "started", ...}``, ``{"event": "progress", "done": B, "total": B}`` every 5 %,
``{"event": "merged", ...}`` (the result, with the names of the merged tensors) and, when the
file was checked, ``{"event": "verified", "reply": TEXT}``.
The file is checked with llama-cpp-python when it is installed (`--verify` insists on it,
`--no-verify` skips it).  Exit codes: 0 merged (and checked), 1 an error the user can fix
(message and hint on stderr; nothing written, except a merged file that failed its check,
which is kept and named), 2 usage, 130 after Ctrl-C (nothing written).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import threading
from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.core.gguf_merge import MergeResult

__all__ = ["add_merge_parser"]

OUT_TYPE_CHOICES = ("Q8_0", "F16", "BF16", "F32", "Q5_1", "Q5_0", "Q4_1", "Q4_0")


def _emit(doc: dict[str, Any]) -> None:
    from ftrag_desktop.cli import _emit as emit  # cli.py imports this module at its top

    emit(doc)
    sys.stdout.flush()


def _cancels(cancel: threading.Event, message: str) -> AbstractContextManager[None]:
    from ftrag_desktop.cli import _first_ctrl_c_cancels

    return _first_ctrl_c_cancels(cancel, message)


def _size(n: int) -> str:
    from ftrag_desktop.cli import _size as size

    return size(n)


def add_merge_parser(sub: Any) -> None:
    p = sub.add_parser(
        "merge-adapter",
        help="merge a LoRA adapter (PEFT folder or GGUF) into its base GGUF",
        description="Write a new GGUF: the base model with the adapter merged into its "
        "weights, keeping the base's tokenizer, chat template and metadata.",
    )
    p.add_argument("--base", required=True, metavar="FILE", help="the base model's .gguf file")
    p.add_argument(
        "--adapter",
        required=True,
        metavar="PATH",
        help="PEFT adapter folder (adapter_config.json + safetensors) or GGUF LoRA file",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="the .gguf file to write")
    p.add_argument(
        "--out-type",
        default="Q8_0",
        type=str.upper,
        choices=OUT_TYPE_CHOICES,
        help="type of the merged tensors (default Q8_0; the others keep their own)",
    )
    p.add_argument("--name", help="general.name of the new model (default: the base's)")
    p.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="load the result with llama-cpp-python and generate a few tokens "
        "(default: when llama-cpp-python is installed)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--json", action="store_true", help="JSON events on stdout, one per line")
    p.set_defaults(func=cmd_merge_adapter)


class _Progress:
    """Merge progress as a line every 10 % on stderr, or a JSON event every 5 %."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.step = 5 if as_json else 10
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        if pct // self.step == self.last:
            return
        self.last = pct // self.step
        if self.as_json:
            _emit({"event": "progress", "done": done, "total": total})
        else:
            print(f"merging {pct:3d}%  {_size(done)} of {_size(total)}", file=sys.stderr)


def _tensor_summary(names: tuple[str, ...]) -> str:
    """'attn_q x30, attn_v x30' from blk.N.attn_q.weight names."""
    kinds = Counter(n.removeprefix("blk.").split(".", 1)[-1].removesuffix(".weight") for n in names)
    return ", ".join(f"{kind} x{count}" for kind, count in kinds.items())


def cmd_merge_adapter(engine: Engine, args: argparse.Namespace) -> int:
    from ftrag_desktop.core.gguf_merge import merge_adapter, verify_gguf
    from ftrag_desktop.errors import Cancelled, ModelFileError, UserError

    base, adapter, out = Path(args.base), Path(args.adapter), Path(args.out)
    if out.exists() and not args.force:
        raise ModelFileError(
            f"{out} already exists.", "Choose another --out, or pass --force to replace it."
        )
    verify = args.verify
    if verify is None:
        verify = importlib.util.find_spec("llama_cpp") is not None
    if args.json:
        _emit(
            {
                "event": "started",
                "base": str(base),
                "adapter": str(adapter),
                "out": str(out),
                "out_type": args.out_type,
            }
        )
    else:
        print(f"Merging {adapter} into {base.name} ({args.out_type})…", file=sys.stderr)
    cancel = threading.Event()
    try:
        with _cancels(cancel, "Stopping the merge (Ctrl-C again to abort)…"):
            result = merge_adapter(
                base,
                adapter,
                out,
                out_type=args.out_type,
                progress=_Progress(args.json),
                cancel=cancel,
                name=args.name,
            )
    except (Cancelled, KeyboardInterrupt):
        print("Merge cancelled: nothing was written.", file=sys.stderr)
        return 130
    _report(result, args.json)
    if not verify:
        return 0
    if not args.json:
        print("Checking that it loads and generates…", file=sys.stderr)
    try:
        reply = verify_gguf(result.out, prompt="The capital of France is", max_tokens=8)
    except UserError:
        print(f"{result.out} was written, but the check failed:", file=sys.stderr)
        raise
    if args.json:
        _emit({"event": "verified", "reply": reply})
    else:
        print(f"It loads and generates: {' '.join(reply.split())[:80]!r}")
    return 0


def _report(result: MergeResult, as_json: bool) -> None:
    if as_json:
        _emit({"event": "merged", **result.to_dict()})
        return
    print(
        f"Merged {result.tensors_merged} tensors into {result.out} "
        f"({_size(result.bytes)}, file type {result.file_type}) in {result.seconds:.1f} s."
    )
    print(f"  merged ({result.out_type}): {_tensor_summary(result.merged)}")
    if result.fallback_f16:
        print(
            f"  written as F16 (rows do not fit {result.out_type} blocks): "
            f"{', '.join(result.fallback_f16)}"
        )
