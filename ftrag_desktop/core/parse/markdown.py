"""Markdown: one block per section, split at ATX and setext headings outside fenced code.

Each block is the body under a heading (the heading line itself lives in `heading_path`), with
`start` the offset into the whole decoded file and `line_start` its 1-based line.  YAML front
matter is skipped; its `title:` wins, then the first level-1 heading, then the file stem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ftrag_desktop.core.parse.text import decode_text, require_text
from ftrag_desktop.core.types import Block, ParsedDocument

EXTENSIONS = frozenset({".md", ".markdown", ".mdx"})

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$")
_TITLE_KEY = re.compile(r"^title[ \t]*:[ \t]*(.*?)[ \t]*$")
_LIST_OR_QUOTE = re.compile(r"^ {0,3}(?:[-*+>]|\d+[.)])(?:[ \t]|$)")


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str
    line: int  # index of the first line of the heading
    body_line: int  # index of the first line after the heading


def _front_matter(lines: list[str]) -> tuple[int, str]:
    """(number of lines the front matter spans, its title or "")."""
    if not lines or lines[0].rstrip("\r\n").rstrip() != "---":
        return 0, ""
    for i in range(1, len(lines)):
        if _FRONT_END.match(lines[i].rstrip("\r\n")):
            title = ""
            for raw in lines[1:i]:
                match = _TITLE_KEY.match(raw.rstrip("\r\n"))
                if match:
                    title = match.group(1).strip().strip("\"'").strip()
                    break
            return i + 1, title
    return 0, ""


def _clean_heading(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _find_headings(lines: list[str], first: int) -> list[_Heading]:
    headings: list[_Heading] = []
    fence: str = ""
    prev_blank = True
    for i in range(first, len(lines)):
        line = lines[i].rstrip("\r\n")
        fence_match = _FENCE.match(line)
        if fence:
            closing = fence_match.group(1) if fence_match else ""
            # A closing fence: the same character, at least as long, nothing after it.
            is_closing = closing[:1] == fence[0] and len(closing) >= len(fence)
            if is_closing and not line.strip().strip(fence[0]):
                fence = ""
            prev_blank = False
            continue
        if fence_match:
            fence = fence_match.group(1)
            prev_blank = False
            continue
        atx = _ATX.match(line)
        if atx:
            level = len(atx.group(1))
            headings.append(_Heading(level, _clean_heading(atx.group(2) or ""), i, i + 1))
            prev_blank = True  # a heading ends any paragraph
            continue
        setext = _SETEXT.match(line)
        if setext and i > first and not prev_blank:
            above = lines[i - 1].rstrip("\r\n")
            # Only a one-line paragraph becomes a heading; "text\n---" under a longer
            # paragraph, a list item or a quote is far more often a rule than a title.
            two_up_blank = i - 2 < first or not lines[i - 2].strip()
            after_heading = bool(headings) and headings[-1].body_line == i - 1
            if (
                (two_up_blank or after_heading)
                and not _LIST_OR_QUOTE.match(above)
                and not above.startswith(("    ", "\t"))
            ):
                level = 1 if setext.group(1)[0] == "=" else 2
                headings.append(_Heading(level, _clean_heading(above), i - 1, i + 1))
                prev_blank = True
                continue
        prev_blank = not line.strip()
    return headings


def parse(data: bytes, *, fallback_title: str) -> ParsedDocument:
    text = decode_text(data)
    require_text(text)
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]  # the last piece has no newline of its own
    line_offsets = [0]
    for line in lines:
        line_offsets.append(line_offsets[-1] + len(line))

    front_lines, front_title = _front_matter(lines)
    headings = _find_headings(lines, front_lines)

    # Sections: (first body line, end line exclusive, heading path).
    sections: list[tuple[int, int, tuple[str, ...]]] = []
    stack: list[tuple[int, str]] = []
    first_heading_line = headings[0].line if headings else len(lines)
    sections.append((front_lines, first_heading_line, ()))
    for n, heading in enumerate(headings):
        while stack and stack[-1][0] >= heading.level:
            stack.pop()
        if heading.text:
            stack.append((heading.level, heading.text))
        end = headings[n + 1].line if n + 1 < len(headings) else len(lines)
        sections.append((heading.body_line, end, tuple(t for _, t in stack)))

    blocks: list[Block] = []
    for first, end, path in sections:
        if first >= end:
            continue
        start = line_offsets[first]
        body = text[start : line_offsets[end]]
        if body.strip():
            blocks.append(Block(text=body, start=start, heading_path=path, line_start=first + 1))
    if not blocks:
        # Headings only: index the headings themselves so the file is still findable.
        blocks.append(Block(text=text, start=0, line_start=1))

    h1 = next((h.text for h in headings if h.level == 1 and h.text), "")
    title = front_title or h1 or fallback_title
    return ParsedDocument(title=title, blocks=tuple(blocks))
