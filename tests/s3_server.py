"""An S3-compatible server on loopback for the shared-index tests and benchmark: moto in server
mode, run from its own virtualenv (`.venv-s3`, built by `make install-test`: its botocore
cannot share .venv's pins).  `requests()` counts the requests it has answered, from its log."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx

__all__ = ["MOTO", "MotoServer"]

MOTO = Path(__file__).resolve().parent.parent / ".venv-s3" / "bin" / "moto_server"


class MotoServer:
    """`moto_server` on a free loopback port (`url`), answering once `start()` returns."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.url = ""
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> MotoServer:
        if not MOTO.exists():
            raise RuntimeError(f"{MOTO} is missing: run `make install-test` (it builds .venv-s3)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        out = self._log_path.open("wb") if self._log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                httpx.get(self.url, timeout=1)
                return self
            except httpx.HTTPError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)

    def create_bucket(self, name: str) -> None:
        reply = httpx.put(f"{self.url}/{name}")
        if reply.status_code != 200:
            raise RuntimeError(f"creating bucket {name}: HTTP {reply.status_code}")

    def requests(self) -> int:
        """Requests answered so far (one access-log line each); needs `log_path`."""
        if self._log_path is None:
            raise RuntimeError("MotoServer was started without a log")
        text = self._log_path.read_text(encoding="utf-8", errors="replace")
        return sum(1 for line in text.splitlines() if '" 20' in line or '" 30' in line)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None
