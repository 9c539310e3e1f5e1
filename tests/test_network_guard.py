"""No network beyond Ollama: whole sessions run under a socket guard that allows one address.

The guard wraps `socket.socket.connect`/`connect_ex`/`sendto`, `socket.create_connection` and
`socket.getaddrinfo`.  It is installed in this process (for the app) and, through a
`sitecustomize.py` in a temporary directory put on `PYTHONPATH`, in every child process the
session starts: the `ftrag` commands, the app's library process and the parse workers (all of
them spawned, so they inherit the environment).  Every process appends what it did to one log
(JSON lines): that it installed the guard, every connection and name lookup, and whether it was
allowed.  A connection to anything but the configured Ollama address is refused and logged, and
the test fails on it.  Local IPC (AF_UNIX) is not network and is allowed.

What this cannot see: sockets opened by native code (LanceDB's Rust, Qt) without Python's
`socket` module.  None of ours should; the app has no Qt networking module in it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from ftrag_desktop.config import Settings, save_settings
from ftrag_desktop.paths import Home
from tests.ollama_server import OllamaTestServer

WAIT = 60_000
GUARD_SOURCE = r'''
"""ftrag test network guard: loaded as sitecustomize when FTRAG_NET_GUARD_LOG is set."""
import errno
import json
import os
import socket
import sys

_ORIGINAL = {}


def _record(event, target, allowed):
    line = json.dumps(
        {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "event": event,
            "target": target,
            "allowed": allowed,
            "argv": [str(a) for a in sys.orig_argv[:4]],
        }
    )
    fd = os.open(os.environ["FTRAG_NET_GUARD_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _allowed_addresses():
    out = set()
    for item in os.environ["FTRAG_NET_GUARD_ALLOW"].split(","):
        host, _, port = item.strip().rpartition(":")
        out.add((host.strip("[]"), int(port)))
    return out


def install(setter=setattr):
    allowed = _allowed_addresses()
    hosts = {h for h, _ in allowed}
    sock_cls = socket.socket
    orig_connect = sock_cls.connect
    orig_connect_ex = sock_cls.connect_ex
    orig_sendto = sock_cls.sendto
    orig_getaddrinfo = socket.getaddrinfo
    orig_create_connection = socket.create_connection

    def check(sock_family, address, event):
        if sock_family == socket.AF_UNIX:
            _record(event, f"unix:{address!r}", True)
            return
        host, port = address[0], address[1]
        ok = (host, int(port)) in allowed
        _record(event, f"{host}:{port}", ok)
        if not ok:
            raise PermissionError(errno.EACCES, f"network guard: {event} to {host}:{port} refused")

    def connect(self, address):
        check(self.family, address, "connect")
        return orig_connect(self, address)

    def connect_ex(self, address):
        check(self.family, address, "connect")
        return orig_connect_ex(self, address)

    def sendto(self, data, *args):
        address = args[-1]
        check(self.family, address, "sendto")
        return orig_sendto(self, data, *args)

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        ok = name in hosts
        _record("getaddrinfo", f"{name}:{port}", ok)
        if not ok:
            raise socket.gaierror(socket.EAI_NONAME, f"network guard: lookup of {name} refused")
        return orig_getaddrinfo(host, port, *args, **kwargs)

    def create_connection(address, *args, **kwargs):
        host, port = address[0], address[1]
        ok = (host, int(port)) in allowed
        _record("create_connection", f"{host}:{port}", ok)
        if not ok:
            raise PermissionError(errno.EACCES, f"network guard: {host}:{port} refused")
        return orig_create_connection(address, *args, **kwargs)

    setter(sock_cls, "connect", connect)
    setter(sock_cls, "connect_ex", connect_ex)
    setter(sock_cls, "sendto", sendto)
    setter(socket, "getaddrinfo", getaddrinfo)
    setter(socket, "create_connection", create_connection)
    _record("installed", "", True)


if os.environ.get("FTRAG_NET_GUARD_LOG") and __name__ == "sitecustomize":
    install()
'''


@dataclass(frozen=True)
class Record:
    pid: int
    ppid: int
    event: str
    target: str
    allowed: bool
    argv: tuple[str, ...]


@dataclass
class Guard:
    log: Path
    module: ModuleType
    ollama: str  # "127.0.0.1:port"

    def records(self) -> list[Record]:
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            raw = json.loads(line)
            raw["argv"] = tuple(raw["argv"])
            out.append(Record(**raw))
        return out

    def refused(self) -> list[Record]:
        return [r for r in self.records() if not r.allowed]

    def installed(self) -> dict[int, int]:
        """pid -> parent pid of every process that ran with the guard."""
        return {r.pid: r.ppid for r in self.records() if r.event == "installed"}

    def connections(self) -> list[Record]:
        return [r for r in self.records() if r.event in ("connect", "create_connection")]


@pytest.fixture
def guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ollama_server: OllamaTestServer
) -> Iterator[Guard]:
    ollama_server.embed_backend = "hash"
    site_dir = tmp_path / "netguard"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text(GUARD_SOURCE)
    log = tmp_path / "network.jsonl"
    allowed = f"{ollama_server.host}:{ollama_server.port}"
    monkeypatch.setenv("FTRAG_NET_GUARD_LOG", str(log))
    monkeypatch.setenv("FTRAG_NET_GUARD_ALLOW", allowed)
    monkeypatch.setenv("PYTHONPATH", str(site_dir))
    spec = importlib.util.spec_from_file_location("ftrag_net_guard", site_dir / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield Guard(log, module, allowed)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "Documents"
    root.mkdir()
    (root / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees for two minutes.\n")
    (root / "coffee.txt").write_text("Espresso needs finely ground coffee and 9 bar of pressure.\n")
    (root / "notes.html").write_text("<html><body><p>The kettle is descaled monthly.</p></body>")
    return root


def test_the_guard_refuses_and_logs_other_hosts(guard: Guard, tmp_path: Path) -> None:
    """The guard itself works, in a child process: Ollama's address passes, nothing else."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import socket\n"
        f"host, port = {guard.ollama.split(':')[0]!r}, {int(guard.ollama.split(':')[1])}\n"
        "socket.create_connection((host, port), timeout=5).close()\n"
        "for target in [('203.0.113.7', 443), ('127.0.0.1', 9)]:\n"
        "    s = socket.socket()\n"
        "    try:\n"
        "        s.connect(target)\n"
        "    except PermissionError as e:\n"
        "        print('refused', e)\n"
        "    finally:\n"
        "        s.close()\n"
        "try:\n"
        "    socket.getaddrinfo('telemetry.example.com', 443)\n"
        "except socket.gaierror as e:\n"
        "    print('lookup refused', e)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("network guard:") == 3
    refused = {(r.event, r.target) for r in guard.refused()}
    assert refused == {
        ("connect", "203.0.113.7:443"),
        ("connect", "127.0.0.1:9"),
        ("getaddrinfo", "telemetry.example.com:443"),
    }
    assert any(r.allowed and r.target == guard.ollama for r in guard.connections())


def test_cli_session_talks_to_ollama_only(
    guard: Guard, docs: Path, tmp_path: Path, ollama_server: OllamaTestServer
) -> None:
    home = tmp_path / "home"
    base = [sys.executable, "-m", "ftrag_desktop.cli", "--home", str(home)]
    base += ["--ollama-host", ollama_server.url]
    steps = [
        ["index", str(docs), "--json"],
        ["ask", "How hot should green tea be?", "--json"],
    ]
    outputs = []
    for step in steps:
        done = subprocess.run([*base, *step], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert json.loads(outputs[0])["indexed"] == 3
    conversation = json.loads(outputs[1])["conversation_id"]
    export = tmp_path / "export.md"
    done = subprocess.run(
        [*base, "export", conversation, "-o", str(export)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "How hot should green tea be?" in export.read_text()

    assert guard.refused() == []
    records = guard.records()
    commands = {r.pid for r in records if r.event == "installed" and "ftrag_desktop.cli" in r.argv}
    assert len(commands) == 3  # every command ran guarded
    workers = {pid for pid, parent in guard.installed().items() if parent in commands}
    assert workers, "the parse workers started guarded too"
    talked = {r.pid for r in guard.connections() if r.target == guard.ollama}
    assert talked and talked <= commands  # the commands reached Ollama, through the guard
    assert {r.target for r in guard.connections() if not r.target.startswith("unix:")} <= {
        guard.ollama
    }


def test_app_session_talks_to_ollama_only(
    qtbot,  # type: ignore[no-untyped-def]
    guard: Guard,
    docs: Path,
    ftrag_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ollama_server: OllamaTestServer,
) -> None:
    from ftrag_desktop.app.main_window import MainWindow

    guard.module.install(monkeypatch.setattr)  # this process too, undone after the test
    home = Home(ftrag_home)
    save_settings(home.settings_file, Settings(ollama_host=ollama_server.url))
    win = MainWindow(home)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.controller.engine is not None, timeout=WAIT)
    engine = win.controller.engine
    assert engine is not None
    win.controller.add_folder(str(docs))

    def indexed() -> bool:
        return sum(d.status.value == "indexed" for d in engine.store.documents()) == 3

    qtbot.waitUntil(indexed, timeout=WAIT)
    # An answer that tries to make the app fetch something: a remote image and a link.
    ollama_server.reply = (
        "Green tea wants 80 degrees [1]. ![pixel](http://203.0.113.9/pixel.png?leak=tea) "
        "[more](http://203.0.113.9/more)"
    )
    win.chat.question_submitted.emit("How hot should green tea be?")
    qtbot.waitUntil(lambda: win._job is None, timeout=WAIT)
    assert "Green tea wants 80 degrees" in win.chat.answer_text(1)
    target = tmp_path / "export.md"
    win.export_conversation(str(target))
    qtbot.waitUntil(target.exists, timeout=WAIT)
    win.close()
    assert [t.name for t in threading.enumerate() if t.name.startswith("ftrag")] == []

    assert guard.refused() == []
    # Qt opens sockets only through QtNetwork, which the app never loads.
    assert not [m for m in sys.modules if m.startswith("PySide6.QtNetwork")]
    me = os.getpid()
    installed = guard.installed()
    talked = {r.pid for r in guard.connections() if r.target == guard.ollama}
    assert me in talked  # answers and health checks, from the app itself
    library = {pid for pid in talked if installed.get(pid) == me}
    assert library, "the library process embedded through Ollama, guarded"
    workers = {pid for pid, parent in installed.items() if parent in library}
    assert workers, "its parse workers ran guarded too"
    assert {r.target for r in guard.connections() if not r.target.startswith("unix:")} <= {
        guard.ollama
    }
