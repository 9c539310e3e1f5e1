"""Every Ollama fault, end to end: the `ftrag` command and the app each give a specific message.

The CLI runs as a real subprocess (`python -m ftrag_desktop.cli`) against the Ollama-protocol
test server: a fault must end with a non-zero exit, a message and a hint on stderr, and no
traceback.  The app runs offscreen: the chat shows the error naming the cause, and the banner
appears where it applies.  Time-outs come from the settings (`request_timeout_s`, or the CLI's
`--timeout`), set to 1 s here.  Recovery: when Ollama comes back, the app notices by itself
(health checks with backoff), clears the banner, reloads the model list, and answers again.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftrag_desktop.app.chat_messages import ErrorWidget
from ftrag_desktop.app.main_window import MainWindow
from ftrag_desktop.config import Settings, save_settings
from ftrag_desktop.paths import Home
from tests.ollama_server import CONTEXT_ERROR, DEFAULT_ERROR_TEXT, OllamaTestServer

TIMEOUT_S = 1.0
WAIT = 60_000
CLI_WAIT_S = 90
QUESTION = "How hot should green tea be?"
LONG_REPLY = " ".join(f"word{i}" for i in range(400))

# fault -> what the message must say (a "{url}" is the server's address).  A connection cut
# mid-answer (the server's "drop") is tested for real below: Ollama going down mid-stream.
CLI_FAULTS: dict[str, tuple[str, ...]] = {
    "down": ("error: Cannot reach Ollama at {url}.", "hint: Start Ollama (`ollama serve`"),
    "slow": (f"error: Ollama at {{url}} did not answer within {TIMEOUT_S:g} s.", "hint:"),
    "404": ("error: Model 'llama3.2' is not available in Ollama.", "`ollama pull llama3.2`"),
    "500": (f"error: Ollama reported an error: {DEFAULT_ERROR_TEXT}", "hint:"),
    "context": ("error: The prompt does not fit the model's context window", CONTEXT_ERROR),
}


def cli(home: Path, url: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ftrag_desktop.cli",
        "--home",
        str(home),
        "--ollama-host",
        url,
        "--timeout",
        f"{TIMEOUT_S:g}",
        *args,
    ]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees for two minutes.\n")
    (root / "coffee.txt").write_text("Espresso needs finely ground coffee and 9 bar of pressure.\n")
    return root


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", list(CLI_FAULTS))
def test_cli_fault_gives_a_specific_message(
    fault: str, tmp_path: Path, ollama_server: OllamaTestServer
) -> None:
    ollama_server.reply = LONG_REPLY
    ollama_server.fault = fault
    done = subprocess.run(
        cli(tmp_path / "home", ollama_server.url, "ask", QUESTION),
        capture_output=True,
        text=True,
        timeout=CLI_WAIT_S,
    )
    assert done.returncode == 1, done.stderr
    for fragment in CLI_FAULTS[fault]:
        assert fragment.format(url=ollama_server.url) in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_cli_ollama_going_down_mid_answer(tmp_path: Path, ollama_server: OllamaTestServer) -> None:
    ollama_server.reply = LONG_REPLY
    ollama_server.token_delay_s = 0.02
    cmd = cli(tmp_path / "home", ollama_server.url, "ask", QUESTION, "--no-rag")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.read(len("word0 word1"))  # the answer is streaming
    ollama_server.down()
    rest, err = proc.communicate(timeout=CLI_WAIT_S)
    assert first == "word0 word1"
    assert proc.returncode == 1 and "Traceback" not in err
    assert "error: The answer stopped before it was complete" in err
    assert "hint: Check that Ollama is still running" in err
    shown = (first + rest).split()
    assert 2 <= len(shown) < 400  # a partial answer, not re-sent, not the whole one
    assert len(ollama_server.bodies("/api/chat")) == 1


def test_cli_embedding_model_missing_falls_back_to_keywords(
    tmp_path: Path, docs: Path, ollama_server: OllamaTestServer
) -> None:
    ollama_server.embed_backend = "hash"
    ollama_server.fault = "no_embed"
    home = tmp_path / "home"
    index = subprocess.run(
        cli(home, ollama_server.url, "index", str(docs)),
        capture_output=True,
        text=True,
        timeout=CLI_WAIT_S,
    )
    assert index.returncode == 0, index.stderr
    notice = "keyword search only: Model 'nomic-embed-text' is not available in Ollama."
    assert f"note     {notice}" in index.stderr
    assert f"Search: {notice}" in index.stdout
    ask = subprocess.run(
        cli(home, ollama_server.url, "ask", QUESTION),
        capture_output=True,
        text=True,
        timeout=CLI_WAIT_S,
    )
    assert ask.returncode == 0, ask.stderr
    assert "Green tea is steeped at 80 degrees" in ask.stdout and "[1]" in ask.stdout
    assert "(keyword search only:" in ask.stdout
    assert "cited" in ask.stdout and "tea.md" in ask.stdout
    assert "Traceback" not in ask.stderr + index.stderr


# --- the app --------------------------------------------------------------------------------


def app_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("ftrag")]


@pytest.fixture
def home(ftrag_home: Path, ollama_server: OllamaTestServer) -> Home:
    ollama_server.embed_backend = "hash"
    h = Home(ftrag_home)
    save_settings(
        h.settings_file, Settings(ollama_host=ollama_server.url, request_timeout_s=TIMEOUT_S)
    )
    return h


def open_window(qtbot, home: Home) -> MainWindow:  # type: ignore[no-untyped-def]
    win = MainWindow(home)
    qtbot.addWidget(win)
    # Probe often while Ollama is down, so recovery is seen in a fraction of a second.
    win.controller.health_backoff_ms = (100, 200, 400)
    win.show()
    return win


@pytest.fixture
def window(qtbot, home: Home) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    win = open_window(qtbot, home)
    with qtbot.waitSignal(win.controller.ollama_state, timeout=WAIT):  # the first probe
        qtbot.waitUntil(lambda: win.controller.engine is not None, timeout=WAIT)
    yield win
    win.close()
    assert app_threads() == []


def ask_and_wait(qtbot, win: MainWindow, question: str = QUESTION) -> None:  # type: ignore[no-untyped-def]
    win.chat.question_submitted.emit(question)
    assert win._job is not None
    qtbot.waitUntil(lambda: win._job is None, timeout=WAIT)


def error_widgets(win: MainWindow) -> list[ErrorWidget]:
    return win.chat.findChildren(ErrorWidget)


# fault -> (what the chat's error says, as a pattern; the banner's mode after the failure).
# The model is named as the picker lists it ("llama3.2:latest") once Ollama's list has loaded,
# and as configured ("llama3.2") before that.
GUI_FAULTS: dict[str, tuple[str, str]] = {
    "slow": (re.escape(f"did not answer within {TIMEOUT_S:g} s."), "unreachable"),
    "404": (r"Model 'llama3\.2(:latest)?' is not available in Ollama\.", "missing"),
    "500": (re.escape(f"Ollama reported an error: {DEFAULT_ERROR_TEXT}"), ""),
    "context": (re.escape("The prompt does not fit the model's context window"), ""),
}


@pytest.mark.parametrize("fault", list(GUI_FAULTS))
def test_app_fault_shows_its_cause(
    qtbot,  # type: ignore[no-untyped-def]
    window: MainWindow,
    fault: str,
    ollama_server: OllamaTestServer,
) -> None:
    message, banner = GUI_FAULTS[fault]
    ollama_server.fault = fault
    with qtbot.waitSignal(window.controller.ollama_state, timeout=WAIT) as probed:
        ask_and_wait(qtbot, window)  # a failed answer makes the app probe Ollama at once
    assert re.search(message, window.chat.transcript_text())
    (error,) = error_widgets(window)
    assert re.search(message, error.label.text()) and "\n" in error.label.text()  # and a hint
    assert probed.args[0] is (banner != "unreachable")
    if banner == "missing":  # the model list was reloaded: the chosen model is not in it
        qtbot.waitUntil(lambda: window.banner.mode == "missing", timeout=WAIT)
        assert "llama3.2" in window.banner.text() and window.banner.isVisible()
    elif banner == "unreachable":
        assert window.banner.mode == "unreachable" and window.banner.isVisible()
        assert re.search(message, window.banner.text())
    else:
        assert window.banner.mode == "" and not window.banner.isVisible()


def test_app_started_with_ollama_down_then_it_comes_back(
    qtbot,  # type: ignore[no-untyped-def]
    home: Home,
    ollama_server: OllamaTestServer,
) -> None:
    ollama_server.fault = "down"
    win = open_window(qtbot, home)
    qtbot.waitUntil(lambda: win.banner.mode == "unreachable", timeout=WAIT)
    assert f"Cannot reach Ollama at {ollama_server.url}." in win.banner.text()
    assert "ollama serve" in win.banner.text() and win.banner.isVisible()
    controller = win.controller
    qtbot.waitUntil(lambda: controller._failed_probes >= 3, timeout=WAIT)
    assert controller._health.interval() == 400  # backed off to the last step, still probing
    assert win.banner.mode == "unreachable"
    ask_and_wait(qtbot, win)
    assert f"Cannot reach Ollama at {ollama_server.url}." in win.chat.transcript_text()
    assert "Start Ollama" in win.chat.transcript_text()

    # Ollama starts: the app notices by itself (no click), the model list fills, answers work.
    with qtbot.waitSignal(win.controller.models_loaded, timeout=WAIT) as loaded:
        ollama_server.up()
    assert "llama3.2:latest" in {m.name for m in loaded.args[0]}
    qtbot.waitUntil(lambda: win.banner.mode == "", timeout=WAIT)
    assert not win.banner.isVisible()
    ollama_server.reply = "Ollama is back."
    ask_and_wait(qtbot, win)
    assert "Ollama is back." in win.chat.transcript_text()
    win.close()
    assert app_threads() == []


def test_app_ollama_down_mid_answer_then_recovers_by_itself(
    qtbot,  # type: ignore[no-untyped-def]
    window: MainWindow,
    ollama_server: OllamaTestServer,
) -> None:
    ollama_server.reply = LONG_REPLY
    ollama_server.token_delay_s = 0.02
    window.chat.question_submitted.emit(QUESTION)
    qtbot.waitUntil(lambda: "word3" in window.chat._stream_text, timeout=WAIT)
    ollama_server.down()
    qtbot.waitUntil(lambda: window._job is None, timeout=WAIT)
    assert "The answer stopped before it was complete" in window.chat.transcript_text()
    (error,) = error_widgets(window)
    partial = "\n".join(w.text() for w in error.findChildren(type(error.label)))
    assert "Text received before the error:" in partial  # the partial answer is kept, marked
    assert len(ollama_server.bodies("/api/chat")) == 1  # and was not re-sent
    qtbot.waitUntil(lambda: window.banner.mode == "unreachable", timeout=WAIT)

    ollama_server.reply = "Back: green tea wants 80 degrees [1]."
    ollama_server.token_delay_s = 0.0
    with qtbot.waitSignal(window.controller.models_loaded, timeout=WAIT):
        ollama_server.up()  # no click on "Try again": the health check finds it
    qtbot.waitUntil(lambda: window.banner.mode == "", timeout=WAIT)
    assert "connected" in window._ollama.text()
    ask_and_wait(qtbot, window)
    assert "Back: green tea wants 80 degrees" in window.chat.transcript_text()


def test_app_embedding_model_missing_indexes_keywords_and_answers(
    qtbot,  # type: ignore[no-untyped-def]
    home: Home,
    docs: Path,
    ollama_server: OllamaTestServer,
) -> None:
    ollama_server.fault = "no_embed"
    win = open_window(qtbot, home)
    qtbot.waitUntil(lambda: win.controller.engine is not None, timeout=WAIT)
    win.controller.add_folder(str(docs))
    engine = win.controller.engine
    assert engine is not None

    def indexed() -> bool:
        done = {Path(d.path).name for d in engine.store.documents() if d.status.value == "indexed"}
        return done >= {"tea.md", "coffee.txt"}

    qtbot.waitUntil(indexed, timeout=WAIT)
    library = win.library
    qtbot.waitUntil(lambda: library._banner.isVisibleTo(library), timeout=WAIT)
    text = library._banner_label.text()
    assert "Keyword search only" in text and "nomic-embed-text" in text
    assert "not available in Ollama" in text
    ask_and_wait(qtbot, win)
    assert "Green tea is steeped at 80 degrees" in win.chat.answer_text(1)
    assert not error_widgets(win)
    assert win.banner.mode == ""  # Ollama itself is fine
    win.close()
    assert app_threads() == []
