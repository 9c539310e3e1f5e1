"""Files dropped on the window: copied into a watched folder, then indexed.

`install_drop_handler(window, controller)` makes the window accept drags of local files.  On a
drop, the user picks the watched folder to copy into (asked only when there are several; with
none, the app offers to add a folder first).  Copies run in the background with
`shutil.copy2`; the originals are never moved or altered, and a name that is taken gets a
" (2)", " (3)"... suffix: nothing is ever overwritten.  The watcher picks the new files up, and
a rescan of the folder is requested as well.

Policy for what is dropped: files of a supported type and whole folders (copied recursively;
the indexer then takes the supported files inside them) are accepted.  Files of a type the
library cannot read, and anything that is not a local file, are refused with a message that
names them.  Files that are already inside the chosen folder are not copied again: that folder
is just rescanned.

`copy_into_folder` is the plain, Qt-free copy used by the handler.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QObject, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.parse import SUPPORTED_EXTENSIONS, is_supported
from ftrag_desktop.errors import UserError

# The copy is written under a hidden name first (the indexer ignores hidden files), then
# given its final name, so the watcher never indexes a half-copied file.
_PARTIAL_PREFIX = ".ftrag-partial-"


def _candidate_names(name: str, is_dir: bool) -> list[str]:
    """`name`, then `stem (2).ext`, `stem (3).ext`, ... (folders: `name (2)`, ...)."""
    path = Path(name)
    stem, suffix = (name, "") if is_dir else (path.stem, path.suffix)
    return [name] + [f"{stem} ({n}){suffix}" for n in range(2, 10_000)]


def _publish(tmp: Path, folder: Path, name: str, is_dir: bool) -> Path:
    """Give the finished copy `tmp` a free name in `folder` without ever replacing anything."""
    for candidate in _candidate_names(name, is_dir):
        dest = folder / candidate
        if os.path.lexists(dest):
            continue
        if is_dir:
            # A rename onto an existing non-empty folder fails; an empty one we checked above.
            try:
                os.rename(tmp, dest)
            except OSError:
                if os.path.lexists(dest):
                    continue
                raise
            return dest
        try:
            os.link(tmp, dest)  # atomic and refuses to replace an existing name
        except FileExistsError:
            continue
        except OSError:
            # Hard links unsupported (FAT, some network shares): the name was free a moment
            # ago; claim it exclusively, then move the copy over our own empty claim.
            try:
                fd = os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.close(fd)
            os.replace(tmp, dest)
            return dest
        os.unlink(tmp)
        return dest
    raise FileExistsError(f"No free name for {name} in {folder}")


def copy_into_folder(paths: list[str], folder: str) -> list[str]:
    """Copy files (and folders, recursively) into `folder`; return the new paths, in order.

    Sources are only read.  Names that are taken get " (2)", " (3)"... suffixes.  Raises
    OSError (e.g. disk full, unreadable source) after removing its own partial copy.
    """
    target = Path(folder)
    created: list[str] = []
    for raw in paths:
        src = Path(raw)
        is_dir = src.is_dir()
        tmp = target / f"{_PARTIAL_PREFIX}{uuid.uuid4().hex}-{src.name}"
        try:
            if is_dir:
                shutil.copytree(src, tmp, copy_function=shutil.copy2)
            else:
                shutil.copy2(src, tmp)
            created.append(str(_publish(tmp, target, src.name, is_dir)))
        finally:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            elif os.path.lexists(tmp):
                os.unlink(tmp)
    return created


def local_paths(mime: QMimeData) -> list[str]:
    """The local files and folders named by a drag's data (nothing for web links, text...)."""
    if not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]


def _is_inside(path: str, folder: str) -> bool:
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except OSError:
        return False


def split_dropped(paths: list[str]) -> tuple[list[str], list[str]]:
    """(accepted, refused): folders and readable document types in, everything else out."""
    accepted: list[str] = []
    refused: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir() or (path.is_file() and is_supported(path)):
            accepted.append(p)
        else:
            refused.append(p)
    return accepted, refused


def _ask_folder(parent: QWidget, folders: list[str]) -> str | None:
    """The default chooser: pick one of several folders, or offer to add one when none."""
    if not folders:
        answer = QMessageBox.question(
            parent,
            "Add a folder first",
            "Dropped files are copied into a watched folder, and there is none yet.\n\n"
            "Choose a folder to watch now? The dropped files will be copied into it.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Yes,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return None
        folder = QFileDialog.getExistingDirectory(parent, "Choose a folder to watch")
        return folder or None
    if len(folders) == 1:
        return folders[0]
    choice, ok = QInputDialog.getItem(
        parent,
        "Copy into which folder?",
        "The dropped files will be copied into this watched folder and indexed:",
        folders,
        0,
        False,
    )
    return choice if ok and choice else None


class DropHandler(QObject):
    """An event filter on the window: accepts drags of local files, copies dropped ones."""

    files_copied = Signal(str, list)  # folder, the new paths
    copy_failed = Signal(str)  # a message for people
    drop_refused = Signal(str)  # a message for people

    def __init__(
        self,
        window: QWidget,
        controller: AppController,
        choose_folder: Callable[[list[str]], str | None] | None = None,
    ) -> None:
        super().__init__(window)
        self._window = window
        self._controller = controller
        self._choose_folder = choose_folder or (lambda folders: _ask_folder(window, folders))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            assert isinstance(event, (QDragEnterEvent, QDragMoveEvent))
            if local_paths(event.mimeData()):
                event.acceptProposedAction()
                return True
            return False
        if kind == QEvent.Type.Drop:
            assert isinstance(event, QDropEvent)
            paths = local_paths(event.mimeData())
            if not paths:
                return False
            event.acceptProposedAction()
            self.handle_drop(paths)
            return True
        return super().eventFilter(watched, event)

    def handle_drop(self, paths: list[str]) -> None:
        """Ask where (if needed), then copy in the background and have the folder rescanned."""
        accepted, refused = split_dropped(paths)
        if refused:
            self._refuse(refused)
        if not accepted:
            return
        folders = self._controller.watched_folders()
        folder = self._choose_folder(folders)
        if not folder:
            return
        if folder not in folders:  # the user chose to add a folder first
            folder = str(Path(folder).expanduser().resolve())
            self._controller.add_folder(folder)
        to_copy = [p for p in accepted if not _is_inside(p, folder)]
        if not to_copy:  # already there: just make sure they are indexed
            self._controller.rescan(folder)
            self.files_copied.emit(folder, [])
            return

        def done(result: object) -> None:
            assert isinstance(result, list)
            self._controller.rescan(folder)
            self.files_copied.emit(folder, result)

        def failed(message: str) -> None:
            text = f"Could not copy the dropped files into {folder}.\n{message}"
            self.copy_failed.emit(text)
            QMessageBox.warning(self._window, "Copy failed", text)

        def op() -> list[str]:
            try:
                return copy_into_folder(to_copy, folder)
            except OSError as exc:
                raise UserError(
                    f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else ""),
                    "Check that the folder is writable and the disk has free space.",
                ) from exc

        run_in_background(op, on_done=done, on_error=failed)

    def _refuse(self, refused: list[str]) -> None:
        names = ", ".join(Path(p).name or p for p in refused[:5])
        if len(refused) > 5:
            names += f" and {len(refused) - 5} more"
        kinds = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        text = (
            f"Not added: {names}. The library reads these file types: {kinds} "
            "(and folders containing them)."
        )
        self.drop_refused.emit(text)
        QMessageBox.information(self._window, "Some files were not added", text)


def install_drop_handler(
    window: QWidget,
    controller: AppController,
    *,
    choose_folder: Callable[[list[str]], str | None] | None = None,
) -> DropHandler:
    """Make `window` accept dropped files; returns the handler (a QObject event filter).

    `choose_folder(watched_folders)` returns the folder to copy into, or None to cancel.  It
    is called with an empty list when nothing is watched yet: a returned folder is then added
    to the library first.  The default asks the user with small dialogs.
    """
    handler = DropHandler(window, controller, choose_folder)
    window.setAcceptDrops(True)
    window.installEventFilter(handler)
    return handler
