"""The recorded-claims journal: how several service workers share what each one recorded.

Every worker process keeps its own in-memory history state (loaded with the model). With one worker
that is all there is. With several (``RECOUP_SERVICE_WORKERS``), each claim a worker scores with
``record`` is also appended to one journal file shared by the workers of the server, and before
computing features every worker first applies what the others appended since it last looked. So a
duplicate sent to worker B of a claim recorded by worker A is caught, as it is with one worker.

- Recording requests hold an exclusive ``flock`` on the journal from catching up to appending, so
  two workers never record concurrently without seeing each other (the same guarantee the scorer's
  lock gives inside one process).
- Other requests only catch up, without the lock: records are appended whole under the lock, and a
  reader stops at the last complete one.
- A record is one line of JSON, ``{"w": writer pid, "claims": [CLAIM, ...]}``: the recorded claims as
  the service's CLAIM objects (about 0.7 KB per claim), checked and typed again by the contract when
  another worker applies them. The journal holds claims as the history does (patient ids included):
  it lives in the service's working folder, readable by its user only.
- The journal belongs to one server (its path names the parent process and its start time): a
  restart starts from the state saved with the model, as with one worker; journals of servers that are
  gone are removed when a new one starts.
"""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import orjson
import pandas as pd

from features.pipeline import compute_features
from features.rulebook import Rulebook
from features.state import HistoryState
from serving.schemas import Claim, claims_to_frames, frames_to_claims

log = logging.getLogger(__name__)


def server_journal_path(directory: Path) -> Path:
    """The journal of the server this worker belongs to (named after the parent process), removing the
    journals of servers that no longer run."""
    import psutil

    ppid = os.getppid()
    try:
        started = int(psutil.Process(ppid).create_time())
    except psutil.Error:
        started = 0
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("journal-*.bin"):
        try:
            pid = int(old.stem.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != ppid and not psutil.pid_exists(pid):
            old.unlink(missing_ok=True)
    return directory / f"journal-{ppid}-{started}.bin"


class RecordJournal:
    """One worker's handle on the shared journal (one per worker process; not thread-safe: the scorer
    calls it under its own lock)."""

    def __init__(self, path: str | Path, writer: int | None = None):
        self.path = Path(path)
        self.writer = os.getpid() if writer is None else writer
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.offset = 0  # bytes of the journal applied to this worker's state
        self.applied = 0  # records of other workers applied

    def close(self) -> None:
        os.close(self.fd)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the journal's lock (recording: catch up, score, append)."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def catch_up(self, state: HistoryState, rulebook: Rulebook) -> int:
        """Apply the complete records other workers appended since the last call; returns how many."""
        size = os.fstat(self.fd).st_size
        if size <= self.offset:
            return 0
        data = os.pread(self.fd, size - self.offset, self.offset)
        end = data.rfind(b"\n") + 1  # a record still being written: the rest next time
        pending: list[dict] = []
        done = 0
        for line in data[:end].splitlines():
            rec = orjson.loads(line)
            if rec["w"] != self.writer:
                pending.extend(rec["claims"])
                done += 1
        if pending:
            record(state, pending, rulebook)
        self.offset += end
        self.applied += done
        return done

    def append(self, claims: pd.DataFrame, lines: pd.DataFrame, as_sent: list[dict] | None = None) -> None:
        """Append this worker's recorded claims (call under :meth:`exclusive`, after :meth:`catch_up`):
        ``as_sent`` (the CLAIM objects of the request, when given) or the typed frames turned back into
        CLAIM objects (~1.5 ms per claim)."""
        try:
            if as_sent is None:
                raise TypeError
            text = orjson.dumps({"w": self.writer, "claims": as_sent})
        except TypeError:  # none given, or a value orjson cannot write (an integer over 64 bits)
            text = orjson.dumps({"w": self.writer, "claims": frames_to_claims(claims, lines)})
        buf = memoryview(text + b"\n")
        while buf:
            buf = buf[os.write(self.fd, buf):]
        self.offset = os.fstat(self.fd).st_size


def record(state: HistoryState, claims: list[dict], rulebook: Rulebook) -> None:
    """Add claims scored elsewhere (CLAIM objects, in the order they were recorded) to ``state``, after
    everything in it, through ``compute_features(..., record=True)`` as their worker added them; in as
    few calls as claim ids allow (a call holds each id once)."""
    chunk: list[dict] = []
    seen: set = set()
    for c in [*claims, None]:
        cid = None if c is None else str(c.get("claim_id"))
        if chunk and (c is None or cid in seen):
            conv = claims_to_frames([Claim.model_validate(x) for x in chunk])
            if conv.errors:  # cannot happen (they passed when recorded): say so, keep serving
                log.error("%d journal claim(s) no longer validate; not applied", len(conv.errors))
            if conv.ok:
                compute_features(conv.claims, conv.lines, state, rulebook, record=True)
            chunk, seen = [], set()
        if c is not None:
            chunk.append(c)
            seen.add(cid)
