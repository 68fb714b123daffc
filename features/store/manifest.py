"""The store's manifest, ``STORE/manifest.sqlite`` (stdlib :mod:`sqlite3`, WAL): what was ingested, when, and which
Parquet parts are live (docs/store.md, "Manifest"). An ingest writes it in ONE transaction, after its parts are
staged; readers read only the parts it lists."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from features.errors import RecoupError
from features.store.layout import MANIFEST

#: the schema this code writes; a manifest with a newer one is refused (an older code must not misread it)
SCHEMA_VERSION = 1

#: files every unit of which is in the store (ingested by that ingest or before): a later ingest skips them unread.
#: Added after the first stores were made: created on any writable open (``IF NOT EXISTS``), absent = none.
COMPLETE_FILES_DDL = """CREATE TABLE IF NOT EXISTS complete_files (
    sha256 TEXT PRIMARY KEY, kinds TEXT NOT NULL, ingest INTEGER NOT NULL)"""

#: audit reviews stored (``features.store.reviews``): key = hash of (claim_id, reviewed_at, outcome), content = hash of
#: the row's contract columns. Added after the first stores were made: created on any writable open, absent = none.
REVIEW_KEYS_DDL = "CREATE TABLE IF NOT EXISTS review_keys (key INTEGER PRIMARY KEY, content INTEGER NOT NULL)"

DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS ingests (
        id INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT NOT NULL, summary TEXT NOT NULL,
        options TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS files (
        sha256 TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, ingest INTEGER NOT NULL,
        PRIMARY KEY (sha256, ingest))""",
    """CREATE TABLE IF NOT EXISTS units (
        key TEXT PRIMARY KEY, kind TEXT NOT NULL, file_sha256 TEXT NOT NULL, segment INTEGER,
        isa13 TEXT, gs06 TEXT, st02 TEXT, trn02 TEXT, sender TEXT, payer TEXT,
        counts TEXT NOT NULL, ingest INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ingested', 'quarantined')))""",
    """CREATE TABLE IF NOT EXISTS parts (
        file TEXT PRIMARY KEY, tbl TEXT NOT NULL, month TEXT, rows INTEGER NOT NULL, ingest INTEGER NOT NULL,
        ref_min TEXT, ref_max TEXT)""",
    "CREATE INDEX IF NOT EXISTS parts_by_table ON parts (tbl, month)",
    """CREATE TABLE IF NOT EXISTS claim_index (
        claim_id TEXT PRIMARY KEY, version INTEGER NOT NULL, frequency TEXT NOT NULL, content INTEGER NOT NULL,
        month TEXT NOT NULL) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS recoupment_keys (key INTEGER PRIMARY KEY)",
    COMPLETE_FILES_DDL,
    REVIEW_KEYS_DDL,
)
#: control values kept as columns of ``units`` (Unit.control keys, lower case)
CONTROL_COLUMNS = ("isa13", "gs06", "st02", "trn02", "sender", "payer")
#: SQLite's limit of host parameters per statement is 32766 (>= 3.32); lookups go in chunks below it
CHUNK = 30_000


@dataclass(frozen=True)
class ClaimVersion:
    """A claim_id's current version in the index."""

    version: int  # the _ingest that stored it
    frequency: str
    content: int  # hash of its contract columns
    month: str


def connect(store: Path, *, create: bool = False, readonly: bool = False) -> sqlite3.Connection:
    """Open (or create) the manifest of ``store``; a manifest of a newer schema is a clear error."""
    path = Path(store) / MANIFEST
    if not create and not path.is_file():
        raise RecoupError(f"{store}: not a claims store (no {MANIFEST}); create one with `recoup ingest ... --into`")
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        version = _schema_version(conn)
        if version is None and not readonly:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in DDL:
                conn.execute(stmt)
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
            version = SCHEMA_VERSION
        elif version is not None and not readonly and version <= SCHEMA_VERSION:
            conn.execute(COMPLETE_FILES_DDL)
            conn.execute(REVIEW_KEYS_DDL)
    except sqlite3.DatabaseError as exc:
        raise RecoupError(f"{path}: cannot read the store manifest ({exc})") from None
    if version is None:
        raise RecoupError(f"{path}: an empty store manifest (no schema version)")
    if version > SCHEMA_VERSION:
        conn.close()
        raise RecoupError(
            f"{path}: store schema version {version}, newer than this recoup reads ({SCHEMA_VERSION}); upgrade recoup"
        )
    return conn


def _schema_version(conn: sqlite3.Connection) -> int | None:
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if not has_meta:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else None


def next_ingest_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM ingests").fetchone()[0])


def committed(conn: sqlite3.Connection) -> tuple[set[str], set[int]]:
    """(file of every live part, id of every committed ingest): what recovery keeps."""
    parts = {r[0] for r in conn.execute("SELECT file FROM parts")}
    ingests = {int(r[0]) for r in conn.execute("SELECT id FROM ingests")}
    return parts, ingests


def _chunks(items: list, n: int = CHUNK) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def ingested_units(conn: sqlite3.Connection, keys: Iterable[str]) -> set[str]:
    """The keys among ``keys`` already ingested (quarantined units do not count: a fixed copy may come)."""
    out: set[str] = set()
    for chunk in _chunks(list(set(keys))):
        q = f"SELECT key FROM units WHERE status='ingested' AND key IN ({','.join('?' * len(chunk))})"
        out.update(r[0] for r in conn.execute(q, chunk))
    return out


def complete_file(conn: sqlite3.Connection, sha256: str) -> dict[str, int] | None:
    """Units by kind of a file all of whose units are in the store, or None (not seen, or some unit rejected)."""
    row = conn.execute("SELECT kinds FROM complete_files WHERE sha256=?", (sha256,)).fetchone()
    return None if row is None else {str(k): int(v) for k, v in json.loads(row[0]).items()}


def claim_versions(conn: sqlite3.Connection, claim_ids: Iterable[str]) -> dict[str, ClaimVersion]:
    out: dict[str, ClaimVersion] = {}
    for chunk in _chunks(list(set(claim_ids))):
        marks = ",".join("?" * len(chunk))
        q = f"SELECT claim_id, version, frequency, content, month FROM claim_index WHERE claim_id IN ({marks})"
        for cid, version, freq, content, month in conn.execute(q, chunk):
            out[cid] = ClaimVersion(int(version), freq, int(content), month)
    return out


def known_recoupments(conn: sqlite3.Connection, keys: Iterable[int]) -> set[int]:
    out: set[int] = set()
    for chunk in _chunks(list(set(keys))):
        q = f"SELECT key FROM recoupment_keys WHERE key IN ({','.join('?' * len(chunk))})"
        out.update(int(r[0]) for r in conn.execute(q, chunk))
    return out


def known_reviews(conn: sqlite3.Connection, keys: Iterable[int]) -> dict[int, int]:
    """The content hash of each stored review among ``keys`` (hash of claim_id, reviewed_at, outcome)."""
    out: dict[int, int] = {}
    for chunk in _chunks(list(set(keys))):
        q = f"SELECT key, content FROM review_keys WHERE key IN ({','.join('?' * len(chunk))})"
        out.update((int(k), int(c)) for k, c in conn.execute(q, chunk))
    return out


@dataclass(frozen=True)
class Part:
    file: str  # relative to the store
    table: str
    month: str | None
    rows: int
    ingest: int
    ref_min: str | None = None  # claim_lines: the first and last month of their claims (range reads)
    ref_max: str | None = None


def live_parts(conn: sqlite3.Connection, table: str) -> list[Part]:
    q = "SELECT file, tbl, month, rows, ingest, ref_min, ref_max FROM parts WHERE tbl=? ORDER BY ingest, file"
    return [Part(*r) for r in conn.execute(q, (table,))]


@dataclass
class Commit:
    """Everything one ingest adds to the manifest, written in one transaction by :func:`commit`."""

    ingest: int
    started: str
    finished: str
    summary: dict
    options: dict
    files: list[tuple[str, str, int]]  # (sha256, name, size)
    units: list[tuple]  # rows of ``units`` (see :func:`unit_row`)
    parts: list[Part]
    claims: dict[str, ClaimVersion]
    recoupment_keys: set[int]
    complete_files: dict[str, dict[str, int]] = field(default_factory=dict)  # sha256 -> units by kind
    review_keys: dict[int, int] = field(default_factory=dict)  # review key -> content hash


def unit_row(
    key: str, kind: str, sha: str, segment: int | None, control: dict, counts: dict, ingest: int, status: str
) -> tuple:
    ctl = {k.lower(): v for k, v in control.items()}
    values = tuple(ctl.get(c) for c in CONTROL_COLUMNS)
    return (key, kind, sha, segment, *values, json.dumps(counts, sort_keys=True), ingest, status)


def commit(conn: sqlite3.Connection, c: Commit) -> None:
    """Write one ingest's rows in a single transaction (all or nothing)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?)", [(s, n, z, c.ingest) for s, n, z in c.files]
        )
        conn.executemany(f"INSERT OR REPLACE INTO units VALUES ({','.join('?' * 13)})", c.units)
        conn.executemany(
            "INSERT INTO parts VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(p.file, p.table, p.month, p.rows, p.ingest, p.ref_min, p.ref_max) for p in c.parts],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO claim_index VALUES (?, ?, ?, ?, ?)",
            [(cid, v.version, v.frequency, v.content, v.month) for cid, v in c.claims.items()],
        )
        conn.executemany("INSERT OR IGNORE INTO recoupment_keys VALUES (?)", [(k,) for k in c.recoupment_keys])
        conn.executemany("INSERT OR REPLACE INTO review_keys VALUES (?, ?)", list(c.review_keys.items()))
        conn.executemany(
            "INSERT OR IGNORE INTO complete_files VALUES (?, ?, ?)",
            [(sha, json.dumps(kinds, sort_keys=True), c.ingest) for sha, kinds in c.complete_files.items()],
        )
        conn.execute(
            "INSERT INTO ingests VALUES (?, ?, ?, ?, ?)",
            (c.ingest, c.started, c.finished, json.dumps(c.summary, sort_keys=True), json.dumps(c.options)),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def store_errors(store: Path | str, writing: bool = False):
    """A decorator's worth of translation for one store operation: a damaged manifest (``sqlite3.DatabaseError``)
    and, when ``writing``, a failed write (disk full, permissions: ``OSError``) become one-line errors naming the
    store; nothing else is caught."""
    import contextlib

    @contextlib.contextmanager
    def _guard() -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:  # I/O: a full disk, a file size limit, permissions
            what = "write" if writing else "read"
            raise RecoupError(f"{Path(store) / MANIFEST}: cannot {what} the store manifest ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise RecoupError(f"{Path(store) / MANIFEST}: cannot read the store manifest ({exc})") from None
        except OSError as exc:
            if not writing:
                raise
            from features.outputs import write_error

            raise write_error(store, exc) from None

    return _guard()
