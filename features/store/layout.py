"""Where things are in a store directory, the writer's lock, and the staging protocol of its files
(docs/store.md, "Layout" and "Atomicity").

A store is ``STORE/manifest.sqlite`` + one folder per table (:data:`~features.store.unit.STORE_TABLES`), each
hive-partitioned by the month of its :data:`PARTITION_COLUMNS` date: ``claims/month=2024-01/part-<ingest>-<n>.parquet``
(providers: unpartitioned, ``providers/part-...``). A part is written under a hidden staged name first
(``.part-....parquet.tmp``: Arrow, DuckDB and Spark ignore names starting with ``.``) and renamed to its final name
only after the manifest transaction that lists it has committed."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import time
from pathlib import Path
from typing import Iterator

from features.errors import RecoupError
from features.outputs import fsync_path

MANIFEST = "manifest.sqlite"
LOCK = ".lock"
QUARANTINE = "quarantine"
#: the date column that partitions each table by month (None: unpartitioned)
PARTITION_COLUMNS: dict[str, str | None] = {
    "claims": "submitted_date",
    "claim_lines": "service_date",
    "coverage": "coverage_start",
    "providers": None,
    "recoupments": "recouped_date",
    "reviews": "reviewed_at",
    "remittances": "remittance_date",
    "remittance_lines": "remittance_date",
    "adjustments": "remittance_date",
    "offsets": "remittance_date",
}
#: the partition of rows without a usable date (never for contract tables: their partition dates are required)
NO_MONTH = "none"
MONTH_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}")
STAGED_PART = re.compile(r"\.(part-[0-9]+-[0-9]+\.parquet)\.tmp")
STAGED_QUARANTINE = re.compile(r"\.([0-9]+)\.tmp")
#: how long an ingest waits for another one to finish, by default (seconds)
DEFAULT_WAIT = 60.0


def is_store(path: Path) -> bool:
    """A directory holding a store manifest."""
    return (Path(path) / MANIFEST).is_file()


def part_relpath(table: str, month: str | None, ingest: int, n: int) -> str:
    """The final path of a part, relative to the store (as kept in the manifest)."""
    name = f"part-{ingest:06d}-{n:05d}.parquet"
    return f"{table}/{name}" if month is None else f"{table}/month={month}/{name}"


def staged(path: Path) -> Path:
    """The hidden name a part is written under before its ingest commits."""
    return path.with_name(f".{path.name}.tmp")


def quarantine_dir(store: Path, ingest: int) -> Path:
    return store / QUARANTINE / str(ingest)


def staged_quarantine_dir(store: Path, ingest: int) -> Path:
    return store / QUARANTINE / f".{ingest}.tmp"


def fsync_dir(path: Path) -> None:
    """Make the entries of a directory (new names, renames) durable; unlike :func:`features.outputs.fsync_dir`, a
    failure is not ignored (a store's commit depends on it)."""
    fsync_path(path)


def staged_files(store: Path) -> Iterator[Path]:
    """Every staged part under the table folders of a store."""
    for table in PARTITION_COLUMNS:
        folder = store / table
        if folder.is_dir():
            yield from (p for p in folder.rglob(".part-*.parquet.tmp") if p.is_file())


def recover(store: Path, committed_parts: set[str], committed_ingests: set[int]) -> tuple[int, int]:
    """Finish what an interrupted ingest left (call under the lock): staged parts the manifest lists are renamed to
    their final names, the others deleted; likewise staged quarantine folders. Returns (renamed, deleted)."""
    renamed = deleted = 0
    for tmp in staged_files(store):
        m = STAGED_PART.fullmatch(tmp.name)
        final = tmp.with_name(m.group(1)) if m else None
        if final is not None and final.relative_to(store).as_posix() in committed_parts:
            os.replace(tmp, final)
            fsync_dir(final.parent)
            renamed += 1
        else:
            tmp.unlink()
            deleted += 1
    qdir = store / QUARANTINE
    if qdir.is_dir():
        for tmp in qdir.iterdir():
            m = STAGED_QUARANTINE.fullmatch(tmp.name)
            if not m:
                continue
            if int(m.group(1)) in committed_ingests:
                os.replace(tmp, qdir / m.group(1))
                renamed += 1
            else:
                shutil.rmtree(tmp, ignore_errors=True)
                deleted += 1
    return renamed, deleted


@contextlib.contextmanager
def writer_lock(store: Path, wait: float = DEFAULT_WAIT) -> Iterator[None]:
    """Hold the store's writer lock (``fcntl.flock`` on ``STORE/.lock``; released by the kernel when the process
    dies, so a killed ingest never leaves the store locked). Waits up to ``wait`` seconds for another writer."""
    path = store / LOCK
    try:  # never through a link (a .lock planted as a symlink would have its target truncated)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise RecoupError(f"{path}: cannot open the store's lock ({exc.strerror}); it must be a regular file") from None
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                    raise RecoupError(
                        f"another ingest is writing to {store} (pid {holder}); waited {wait:g} s "
                        "(--wait SECONDS to wait longer)"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
