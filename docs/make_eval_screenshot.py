"""Make docs/screenshots/evaluate.png: the Evaluate tab's report of a finished run.

    .venv/bin/python docs/make_eval_screenshot.py [OUT.png]

Indexes a small folder (support, warranty and maintenance notes) against the project's
Ollama-protocol test server, builds an evaluation set from it with the core
(`build_evalset`), installs a "fine-tuned" variant of the chat model on the server (its GGUF
metadata names its base, as a real fine-tune's does), evaluates base + RAG, the fine-tuned
model alone and fine-tuned + RAG (`run_evaluation`), then starts the real app under Xvfb with
`--screenshot OUT --show evaluate`.  No real model runs here, so the chat answers are scripted
below: the base model with documents gets one question wrong, the fine-tuned model alone knows
half of the answers, with documents all of them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ftrag_desktop.config import Settings, save_settings  # noqa: E402
from ftrag_desktop.core import evalset_build as eb  # noqa: E402
from ftrag_desktop.core.answer import NO_ANSWER, SYSTEM_PROMPT  # noqa: E402
from ftrag_desktop.core.engine import Engine  # noqa: E402
from ftrag_desktop.core.evalset import EvalSetStore  # noqa: E402
from ftrag_desktop.core.evaluate import EvalConfig, RunFinished, run_evaluation  # noqa: E402
from ftrag_desktop.paths import Home  # noqa: E402
from tests.ollama_server import ModelEntry, OllamaTestServer  # noqa: E402

OUT = REPO / "docs" / "screenshots" / "evaluate.png"
BASE, TUNED = "llama3.2:latest", "llama3.2-support:latest"
# (file, passage, question, reference answer, does the fine-tuned model know it by heart?)
FACTS = [
    ("refunds.md", "Refunds are paid within 14 days of the returned item arriving.",
     "How soon are refunds paid after a returned item arrives?", "within 14 days", True),
    ("support-hours.md", "Support answers tickets from 8:00 to 18:00 on weekdays.",
     "When does support answer tickets?", "8:00 to 18:00 on weekdays", True),
    ("enterprise.md", "Enterprise customers get a dedicated account manager named in the contract.",
     "Who do enterprise customers get, named in the contract?",
     "a dedicated account manager", True),
    ("warranty.md", "The Vellum kettle carries a warranty of 3 years on its heating element.",
     "How long is the warranty on the Vellum kettle's heating element?", "3 years", True),
    ("warranty-claims.md", "Warranty claims need the serial number printed under the base.",
     "Where is the serial number needed for a warranty claim printed?",
     "under the base", False),
    ("maintenance-march.md", "Both angle-of-attack sensors were replaced during the March check.",
     "When were both angle-of-attack sensors replaced?", "during the March check", False),
    ("cabin-log.md", "The forward lavatory door latch was adjusted by the night shift.",
     "Who adjusted the forward lavatory door latch?", "the night shift", False),
    ("pricing.md", "The Pro plan costs 19 euros per seat and month, billed yearly.",
     "How much does the Pro plan cost per seat and month?", "19 euros", False),
]  # fmt: skip
OFF_TOPIC = [
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the chemical symbol for tungsten?",
    "Which river flows through Budapest?",
    "How many players are on the field for one side in a rugby union match?",
]
BASE_WRONG = "How much does the Pro plan cost per seat and month?"  # retrieval picks a wrong one


def _system(messages: list[dict[str, Any]]) -> str:
    return next((str(m["content"]) for m in messages if m["role"] == "system"), "")


def _user(messages: list[dict[str, Any]]) -> str:
    return next(str(m["content"]) for m in reversed(messages) if m["role"] == "user")


def _source_number(passage: str, prompt: str) -> int | None:
    for match in re.finditer(r"^\[(\d+)\][^\n]*\n<<<\n(.*?)\n>>>", prompt, re.S | re.M):
        if passage[:40].lower() in match.group(2).lower():
            return int(match.group(1))
    return None


class Scripted:
    """Stands in for the local models; see the module docstring."""

    def __init__(self, server: OllamaTestServer) -> None:
        self.server = server

    def model(self) -> str:
        body = self.server.requests[-1].body if self.server.requests else None
        return str(body.get("model")) if isinstance(body, dict) else ""

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        system, user = _system(messages), _user(messages)
        if system == eb.QUESTION_SYSTEM:
            for _f, passage, question, answer, _k in FACTS:
                if passage[:40] in user:
                    return json.dumps({"question": question, "answer": answer})
            return "{}"
        if system == eb.CLOSED_BOOK_SYSTEM:
            return "I don't know."
        if system == eb.UNANSWERABLE_SYSTEM:
            return json.dumps({"questions": OFF_TOPIC})
        tuned = self.model() == TUNED
        if system == SYSTEM_PROMPT or "Sources:" in user:
            time.sleep(0.45)  # reading the sources
            question = user.rsplit("Question:", 1)[-1]
            for _f, passage, q, answer, _k in FACTS:
                if q in question:
                    n = _source_number(passage, user)
                    if n is None or (q == BASE_WRONG and not tuned):
                        return "The sources do not give the price per seat [1]."
                    return f"It is {answer} [{n}]."
            return NO_ANSWER
        time.sleep(0.06)
        for _f, _p, q, answer, known in FACTS:
            if q in user:
                return f"It is {answer}." if tuned and known else "I don't know that."
        return "I don't know that."


def prepare(home: Home, docs: Path, server: OllamaTestServer) -> str:
    for name, passage, *_ in FACTS:
        title = name.split(".")[0].replace("-", " ").capitalize()
        (docs / name).write_text(f"# {title}\n\n{passage}\n", encoding="utf-8")
    save_settings(
        home.settings_file,
        Settings(ollama_host=server.url, watched_folders=[str(docs)], top_k=4),
    )
    engine = Engine(home)
    try:
        list(engine.sync(docs))
        options = eb.BuildOptions(questions=len(FACTS), unanswerable=3, min_chunk_chars=20)
        built = [e for e in eb.build_evalset(engine, "support-docs", options)]
        done = built[-1]
        assert isinstance(done, eb.BuildFinished), done
        evalset = EvalSetStore.for_home(home).save(done.evalset, note="built")
        print(f"set: {len(evalset.answerable)} answerable, {len(evalset.unanswerable)} not")
        configs = [
            EvalConfig(BASE, rag=True, top_k=4),
            EvalConfig(TUNED, rag=False),
            EvalConfig(TUNED, rag=True, top_k=4),
        ]
        server.token_delay_s = 0.012
        events = list(run_evaluation(engine, evalset, configs))
        server.token_delay_s = 0.0
        finished = events[-1]
        assert isinstance(finished, RunFinished) and finished.report.complete
        print("recommendation:", finished.report.recommendation.headline)
        return finished.run_id
    finally:
        engine.close()


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ftrag-eval-shot-"))
    server = OllamaTestServer(embed_backend="minilm").start()
    server.reply = Scripted(server)
    server.add_model(
        ModelEntry(
            TUNED,
            "llama",
            "3.2B",
            "Q4_K_M",
            2_019_393_189,
            context_length=131072,
            extra_info={"general.base_model.count": 1, "general.base_model.0.name": "llama3.2"},
        )
    )
    try:
        docs = work / "Documents"
        docs.mkdir()
        home = Home(work / "home")
        prepare(home, docs, server)
        env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
        command = [
            "xvfb-run", "-a", "-s", "-screen 0 1440x900x24", sys.executable, "-m",
            "ftrag_desktop", "--home", str(home.root), "--screenshot", str(out),
            "--show", "evaluate",
        ]  # fmt: skip
        subprocess.run(command, env=env, check=True, timeout=300)
        print(f"wrote {out}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
