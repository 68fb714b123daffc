"""The recorded-claims journal: recorded claims survive restarts, and several workers share them.

Every worker process keeps its own in-memory history state (loaded with the model). Each claim scored
with ``record`` is also appended to a journal on disk, with one worker as with several
(``RECOUP_SERVICE_WORKERS``); before computing features every worker applies what the others appended
since it last looked. So a duplicate sent to worker B of a claim recorded by worker A is caught, and a
duplicate sent after a restart of a claim recorded before it too.

Layout, in ``$RECOUP_JOURNAL_DIR/model-<version>-<fingerprint>/`` (one folder per model version served:
a journal of another model is never applied; folder 0700, files 0600: they hold claims)::

    lock             flock: recording and compaction are exclusive, (re)loading is shared
    refresh.lock     flock, never waited for: one state refresh at a time (serving/refresh.py single_flight)
    snapshot-<g>/    a saved history state: the model's state plus every journal of a generation < g
    journal-<g>.bin  the claims recorded in generation g, on top of snapshot-<g> (generation 0: on top of
                     the model's own state)

- A record is one line of JSON, ``{"w": writer, "claims": [CLAIM, ...]}``: the recorded claims as the
  service's CLAIM objects (about 0.7 KB per claim), checked and typed again by the contract when
  applied. Appends are whole lines under the exclusive lock; a reader stops at the last complete line.
  A state refresh (serving/refresh.py) appends ``{"w", "claims", "recoupments", "refresh"}``: the claims
  and recoupments it added and its outcome; other workers apply the claims before it first, then its
  claims, then its recoupments (each counted once: ``HistoryState.add_recoupments``).
- **Start** (:meth:`RecordJournal.open_state`, in the service's ``__init__``, before it is ready): the
  latest snapshot (else the model's state) is loaded and its generation's journal replayed.
- **Compaction** (:meth:`RecordJournal.compact`; every ``RECOUP_JOURNAL_COMPACT_CLAIMS`` claims
  (default 20,000) or ``RECOUP_JOURNAL_COMPACT_SECONDS`` (default 3,600 s) after the first claim of a
  generation, checked when a claim is recorded, and at shutdown): under the exclusive lock, after
  applying everything, the worker saves its state as ``snapshot-<g+1>`` (temporary folder, fsync,
  rename: the rename is the commit), starts ``journal-<g+1>.bin`` and deletes generation g. A replay is
  thereby bounded by one generation's claims.
- **Other workers** see ``snapshot-<g+1>`` (or that their journal was deleted) on their next request:
  under the shared lock they finish reading ``journal-<g>`` through the descriptor they hold (a deleted
  file stays readable) and go on with ``journal-<g+1>`` from its start; a worker two or more generations
  behind loads the latest snapshot instead. Nothing is applied twice (the snapshot holds exactly the
  older generations) and nothing is lost (a generation's journal is complete when it is committed: no
  append happens while the compacting worker holds the lock).
- A crash at any step leaves a consistent folder: a half-written snapshot is a temporary folder (removed
  at the next start), a committed snapshot supersedes the older generation (removed at the next start).
  Appends are not fsynced: a killed process loses nothing, a power loss can lose what the operating
  system had not yet written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import orjson
from pydantic import ValidationError

from features.errors import RecoupError
from features.pipeline import compute_features
from features.rulebook import Rulebook
from features.settings import env_number
from features.engine.state import HistoryState, make_private
from serving.schemas import Claim, claims_to_frames
from serving.scorer import content_hashes

log = logging.getLogger(__name__)

#: compaction bounds (claims in a generation; seconds after a generation's first claim)
COMPACT_CLAIMS = int(env_number("RECOUP_JOURNAL_COMPACT_CLAIMS"))
COMPACT_SECONDS = float(env_number("RECOUP_JOURNAL_COMPACT_SECONDS"))
_SNAPSHOT = re.compile(r"snapshot-(\d+)")
_JOURNAL = re.compile(r"journal-(\d+)\.bin")


def model_key(bundle_dir: str | Path) -> str:
    """The journal folder name of a model bundle: its version and a fingerprint of its metadata and
    state manifest (two bundles both "unregistered" do not share a journal)."""
    d = Path(bundle_dir)
    meta = (d / "meta.json").read_bytes()
    version = str(json.loads(meta).get("model_version", "unregistered"))
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", version)[:40]
    digest = hashlib.sha256(meta + (d / "state" / "state.json").read_bytes()).hexdigest()[:12]
    return f"model-{safe}-{digest}"


def _private_dir(path: Path) -> Path:
    """``path`` (0700), its parent (the service's folder, e.g. ``$RECOUP_HOME/service``) created 0700 too."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _remove_per_server_journals(root: Path) -> None:
    """Delete the journals earlier versions kept per server (``journal-<pid>-<start>.bin`` in the journal
    folder itself, lost at every restart) whose server no longer runs: they hold claims."""
    import psutil

    for old in root.glob("journal-*-*.bin"):
        try:
            _, pid_text, start_text = old.stem.split("-")
            pid, start = int(pid_text), int(start_text)
        except ValueError:
            continue
        try:
            running = int(psutil.Process(pid).create_time()) == start
        except psutil.Error:
            running = False
        if not running:
            old.unlink(missing_ok=True)


class RecordJournal:
    """One worker's handle on the journal folder of a model (one per worker process; not thread-safe:
    the scorer calls it under its own lock)."""

    def __init__(
        self,
        directory: str | Path,
        writer: int | str | None = None,
        compact_claims: int | None = None,
        compact_seconds: float | None = None,
    ):
        self.dir = _private_dir(Path(directory))
        _remove_per_server_journals(self.dir.parent)
        # the process id and a random part: a restarted worker that gets a dead one's pid must not take
        # that worker's records for its own
        self.writer = f"{os.getpid()}-{secrets.token_hex(4)}" if writer is None else writer
        self.compact_claims = COMPACT_CLAIMS if compact_claims is None else compact_claims
        self.compact_seconds = COMPACT_SECONDS if compact_seconds is None else compact_seconds
        self.lock_fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._held = False
        self.fd: int | None = None  # the current generation's journal, once open_state opened it
        self.base_dir: Path | None = None  # the model's bundle folder (its state is generation 0)
        self.gen = -1
        self.offset = 0  # bytes of the current journal applied to this worker's state
        self.claims_in_gen = 0  # claims in the current journal up to offset (all writers)
        self.first_claim_at: float | None = None  # when this worker first saw a claim of the generation
        self.applied = 0  # records of other workers applied
        self.replayed = 0  # claims replayed at start

    def _open_fd(self) -> int:
        if self.fd is None:
            raise RuntimeError("RecordJournal.open_state first")
        return self.fd

    @property
    def path(self) -> Path:
        """The current generation's journal file."""
        return self.dir / f"journal-{self.gen}.bin"

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        os.close(self.lock_fd)

    # ------------------------------------------------------------------ locks
    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the folder's lock (recording: catch up, score, append; compaction)."""
        if self._held:
            yield
            return
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        self._held = True
        try:
            yield
        finally:
            self._held = False
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def _shared(self) -> Iterator[None]:
        if self._held:  # already exclusive
            yield
            return
        fcntl.flock(self.lock_fd, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ generations
    def _generations(self, pattern: re.Pattern) -> list[int]:
        out = []
        for p in self.dir.iterdir():
            m = pattern.fullmatch(p.name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def latest_snapshot(self) -> int:
        """The generation of the latest committed snapshot, 0 when there is none (the model's state)."""
        gens = self._generations(_SNAPSHOT)
        return gens[-1] if gens else 0

    def _open_gen(self, gen: int) -> None:
        fd = os.open(self.dir / f"journal-{gen}.bin", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        if self.fd is not None:
            os.close(self.fd)
        self.fd, self.gen, self.offset, self.claims_in_gen, self.first_claim_at = fd, gen, 0, 0, None

    def _drop_older(self, gen: int) -> None:
        """Delete the journals and snapshots of generations before ``gen`` and leftovers of failed saves
        (call under the exclusive lock)."""
        for p in self.dir.iterdir():
            m = _SNAPSHOT.fullmatch(p.name) or _JOURNAL.fullmatch(p.name)
            if m and int(m.group(1)) < gen:
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
            elif p.name.startswith(".snapshot-"):
                shutil.rmtree(p, ignore_errors=True)

    def _load(self, gen: int, base_dir: Path | None) -> HistoryState:
        if gen == 0:
            if base_dir is None:
                raise RuntimeError("the model's own state is needed for generation 0")
            return HistoryState.load(base_dir)
        return HistoryState.load(self.dir / f"snapshot-{gen}")

    def open_state(self, base_dir: str | Path, rulebook: Rulebook) -> HistoryState:
        """At start: the latest snapshot (else the model's state in ``base_dir``) with its generation's
        journal replayed."""
        self.base_dir = Path(base_dir)
        with self.exclusive():
            gen = self.latest_snapshot()
            self._drop_older(gen)
            state = self._load(gen, self.base_dir)
            self._open_gen(gen)
            self._read(state, rulebook)
            self.replayed = self.claims_in_gen
        return state

    def reload(self, rulebook: Rulebook) -> HistoryState:
        """The state as the folder holds it (latest snapshot, journal replayed), this worker's own records
        included (it takes a new writer id): undoes changes made to a state in memory (a failed refresh)."""
        if self.base_dir is None:
            raise RuntimeError("RecordJournal.open_state first")
        self.writer = f"{os.getpid()}-{secrets.token_hex(4)}"
        return self.open_state(self.base_dir, rulebook)

    def _moved(self) -> bool:
        """Whether a compaction happened since this worker last looked (cheap: one fstat, one stat)."""
        return os.fstat(self._open_fd()).st_nlink == 0 or (self.dir / f"snapshot-{self.gen + 1}").exists()

    def catch_up(self, state: HistoryState, rulebook: Rulebook) -> HistoryState:
        """Apply the complete records other workers appended since the last call, following a
        compaction (see the module docstring); returns the state (a new one if it was reloaded)."""
        if self._moved():
            with self._shared():
                latest = self.latest_snapshot()
                if latest == self.gen + 1:  # finish the old file (complete), go on with the new one
                    self._read(state, rulebook)
                    self._open_gen(latest)
                    state.all_claim_keys()  # fold the recent claims' versions (memory bounded per generation)
                elif latest > self.gen + 1:  # two or more generations behind: load the latest snapshot
                    log.info("journal %s: reloading from snapshot %d", self.dir.name, latest)
                    state = self._load(latest, self.base_dir)
                    self._open_gen(latest)
                self._read(state, rulebook)
            return state
        self._read(state, rulebook)
        return state

    def _read(self, state: HistoryState, rulebook: Rulebook) -> int:
        """Apply the complete records after :attr:`offset` of the current journal; returns how many of
        other writers were applied.

        A line that cannot be read (left half-written by a worker that died) or whose claims cannot be
        applied is logged and skipped, never applied twice: the offset moves past it first.
        """
        fd = self._open_fd()
        size = os.fstat(fd).st_size
        if size <= self.offset:
            return 0
        data = os.pread(fd, size - self.offset, self.offset)
        end = data.rfind(b"\n") + 1  # a record still being written: the rest next time
        start = self.offset
        self.offset += end
        pending: list = []
        done = 0
        for k, line in enumerate(data[:end].splitlines()):
            if not line:
                continue
            try:
                rec = orjson.loads(line)
                mine = rec["w"] == self.writer
                claims = rec["claims"]
                n = len(claims)
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.error("journal %s: line %d after byte %d unreadable; skipped", self.path.name, k + 1, start)
                continue
            self._count(n)
            if mine:
                continue
            done += 1
            if "refresh" not in rec:
                pending.extend(claims)
                continue
            if pending:  # a refresh record: the claims before it first, then its claims and recoupments
                record(state, pending, rulebook)
                pending = []
            _apply_refresh(state, rec, rulebook)
        if pending:
            record(state, pending, rulebook)
        self.applied += done
        return done

    def _count(self, n: int) -> None:
        self.claims_in_gen += n
        if n and self.first_claim_at is None:
            self.first_claim_at = time.monotonic()

    def append(self, sent: list[dict], recoupments: list[dict] | None = None, refresh: dict | None = None) -> None:
        """Append this worker's recorded claims, as CLAIM dicts (:func:`serving.scorer.sent_claims`; call
        under :meth:`exclusive`, after :meth:`catch_up`). A state refresh (serving/refresh.py) adds the
        recoupments it added and its outcome (``refresh``). A failed write is cut off again."""
        body: dict = {"w": self.writer, "claims": sent}
        if refresh is not None:
            body.update(recoupments=recoupments or [], refresh=refresh)
        text = orjson.dumps(body)
        fd = self._open_fd()
        size = os.fstat(fd).st_size
        # after a line a dead writer left unfinished, start on a new line (that one is skipped)
        head = b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""
        buf = memoryview(head + text + b"\n")
        try:
            while buf:
                buf = buf[os.write(fd, buf) :]
        except OSError:
            os.ftruncate(fd, size)
            raise
        self.offset = os.fstat(fd).st_size
        self._count(len(sent))

    # ------------------------------------------------------------------ compaction
    def due(self) -> bool:
        """Whether the current generation should be compacted (claim count or age bound reached)."""
        if not self.claims_in_gen:
            return False
        return self.claims_in_gen >= self.compact_claims or (
            self.first_claim_at is not None and time.monotonic() - self.first_claim_at >= self.compact_seconds
        )

    def compact(self, state: HistoryState) -> bool:
        """Save ``state`` (which has applied the whole current journal) as the next generation's
        snapshot and start its journal; call under :meth:`exclusive` after :meth:`catch_up`. Returns
        False when the current journal holds no claim (nothing to compact)."""
        if not self._held:
            raise RuntimeError("compact() needs the exclusive lock")
        if not self.claims_in_gen:
            return False
        t0 = time.perf_counter()
        gen = self.gen + 1
        state.save(self.dir / f"snapshot-{gen}")  # atomic; the commit point
        n = self.claims_in_gen
        self._open_gen(gen)
        self._drop_older(gen)
        make_private(self.dir)
        log.info(
            "journal %s: %d claims compacted into snapshot %d in %.1fs", self.dir.name, n, gen, time.perf_counter() - t0
        )
        return True


def _apply_refresh(state: HistoryState, rec: dict, rulebook: Rulebook) -> None:
    """Apply another worker's state refresh record: its claims, its recoupments, its outcome."""
    from serving.refresh import recoupment_frame

    try:
        record(state, rec.get("claims") or [], rulebook)
        if rec.get("recoupments"):
            state.add_recoupments(recoupment_frame(rec["recoupments"]))
    except Exception as exc:  # noqa: BLE001 - one bad record must not stop the worker
        log.error("journal refresh record not applied (%s)", type(exc).__name__)
    info = rec.get("refresh") or {}
    state.refresh_info = {**state.refresh_info, "last": info}
    if info.get("outcome") == "ok":
        state.refresh_info["last_ok"] = info


def record(state: HistoryState, claims: list[dict], rulebook: Rulebook, strict: bool = False) -> None:
    """Add claims scored elsewhere (CLAIM objects, in the order they were recorded) to ``state``, after
    everything in it, through ``compute_features(..., record=True)`` as their worker added them; in as
    few calls as claim ids allow (a call holds each id, as validated, once). A group that fails is
    logged and skipped (``strict``: raises instead, for a state refresh to undo)."""
    chunk: list[Claim] = []
    raw: list[dict] = []  # the same claims as journaled: hashed as their worker hashed them
    seen: set = set()

    def flush() -> None:
        try:
            conv = claims_to_frames(chunk)
            if conv.errors and strict:
                raise RecoupError(f"{len(conv.errors)} claim(s) do not validate")
            if conv.errors:  # cannot happen (they passed when recorded): say so, keep serving
                log.error("%d journal claim(s) no longer validate; not applied", len(conv.errors))
            if conv.ok:
                hashes = content_hashes([raw[i] for i in conv.ok])
                compute_features(conv.claims, conv.lines, state, rulebook, record=True, cache={"_content_hash": hashes})
        except Exception as exc:  # noqa: BLE001 - one bad group must not stop the worker
            if strict:
                raise
            log.error("%d journal claim(s) not applied (%s)", len(chunk), type(exc).__name__)

    for c in claims:
        try:
            model = Claim.model_validate(c)
        except ValidationError:
            if strict:
                raise
            log.error("a journal claim no longer validates; not applied")
            continue
        if model.claim_id in seen:
            flush()
            chunk, raw, seen = [], [], set()
        chunk.append(model)
        raw.append(c)
        seen.add(model.claim_id)
    if chunk:
        flush()
