"""A conversation as a Markdown document, with each answer's `[n]` citations as footnotes.

Footnote labels run across the whole document (`[^1]`, `[^2]`, ...), one per cited source of
each answer, so two answers citing their own `[1]` never collide.  Each definition names the
file, its folder, the place in it (page, heading or lines) and a short quote of the passage.
Citations inside code spans and code blocks are left as they are.  Also home to the small
Markdown helpers the chat view shares (`replace_citations`, `source_location`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from ftrag_desktop.core.answer import parse_citations
from ftrag_desktop.core.conversations import Conversation, Message

QUOTE_CHARS = 220
# A whole `[1]`, `[1, 2]`, `[2-4]` group (the same forms `answer.parse_citations` reads).
CITATION = re.compile(r"\[(\d+(?:\s*(?:[,;]|-|–)\s*\d+)*)\](?!\()")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:.|\n)*?(?<!`)\1(?!`)")


def _outside_code(text: str, fn: Callable[[str], str]) -> str:
    """Apply `fn` to the parts of Markdown `text` that are neither code blocks nor code spans."""
    out: list[str] = []
    prose: list[str] = []
    fence: str | None = None

    def flush() -> None:
        if prose:
            chunk = "".join(prose)
            pos = 0
            for span in _CODE_SPAN.finditer(chunk):
                out.append(fn(chunk[pos : span.start()]))
                out.append(span.group(0))
                pos = span.end()
            out.append(fn(chunk[pos:]))
            prose.clear()

    for line in text.splitlines(keepends=True):
        match = FENCE.match(line)
        if fence is None:
            if match:
                flush()
                fence = match.group(1)
                out.append(line)
            elif line.startswith(("    ", "\t")) and (not prose or not prose[-1].strip()):
                flush()  # an indented code block (after a blank line)
                out.append(line)
            else:
                prose.append(line)
        else:
            out.append(line)
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
    flush()
    return "".join(out)


def replace_citations(
    text: str, n_sources: int, render: Callable[[list[int], str], str | None]
) -> str:
    """Rewrite each citation group in `text`, outside code, with `render(numbers, original)`.

    `numbers` are the group's valid source numbers (1..n_sources); groups with none, or for
    which `render` returns None, are kept as written.
    """

    def in_prose(chunk: str) -> str:
        def sub(match: re.Match[str]) -> str:
            numbers = parse_citations(match.group(0), n_sources)
            if not numbers:
                return match.group(0)
            new = render(numbers, match.group(0))
            return match.group(0) if new is None else new

        return CITATION.sub(sub, chunk)

    return _outside_code(text, in_prose)


def source_location(src: Mapping[str, Any]) -> str:
    """Where a stored source's passage is: "p. 3", "Intro > Setup" or "lines 4-9" (or "")."""
    if src.get("page") is not None:
        return f"p. {src['page']}"
    if src.get("heading_path"):
        return " > ".join(str(h) for h in src["heading_path"])
    if src.get("line_start") is not None:
        return f"lines {src['line_start']}-{src.get('line_end') or src['line_start']}"
    return ""


def _file_parts(path: str) -> tuple[str, str]:
    pure = PurePath(path.replace("\\", "/"))
    return pure.name or path, str(pure.parent) if pure.parent != PurePath(".") else ""


def _quote(text: str, limit: int = QUOTE_CHARS) -> str:
    flat = " ".join(text.split())
    if len(flat) > limit:
        cut = flat[:limit].rsplit(" ", 1)[0]
        flat = (cut or flat[:limit]).rstrip(",.;:") + "…"
    return flat


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<|])", r"\\\1", text)


def _footnote(label: str, src: Mapping[str, Any]) -> str:
    name, folder = _file_parts(str(src.get("path", "")))
    head = f"**{_md_escape(name)}**"
    where = source_location(src)
    if where:
        head += f", {_md_escape(where)}"
    if folder:
        head += f" (in `{folder}`)"
    quote = _quote(str(src.get("text", "")))
    body = f"\n    > {_md_escape(quote)}" if quote else ""
    return f"[^{label}]: {head}{body}"


class _Labels:
    """Document-wide footnote numbering."""

    def __init__(self) -> None:
        self.next = 1


def answer_to_markdown(message: Message, labels: _Labels | None = None) -> str:
    """One answer with its citations as footnotes and the footnote definitions below it."""
    labels = labels or _Labels()
    by_number = {int(s.get("number", 0)): s for s in message.sources}
    n_sources = max(by_number, default=0)
    used: dict[int, str] = {}

    def render(numbers: list[int], original: str) -> str | None:
        known = [n for n in numbers if n in by_number]
        if not known:
            return None
        for n in known:
            if n not in used:
                used[n] = str(labels.next)
                labels.next += 1
        return "".join(f"[^{used[n]}]" for n in known)

    body = replace_citations(message.content.strip(), n_sources, render)
    parts = [body or "_(no answer)_"]
    if used:
        parts.append("\n".join(_footnote(used[n], by_number[n]) for n in used))
    uncited = [s for n, s in sorted(by_number.items()) if n not in used]
    if uncited:
        names = []
        for s in uncited:
            name = _file_parts(str(s.get("path", "")))[0]
            where = source_location(s)
            names.append(_md_escape(f"{name} ({where})" if where else name))
        parts.append("_Also retrieved, not cited: " + "; ".join(names) + "._")
    return "\n\n".join(parts)


def _answer_note(message: Message) -> str:
    bits = [f"`{message.model}`" if message.model else "unknown model"]
    meta = message.meta
    if meta.get("rag") is False:
        bits.append("without documents")
    if meta.get("total_s"):
        bits.append(f"{float(meta['total_s']):.1f} s")
    if meta.get("cancelled"):
        bits.append("stopped before the end")
    return "_Answered by " + ", ".join(bits) + "._"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def conversation_to_markdown(conv: Conversation) -> str:
    """The whole conversation: title, every question and answer, citations as footnotes."""
    title = conv.title.strip() or "Conversation"
    questions = sum(1 for m in conv.messages if m.role == "user")
    lines = [
        f"# {_md_escape(title)}",
        "",
        f"_Exported from ftrag-desktop on {_when(time.time())}. Started {_when(conv.created_at)};"
        f" {questions} question{'s' if questions != 1 else ''}._",
    ]
    labels = _Labels()
    number = 0
    for message in conv.messages:
        if message.role == "user":
            number += 1
            question = "\n".join(f"> {line}" for line in message.content.strip().splitlines())
            lines += ["", "---", "", f"## Question {number}", "", question or ">"]
        elif message.role == "assistant":
            lines += ["", "### Answer", "", _answer_note(message), ""]
            lines.append(answer_to_markdown(message, labels))
    return "\n".join(lines).rstrip() + "\n"


__all__ = [
    "answer_to_markdown",
    "conversation_to_markdown",
    "replace_citations",
    "source_location",
]
