"""The sources panel and the built-in document viewer (pytest-qt, offscreen)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shiboken6
from pypdf import PdfReader
from PySide6.QtCore import QEventLoop, QPoint, Qt, QThreadPool

from ftrag_desktop.app.sources_panel import SourcesPanel
from ftrag_desktop.app.viewer import DocumentViewer, load_text_source
from ftrag_desktop.core.chunk import chunk_document
from ftrag_desktop.core.highlight import supporting_spans
from ftrag_desktop.core.parse import parse_file
from tests.conftest import PDF_DIR

OUTLINE_PDF = PDF_DIR / "py-pdf-sample-files" / "006-pdflatex-outline" / "pdflatex-outline.pdf"
WAIT_MS = 20_000

SAMPLE_ANSWER = (
    "Capybaras need a pool deep enough to submerge in, because they mate and cool off in "
    "water [1]. Keepers should give them fresh grass and hay every day, with vegetables "
    "only as a supplement [2]. In winter, Japanese zoos let them bathe in hot springs [1]."
)
SAMPLE_SOURCES: list[dict[str, Any]] = [
    {
        "number": 1,
        "cited": True,
        "path": "/home/ana/Documents/Research/Zoo husbandry/capybara-care-guide.pdf",
        "title": "Capybara care guide",
        "page": 12,
        "heading_path": [],
        "line_start": None,
        "line_end": None,
        "char_start": 410,
        "char_end": 905,
        "score": 0.0328,
        "text": (
            "Enclosures must include a pool of at least 1.2 m depth. Capybaras are semi-aquatic:\n"
            "they mate in water, escape predators by diving, and cool off in water during hot\n"
            "weather. Several Japanese zoos run hot-spring baths in winter, and in winter\n"
            "capybaras bathe in hot springs for hours at a time. Shade and a dry resting area\n"
            "are equally important."
        ),
    },
    {
        "number": 2,
        "cited": True,
        "path": "/home/ana/Documents/Notes/feeding.md",
        "title": "Feeding",
        "page": None,
        "heading_path": ["Diet", "Daily ration"],
        "line_start": 14,
        "line_end": 19,
        "char_start": 300,
        "char_end": 580,
        "score": 0.0311,
        "text": (
            "Give fresh grass and good hay every day; they make up most of the diet. "
            "Vegetables such as carrots and squash are a supplement, never the main food. "
            "Capybaras need vitamin C, since like guinea pigs they cannot make it themselves."
        ),
    },
    {
        "number": 3,
        "cited": False,
        "path": "/home/ana/Documents/Travel/japan-trip-2023.txt",
        "title": "japan-trip-2023",
        "page": None,
        "heading_path": [],
        "line_start": 41,
        "line_end": 47,
        "char_start": 2040,
        "char_end": 2300,
        "score": 0.0161,
        "text": (
            "Day 3. In winter the capybaras at Japanese zoos bathe in hot springs; Izu Shaboten\n"
            "Zoo started the custom in 1982. Queue early: the bath session starts at 10:00 and\n"
            "the animals stay in the hot water until noon."
        ),
    },
    {
        "number": 4,
        "cited": False,
        "path": "/home/ana/Documents/Research/rodent-biology-lecture-notes.pdf",
        "title": "Rodent biology",
        "page": 3,
        "heading_path": [],
        "line_start": None,
        "line_end": None,
        "char_start": 0,
        "char_end": 240,
        "score": 0.0154,
        "text": (
            "Hydrochoerus hydrochaeris is the largest living rodent. Adults weigh 35 to 66 kg. "
            "Their incisors grow continuously throughout life."
        ),
    },
]


@pytest.fixture(autouse=True)
def no_leftover_workers() -> Iterator[None]:
    yield
    # File reads run on the global pool: none may outlive the test.
    assert QThreadPool.globalInstance().waitForDone(10_000)


@pytest.fixture
def panel(qtbot: Any) -> SourcesPanel:
    widget = SourcesPanel()
    qtbot.addWidget(widget)
    widget.resize(400, 900)
    widget.show()
    return widget


@pytest.fixture
def viewer(qtbot: Any) -> DocumentViewer:
    widget = DocumentViewer()
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    return widget


# ---- sources panel ---------------------------------------------------------------------------


def test_empty_state_until_an_answer_is_shown(panel: SourcesPanel) -> None:
    assert panel.cards() == []
    assert "No answer selected" in panel._empty_title.text()
    panel.show_sources([], "An answer written without documents.")
    assert panel.cards() == []
    assert "No sources" in panel._empty_title.text()


def test_show_sources_cited_first_with_names_locations_and_summary(panel: SourcesPanel) -> None:
    shuffled = [SAMPLE_SOURCES[3], SAMPLE_SOURCES[1], SAMPLE_SOURCES[2], SAMPLE_SOURCES[0]]
    panel.show_sources(shuffled, SAMPLE_ANSWER)
    cards = panel.cards()
    assert [c.source["number"] for c in cards] == [1, 2, 3, 4]
    assert panel.summary_text() == "2 cited · 2 more retrieved"
    assert [c.kind_badge.text() for c in cards] == ["Cited", "Cited", "Retrieved", "Retrieved"]
    assert [c.name_label.full_text() for c in cards] == [
        "capybara-care-guide.pdf",
        "feeding.md",
        "japan-trip-2023.txt",
        "rodent-biology-lecture-notes.pdf",
    ]
    assert [c.location_label.text() for c in cards] == [
        "p. 12",
        "Diet › Daily ration",
        "lines 41–47",
        "p. 3",
    ]
    assert cards[0].folder_label.full_text() == "/home/ana/Documents/Research/Zoo husbandry"
    assert cards[0].number_badge.text() == "1"


def test_passages_show_the_supporting_spans_highlighted(panel: SourcesPanel) -> None:
    panel.show_sources(SAMPLE_SOURCES, SAMPLE_ANSWER)
    first, second, _, last = panel.cards()
    # Source 1 is cited for the pool and the hot springs: those sentences are marked.
    assert first.spans
    marked = [first.source["text"][a:b] for a, b in first.spans]
    assert any("mate in water" in m for m in marked)
    assert "background-color" in first.passage_label.text()
    assert "Shade and a dry resting area" not in " ".join(marked)
    # Source 2 is marked for the diet sentence only.
    marked2 = " ".join(second.source["text"][a:b] for a, b in second.spans)
    assert "fresh grass and good hay" in marked2
    assert "vitamin C" not in marked2
    # Source 4 (retrieved, about teeth and weight) supports nothing in the answer.
    assert last.spans == []
    assert "background-color" not in last.passage_label.text()
    assert "largest living rodent" in last.passage_plain_text()


def test_uncited_source_is_matched_against_the_whole_answer(panel: SourcesPanel) -> None:
    panel.show_sources(SAMPLE_SOURCES, SAMPLE_ANSWER)
    third = panel.cards()[2]  # [3] is not cited: its passage is compared with the whole answer
    text = third.source["text"]
    assert third.spans == supporting_spans(text, SAMPLE_ANSWER)
    assert third.spans
    assert "Japanese zoos bathe in hot springs" in text[third.spans[0][0] : third.spans[0][1]]


def test_select_source_marks_that_card(panel: SourcesPanel) -> None:
    panel.show_sources(SAMPLE_SOURCES, SAMPLE_ANSWER)
    panel.select_source(3)
    assert panel.selected_number() == 3
    assert [c.is_selected() for c in panel.cards()] == [False, False, True, False]
    panel.select_source(1)
    assert panel.selected_number() == 1
    panel.select_source(99)  # unknown numbers leave the selection alone
    assert panel.selected_number() == 1


def test_clicking_a_card_emits_source_activated(qtbot: Any, panel: SourcesPanel) -> None:
    panel.show_sources(SAMPLE_SOURCES, SAMPLE_ANSWER)
    card = panel.cards()[1]
    with qtbot.waitSignal(panel.source_activated, timeout=2000) as blocker:
        qtbot.mouseClick(card, Qt.MouseButton.LeftButton, pos=QPoint(card.width() // 2, 12))
    assert blocker.args == [SAMPLE_SOURCES[1]]
    assert panel.selected_number() == 2


def test_enter_and_buttons_emit_their_signals(qtbot: Any, panel: SourcesPanel) -> None:
    panel.show_sources(SAMPLE_SOURCES, SAMPLE_ANSWER)
    card = panel.cards()[3]
    with qtbot.waitSignal(panel.source_activated, timeout=2000) as blocker:
        qtbot.keyClick(card, Qt.Key.Key_Return)
    assert blocker.args == [SAMPLE_SOURCES[3]]
    with qtbot.waitSignal(panel.source_activated, timeout=2000) as blocker:
        qtbot.mouseClick(card.open_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [SAMPLE_SOURCES[3]]
    with qtbot.waitSignal(panel.open_externally_requested, timeout=2000) as blocker:
        qtbot.mouseClick(card.external_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [SAMPLE_SOURCES[3]]
    with qtbot.waitSignal(panel.show_in_folder_requested, timeout=2000) as blocker:
        qtbot.mouseClick(card.folder_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [SAMPLE_SOURCES[3]]


def test_arrow_keys_move_the_selection(qtbot: Any, panel: SourcesPanel) -> None:
    panel.show_sources(SAMPLE_SOURCES, SAMPLE_ANSWER)
    panel.select_source(1)
    qtbot.keyClick(panel.cards()[0], Qt.Key.Key_Down)
    assert panel.selected_number() == 2
    qtbot.keyClick(panel.cards()[1], Qt.Key.Key_Up)
    assert panel.selected_number() == 1


def test_long_passage_is_shortened_around_its_highlight(panel: SourcesPanel) -> None:
    filler = "Unrelated introductory words fill this part of the page. " * 20
    source = dict(SAMPLE_SOURCES[0], text=filler + "Capybaras mate and cool off in water.")
    panel.show_sources([source], "Capybaras mate and cool off in water [1].")
    card = panel.cards()[0]
    shown = card.passage_plain_text()
    assert shown.startswith("…")
    assert "Capybaras mate and cool off in water." in shown
    assert card.more_button.isVisibleTo(card)
    card.more_button.click()
    assert card.passage_plain_text().startswith("Unrelated introductory")


def test_clear_returns_to_the_empty_state(panel: SourcesPanel) -> None:
    panel.show_sources(SAMPLE_SOURCES, SAMPLE_ANSWER)
    panel.clear()
    assert panel.cards() == []
    assert panel.summary_text() == ""
    assert "No answer selected" in panel._empty_title.text()


# ---- document viewer -------------------------------------------------------------------------


def _pdf_passage(page: int) -> str:
    text = PdfReader(OUTLINE_PDF).pages[page - 1].extract_text()
    start = text.index("5 Bar")
    return text[start : start + 400]


def test_viewer_opens_a_pdf_at_the_cited_page_with_the_passage_marked(
    qtbot: Any, viewer: DocumentViewer
) -> None:
    source = {"number": 1, "path": str(OUTLINE_PDF), "page": 3, "text": _pdf_passage(3)}
    with qtbot.waitSignal(viewer.opened, timeout=WAIT_MS) as blocker:
        viewer.open_source(source)
    assert blocker.args == [str(OUTLINE_PDF), 3]
    assert viewer.current_page() == 3
    assert viewer.current_path() == str(OUTLINE_PDF)
    assert viewer.passage_marked()
    assert viewer._page_label.text() == "Page 3 of 4"
    viewer._next.click()
    assert viewer.current_page() == 4
    assert not viewer._next.isEnabled()
    viewer._prev.click()
    viewer._prev.click()
    assert viewer.current_page() == 2


def test_viewer_scrolls_to_a_passage_low_on_the_page(qtbot: Any, viewer: DocumentViewer) -> None:
    pdf = PDF_DIR / "pdfplumber-tests" / "federal-register-2020-17221.pdf"
    text = PdfReader(pdf).pages[1].extract_text()
    start = text.index("The second design")
    with qtbot.waitSignal(viewer.opened, timeout=WAIT_MS):
        viewer.open_source({"path": str(pdf), "page": 2, "text": ""})
    page_top = viewer._pdf.verticalScrollBar().value()
    assert viewer.current_page() == 2 and not viewer.passage_marked()
    with qtbot.waitSignal(viewer.opened, timeout=WAIT_MS):
        viewer.open_source({"path": str(pdf), "page": 2, "text": text[start : start + 500]})
    assert viewer.current_page() == 2
    assert viewer.passage_marked()
    # The passage is in the page's lower half: the view scrolled down to it.
    assert viewer._pdf.verticalScrollBar().value() > page_top + viewer._pdf.viewport().height() / 2
    with qtbot.waitSignal(viewer.opened, timeout=WAIT_MS):
        viewer.open_source({"path": str(pdf), "page": 2, "text": ""})
    assert viewer._pdf.verticalScrollBar().value() == page_top


def test_viewer_pdf_page_without_the_passage_still_opens_there(
    qtbot: Any, viewer: DocumentViewer
) -> None:
    source = {"number": 2, "path": str(OUTLINE_PDF), "page": 2, "text": "zebra quokka axolotl"}
    with qtbot.waitSignal(viewer.opened, timeout=WAIT_MS):
        viewer.open_source(source)
    assert viewer.current_page() == 2
    assert not viewer.passage_marked()


def test_viewer_zoom_controls(qtbot: Any, viewer: DocumentViewer) -> None:
    with qtbot.waitSignal(viewer.opened, timeout=WAIT_MS):
        viewer.open_source({"path": str(OUTLINE_PDF), "page": 1, "text": ""})
    before = viewer._effective_pdf_zoom()
    viewer._zoom_in.click()
    assert viewer._pdf.zoomFactor() == pytest.approx(before * 1.25)
    assert viewer._zoom_label.text() == f"{before * 125:.0f}%"
    viewer._fit.click()
    assert viewer._fit.isChecked()


def _markdown_file(tmp_path: Path, newline: str = "\n") -> tuple[Path, str, int, int]:
    body = newline.join(
        [
            "# Care notes 🦫",
            "",
            "Capybaras are social animals.",
            "",
            "## Water",
            "",
            "They need a pool deep enough to swim in.",
            "Cool water helps them in summer.",
            "",
            "## Food",
            "",
            "Grass and hay, every day.",
            "",
        ]
    )
    path = tmp_path / "notes.md"
    path.write_bytes(body.encode("utf-8"))
    passage = f"They need a pool deep enough to swim in.{newline}Cool water helps them in summer."
    start = body.index(passage)
    return path, passage, start, start + len(passage)


def test_viewer_opens_markdown_with_the_passage_selected(
    qtbot: Any, viewer: DocumentViewer, tmp_path: Path
) -> None:
    path, passage, start, end = _markdown_file(tmp_path)
    source = {"number": 1, "path": str(path), "text": passage, "char_start": start, "char_end": end}
    with qtbot.waitSignal(viewer.opened, timeout=WAIT_MS) as blocker:
        viewer.open_source(source)
    assert blocker.args == [str(path), 0]
    assert viewer.current_page() == 0
    assert viewer.selected_text() == passage
    assert viewer.passage_marked()
    assert "Capybaras are social animals." in viewer._text.toPlainText()  # the whole file


def test_viewer_maps_offsets_past_crlf_and_astral_characters(
    qtbot: Any, viewer: DocumentViewer, tmp_path: Path
) -> None:
    path, passage, start, end = _markdown_file(tmp_path, newline="\r\n")
    source = {"number": 1, "path": str(path), "text": passage, "char_start": start, "char_end": end}
    with qtbot.waitSignal(viewer.opened, timeout=WAIT_MS):
        viewer.open_source(source)
    assert viewer.selected_text() == passage.replace("\r\n", "\n")


def test_viewer_finds_the_passage_when_the_file_changed(
    qtbot: Any, viewer: DocumentViewer, tmp_path: Path
) -> None:
    path, passage, start, end = _markdown_file(tmp_path)
    path.write_text("Added at the top since indexing.\n\n" + path.read_text(encoding="utf-8"))
    source = {"number": 1, "path": str(path), "text": passage, "char_start": start, "char_end": end}
    with qtbot.waitSignal(viewer.opened, timeout=WAIT_MS):
        viewer.open_source(source)
    assert viewer.selected_text() == passage


def test_viewer_shows_html_passage_in_its_extracted_text(
    qtbot: Any, viewer: DocumentViewer, tmp_path: Path
) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Zoo</title></head><body><h1>Zoo</h1><p>Opening hours are long.</p>"
        "<h2>Capybaras</h2><p>The capybara onsen opens in <b>November</b>.</p>"
        "<p>Bring a towel.</p></body></html>"
    )
    chunk = next(c for c in chunk_document(parse_file(path)) if "onsen" in c.text)
    source = {
        "number": 1,
        "path": str(path),
        "text": chunk.text,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "heading_path": list(chunk.heading_path),
    }
    with qtbot.waitSignal(viewer.opened, timeout=WAIT_MS):
        viewer.open_source(source)
    assert viewer.selected_text() == chunk.text
    assert "Opening hours are long." in viewer._text.toPlainText()


def test_viewer_reports_a_missing_file(qtbot: Any, viewer: DocumentViewer, tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "report.pdf"
    with qtbot.waitSignal(viewer.failed, timeout=WAIT_MS) as blocker:
        viewer.open_source({"number": 1, "path": str(missing), "page": 2, "text": "x"})
    message = blocker.args[0]
    assert "report.pdf" in message and "no longer there" in message
    assert viewer._message_title.text() == "Could not open report.pdf"
    assert viewer._message_body.text() == message
    assert viewer.current_page() == 0
    assert not viewer._external.isEnabled()

    missing_md = tmp_path / "gone.md"
    with qtbot.waitSignal(viewer.failed, timeout=WAIT_MS) as blocker:
        viewer.open_source({"number": 1, "path": str(missing_md), "text": "x"})
    assert "gone.md" in blocker.args[0]


def test_viewer_reports_a_damaged_pdf(qtbot: Any, viewer: DocumentViewer, tmp_path: Path) -> None:
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"this is not a pdf at all")
    with qtbot.waitSignal(viewer.failed, timeout=WAIT_MS) as blocker:
        viewer.open_source({"number": 1, "path": str(bad), "page": 1, "text": "x"})
    assert "broken.pdf" in blocker.args[0]


def test_viewer_explains_a_password_protected_pdf(qtbot: Any, viewer: DocumentViewer) -> None:
    locked = PDF_DIR / "py-pdf-sample-files" / "005-libreoffice-writer-password"
    pdf = locked / "libreoffice-writer-password.pdf"
    with qtbot.waitSignal(viewer.failed, timeout=WAIT_MS) as blocker:
        viewer.open_source({"number": 1, "path": str(pdf), "page": 1, "text": "x"})
    assert "password-protected" in blocker.args[0]
    assert viewer._external.isEnabled()  # the system viewer can ask for the password


def test_viewer_closed_while_reading_ignores_the_result(tmp_path: Path) -> None:
    path, passage, start, end = _markdown_file(tmp_path)
    source = {"path": str(path), "text": passage, "char_start": start, "char_end": end}
    placement = load_text_source(source)
    viewer = DocumentViewer()
    request = viewer._request
    shiboken6.delete(viewer)  # closed before the worker's result arrived
    # Results for a viewer that is gone are dropped, not applied to deleted widgets.
    viewer._on_text_read(request, placement)
    viewer._on_pdf_read(request, b"%PDF-1.4")
    viewer._on_read_failed(request, "gone")


def test_only_the_latest_open_is_shown(qtbot: Any, viewer: DocumentViewer, tmp_path: Path) -> None:
    path, passage, start, end = _markdown_file(tmp_path)
    failures: list[str] = []
    viewer.failed.connect(failures.append)
    viewer.open_source({"number": 1, "path": str(tmp_path / "missing.md"), "text": "x"})
    with qtbot.waitSignal(viewer.opened, timeout=WAIT_MS):
        viewer.open_source(
            {"number": 2, "path": str(path), "text": passage, "char_start": start, "char_end": end}
        )
    assert QThreadPool.globalInstance().waitForDone(10_000)
    # Deliver the first read's queued result: it must be ignored.  (An event loop's own
    # processEvents: the static QCoreApplication one over-releases None in PySide6 6.12.)
    QEventLoop().processEvents()
    assert failures == []
    assert viewer.current_path() == str(path)


def test_a_narrow_panel_keeps_its_cards_inside_and_hides_the_secondary_buttons(
    panel: SourcesPanel, qtbot: Any
) -> None:
    """At the panel's narrowest the cards stay within the viewport (the passage wraps instead
    of being clipped): "Open with system app" and "Show in folder" give way, and return when
    there is room; they stay in the right-click menu meanwhile."""
    panel.show_sources(SAMPLE_SOURCES, SAMPLE_ANSWER)
    qtbot.waitUntil(lambda: len(panel.cards()) == len(SAMPLE_SOURCES))
    panel.resize(panel.minimumWidth(), 900)
    qtbot.waitUntil(lambda: panel.cards()[0].external_button.isHidden())
    viewport = panel._scroll.viewport().width()
    for card in panel.cards():
        assert card.width() <= viewport
        assert card.external_button.isHidden() and card.folder_button.isHidden()
        assert not card.open_button.isHidden()
    panel.resize(700, 900)
    qtbot.waitUntil(lambda: not panel.cards()[0].external_button.isHidden())
    assert all(not c.folder_button.isHidden() for c in panel.cards())
