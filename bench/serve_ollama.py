"""Serve the project's Ollama-protocol test server until killed (a process of its own).

    python bench/serve_ollama.py --port 0 --embed-backend hash|minilm

Prints the server's URL on stdout, once it is ready to answer (for `minilm` the model is
loaded before that), then serves until SIGTERM or Ctrl-C.  On SIGUSR1 it prints
`embed_count N`: the number of texts embedded so far (benchmarks use it to prove that a
resync embeds nothing).  The benchmarks run it in a separate
process so that the embedding server never competes for the indexer's GIL.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.ollama_server import OllamaTestServer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--embed-backend", choices=["hash", "minilm"], default="hash")
    parser.add_argument("--chat-backend", choices=["scripted", "llama"], default="scripted")
    args = parser.parse_args(argv)

    if args.embed_backend == "minilm":
        from tests.minilm import minilm

        minilm().embed(["warm up"])  # load the model now, not inside the first timed request

    stop = threading.Event()
    report = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: report.set())
    server = OllamaTestServer(
        host=args.host,
        port=args.port,
        embed_backend=args.embed_backend,
        chat_backend=args.chat_backend,
    ).start()
    print(server.url, flush=True)
    try:
        while not stop.wait(0.05):
            if report.is_set():
                report.clear()
                print(f"embed_count {server.embed_count}", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
