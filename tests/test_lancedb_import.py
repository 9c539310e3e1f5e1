"""How lancedb is imported: its REST client deferred, and `@override` as on Python 3.12.

Run in a fresh interpreter each (an import happens once per process).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHECK = r"""
import sys
from ftrag_desktop.core.store_lance import import_lancedb
lancedb = import_lancedb()
import lancedb.db, lancedb.namespace, typing_extensions
assert lancedb.db.override is typing_extensions.override, lancedb.db.override
assert lancedb.namespace.override is typing_extensions.override
# The marker still satisfies lancedb's EnforceOverrides checks: its classes were built, and
# a table round-trips.
import tempfile, pyarrow as pa
db = lancedb.connect(tempfile.mkdtemp())
table = db.create_table("t", pa.table({"a": [1, 2, 3]}))
assert table.search().where("a >= 2").to_arrow().num_rows == 2
# The generated REST API classes were never built (only the models lancedb itself uses).
client = sys.modules["lance_namespace_urllib3_client"]
assert "api" not in vars(client), sorted(vars(client))
print("ok")
"""


def test_lancedb_imports_with_the_plain_override_marker_and_works() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
