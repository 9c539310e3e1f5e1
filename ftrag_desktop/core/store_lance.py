"""LanceDB access for the store modules: the only place that imports lancedb.

It owns one connection to an index directory, the cache of open table handles, the few
primitives every table is read and written with (read, delete, update, merge_insert, add,
full-text index, compaction), the retry of commit conflicts, and the count and time of commits
since the last compaction (which schedule the next one).  Table handles are `Any`: they never
leave the store modules.

Filters (``where=``) are LanceDB SQL; build values with `sql_quote` and `in_filter`.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

__all__ = ["IN_BATCH", "LanceTables", "batches", "in_filter", "retry", "sql_quote"]

T = TypeVar("T")

RETRY_ATTEMPTS = 6
IN_BATCH = 256  # values per `x IN (...)` filter
FTS_COLUMN = "text"


def _defer_package(name: str) -> None:
    """Put package `name` in `sys.modules` without running its `__init__` until first used.

    For `lance_namespace_urllib3_client`: its `__init__` only re-exports names from its
    submodules, among them every generated REST API class, and building those (pydantic
    `validate_call` on each method) is about two thirds of `import lancedb` (1.5-2.5 s here),
    although LanceDB on a local folder uses only the package's models.  Its submodules import
    as usual; the first access to a name of the package itself runs the real `__init__`.
    """
    import importlib.util
    import sys

    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def load_for_real(attr: str) -> object:
        if attr.startswith("__") and attr.endswith("__") and attr != "__all__":
            raise AttributeError(attr)  # probes such as __wrapped__: not names of the package
        del module.__getattr__
        loader.exec_module(module)
        return getattr(module, attr)

    module.__getattr__ = load_for_real  # type: ignore[method-assign]
    sys.modules[name] = module


def _override_marker_as_on_python_312() -> None:
    """Make the `overrides` package's `@override` the plain marker lancedb uses on Python 3.12+.

    On 3.11 lancedb decorates its ~100 overriding methods with `overrides.override`, which
    disassembles the calling frame's bytecode for each one to find and check the base class:
    about 15% of `import lancedb`'s CPU time here.  From Python 3.12 on, lancedb uses
    `typing.override` instead, which only sets `__override__` on the method (what the
    `EnforceOverrides` metaclass checks).  `typing_extensions.override` is that same marker.
    """
    import sys

    if sys.version_info >= (3, 12) or "lancedb" in sys.modules:
        return
    try:
        import overrides
        import typing_extensions
    except ImportError:  # a lancedb release that no longer uses them
        return
    overrides.override = typing_extensions.override  # type: ignore[assignment]


def import_lancedb() -> Any:
    """Import lancedb (seconds: done where first needed, never at module import time)."""
    _defer_package("lance_namespace_urllib3_client")
    _override_marker_as_on_python_312()
    import lancedb

    return lancedb


def _fts() -> Any:
    """LanceDB's full-text index config (imported when first needed, like lancedb itself)."""
    import_lancedb()
    from lancedb.index import FTS

    return FTS()


def sql_quote(value: str) -> str:
    """A SQL string literal for LanceDB filters: single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def in_filter(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(sql_quote(v) for v in values)})"


def batches(values: Sequence[str], size: int = IN_BATCH) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _is_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "conflict" in text or "retryable" in text or "please retry" in text


def retry(fn: Callable[[], T]) -> T:
    """Run a LanceDB write, retrying commit conflicts from concurrent writers with backoff."""
    delay = 0.05
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return fn()
        except Exception as exc:  # lancedb maps Rust errors to RuntimeError/OSError/ValueError
            if attempt == RETRY_ATTEMPTS - 1 or not _is_conflict(exc):
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class LanceTables:
    """One LanceDB database: its tables by name, and every write counted in `commits`."""

    def __init__(self, index: Path | str, storage_options: dict[str, str] | None = None) -> None:
        """`index`: a folder, or an object-store URI (see `index_location`) opened with
        `storage_options`."""
        lancedb = import_lancedb()  # here, not at the top: the window does not need it
        self._db = lancedb.connect(
            index,
            read_consistency_interval=timedelta(0),
            storage_options=storage_options or None,
        )
        self._handles: dict[str, Any] = {}
        self.commits = 0  # since the last compaction
        # When the newest commit whose old versions may still be on disk was made (monotonic
        # seconds); None once a compaction has cleaned every superseded version up.
        self.dirty_at: float | None = None

    def _committed(self) -> None:
        self.commits += 1
        self.dirty_at = time.monotonic()

    # ---- tables ------------------------------------------------------------------------

    def names(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            resp = self._db.list_tables(page_token=token)
            names.extend(resp.tables)
            token = resp.page_token
            if not token:
                return names

    def open(self, name: str) -> Any:
        tbl = self._handles.get(name)
        if tbl is None:
            tbl = self._db.open_table(name)
            self._handles[name] = tbl
        return tbl

    def try_open(self, name: str) -> Any | None:
        try:
            return self.open(name)
        except (FileNotFoundError, ValueError):
            return None

    def forget(self, name: str) -> None:
        """Drop the cached handle of `name` (the table may have been dropped meanwhile)."""
        self._handles.pop(name, None)

    def forget_all(self) -> None:
        self._handles.clear()

    def drop(self, name: str) -> None:
        self.forget(name)
        with contextlib.suppress(FileNotFoundError, ValueError):  # already gone
            self._db.drop_table(name)

    def create_if_missing(self, name: str, schema: pa.Schema) -> None:
        self._db.create_table(name, schema=schema, exist_ok=True)

    def create_with_fts(self, name: str, schema: pa.Schema) -> Any:
        """A new, empty table with a full-text index on its text; replaces any leftover."""
        if name in self.names():
            self.drop(name)  # a leftover of an interrupted start or switch
        tbl = self._db.create_table(name, schema=schema)
        tbl.create_index(FTS_COLUMN, config=_fts())
        self._handles[name] = tbl
        return tbl

    # ---- reads -------------------------------------------------------------------------

    @staticmethod
    def read(
        tbl: Any, columns: list[str], where: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        q = tbl.search().select(columns)
        if where:
            q = q.where(where)
        rows: list[dict[str, Any]] = q.limit(limit).to_list()
        return rows

    # ---- writes (each one commit) ------------------------------------------------------

    def add(self, tbl: Any, data: pa.Table) -> None:
        # Null vectors are legitimate (not embedded yet); lancedb's default rejects them.
        retry(lambda: tbl.add(data, on_bad_vectors="null"))
        self._committed()

    def delete(self, tbl: Any, where: str) -> None:
        retry(lambda: tbl.delete(where))
        self._committed()

    def update(self, tbl: Any, where: str, values: dict[str, Any]) -> None:
        retry(lambda: tbl.update(where=where, values=values))
        self._committed()

    def merge(
        self,
        tbl: Any,
        on: str,
        data: pa.Table,
        *,
        insert: bool = True,
        delete_unmatched: str | None = None,
    ) -> None:
        """One merge_insert commit: update matched rows, optionally insert new ones and delete
        the target rows matching `delete_unmatched` that the source does not have."""

        def run() -> None:
            builder = tbl.merge_insert(on).when_matched_update_all()
            if insert:
                builder = builder.when_not_matched_insert_all()
            if delete_unmatched is not None:
                builder = builder.when_not_matched_by_source_delete(delete_unmatched)
            # Null vectors are legitimate here (not embedded yet); lancedb's default rejects them.
            builder.execute(data, on_bad_vectors="null")

        retry(run)
        self._committed()

    @staticmethod
    def unindexed_text_rows(tbl: Any) -> int:
        """Rows the full-text index does not hold yet (searched by a scan until an optimize
        folds them in); 0 for a table without the index."""
        for idx in tbl.list_indices():
            if idx.index_type == "FTS" and list(idx.columns) == [FTS_COLUMN]:
                stats = tbl.index_stats(idx.name)
                return int(stats.num_unindexed_rows) if stats is not None else 0
        return 0

    def ensure_fts(self, tbl: Any) -> None:
        """Create the full-text index on the text column unless the table has it."""
        for idx in tbl.list_indices():
            if idx.index_type == "FTS" and list(idx.columns) == [FTS_COLUMN]:
                return
        retry(lambda: tbl.create_index(FTS_COLUMN, config=_fts(), replace=True))
        self._committed()

    @staticmethod
    def optimize(tbl: Any, keep: timedelta) -> int:
        """Compact, fold new rows into the indexes, delete versions older than `keep`.
        Returns how many versions the compaction itself committed."""
        before = int(tbl.version)
        with warnings.catch_warnings():
            # lancedb warns about keep=0; the caller asked for it knowingly (see Store.optimize).
            warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)")
            retry(lambda: tbl.optimize(cleanup_older_than=keep))
        return int(tbl.version) - before
