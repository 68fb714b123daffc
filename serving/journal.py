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
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import orjson
import pandas as pd
from pydantic import ValidationError

from features.pipeline import compute_features
from features.rulebook import Rulebook
from features.state import HistoryState
from serving.schemas import Claim, claims_to_frames, frames_to_claims

log = logging.getLogger(__name__)


def _started(pid: int) -> int | None:
    """The start time (whole seconds) of a running process, None if there is none."""
    import psutil

    try:
        return int(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def server_journal_path(directory: Path) -> Path:
    """The journal of the server this worker belongs to (named after the parent process and its start
    time), removing the journals of servers that no longer run (no process with that id and start time:
    the folder must not be shared between hosts or containers)."""
    ppid = os.getppid()
    started = _started(ppid) or 0
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("journal-*.bin"):
        try:
            _, pid_text, start_text = old.stem.split("-")
            pid, start = int(pid_text), int(start_text)
        except ValueError:
            continue
        if (pid, start) != (ppid, started) and _started(pid) != start:
            old.unlink(missing_ok=True)
    return directory / f"journal-{ppid}-{started}.bin"


class RecordJournal:
    """One worker's handle on the shared journal (one per worker process; not thread-safe: the scorer
    calls it under its own lock)."""

    def __init__(self, path: str | Path, writer: int | str | None = None):
        self.path = Path(path)
        # the process id and a random part: a restarted worker that gets a dead one's pid must not take
        # that worker's records for its own
        self.writer = f"{os.getpid()}-{secrets.token_hex(4)}" if writer is None else writer
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
        """Apply the complete records other workers appended since the last call; returns how many.

        A line that cannot be read (left half-written by a worker that died) or whose claims cannot be
        applied is logged and skipped, never applied twice: the offset moves past it first.
        """
        size = os.fstat(self.fd).st_size
        if size <= self.offset:
            return 0
        data = os.pread(self.fd, size - self.offset, self.offset)
        end = data.rfind(b"\n") + 1  # a record still being written: the rest next time
        start = self.offset
        self.offset += end
        pending: list = []
        done = 0
        for k, line in enumerate(data[:end].splitlines()):
            try:
                rec = orjson.loads(line)
                mine = rec["w"] == self.writer
                claims = rec["claims"] if not mine else []
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.error("journal %s: line %d after byte %d unreadable; skipped", self.path.name, k + 1, start)
                continue
            if not mine:
                pending.extend(claims)
                done += 1
        if pending:
            record(state, pending, rulebook)
        self.applied += done
        return done

    def append(self, claims: pd.DataFrame, lines: pd.DataFrame, as_sent: list | None = None) -> None:
        """Append this worker's recorded claims (call under :meth:`exclusive`, after :meth:`catch_up`):
        ``as_sent`` (the request's :class:`~serving.schemas.Claim` objects, when given) or the typed
        frames turned back into CLAIM objects (~1.5 ms per claim). A failed write is cut off again."""
        try:
            if as_sent is None:
                raise TypeError
            sent = [c.model_dump(mode="json", exclude_none=True) if isinstance(c, Claim) else c for c in as_sent]
            text = orjson.dumps({"w": self.writer, "claims": sent})
        except TypeError:  # none given, or a value orjson cannot write (an integer over 64 bits)
            text = orjson.dumps({"w": self.writer, "claims": frames_to_claims(claims, lines)})
        size = os.fstat(self.fd).st_size
        # after a line a dead writer left unfinished, start on a new line (that one is skipped)
        head = b"\n" if size and os.pread(self.fd, 1, size - 1) != b"\n" else b""
        buf = memoryview(head + text + b"\n")
        try:
            while buf:
                buf = buf[os.write(self.fd, buf):]
        except OSError:
            os.ftruncate(self.fd, size)
            raise
        self.offset = os.fstat(self.fd).st_size


def record(state: HistoryState, claims: list[dict], rulebook: Rulebook) -> None:
    """Add claims scored elsewhere (CLAIM objects, in the order they were recorded) to ``state``, after
    everything in it, through ``compute_features(..., record=True)`` as their worker added them; in as
    few calls as claim ids allow (a call holds each id, as validated, once). A group that fails is
    logged and skipped."""
    chunk: list[Claim] = []
    seen: set = set()

    def flush() -> None:
        try:
            conv = claims_to_frames(chunk)
            if conv.errors:  # cannot happen (they passed when recorded): say so, keep serving
                log.error("%d journal claim(s) no longer validate; not applied", len(conv.errors))
            if conv.ok:
                compute_features(conv.claims, conv.lines, state, rulebook, record=True)
        except Exception as exc:  # noqa: BLE001 - one bad group must not stop the worker
            log.error("%d journal claim(s) not applied (%s)", len(chunk), type(exc).__name__)

    for c in claims:
        try:
            model = Claim.model_validate(c)
        except ValidationError:
            log.error("a journal claim no longer validates; not applied")
            continue
        if model.claim_id in seen:
            flush()
            chunk, seen = [], set()
        chunk.append(model)
        seen.add(model.claim_id)
    if chunk:
        flush()
