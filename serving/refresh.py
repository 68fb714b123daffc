"""The state keeps learning: new claims and recoupments reach the running service's history state.

A :class:`RefreshSource` gives the claims submitted and the recoupments dated in a window of days;
:class:`HistoryFolder` reads a claims history folder (``features.contract.load_history``); the claims
store can plug in with the same two methods. :func:`refresh` adds to the scorer's state, without
retraining or restarting:

- **point in time**: only events dated after the model's as-of date and on or before today (UTC)
  (``now``): what the model was trained on is never changed, nothing from the future is added;
- **idempotent**: a claim id the state already holds (training history, recorded online, an earlier
  refresh) is not added again; a recoupment is counted once (key: claim id, date, amount, cause;
  :func:`features.engine.state.recoupment_keys`); refreshing twice with the same data adds nothing;
- **one bad claim skipped, not the refresh**: a claim the service's CLAIM schema refuses (e.g. more lines
  than ``MAX_LINES_PER_CLAIM``, which the data contract allows) is skipped and counted by reason kind
  (field and error type, never its data); the others and the recoupments of known claims are applied;
- **atomic**: the source is read and the claims turned into CLAIM objects outside the scorer's lock;
  under it (and the journal's exclusive lock) they are checked against the current state and applied
  as a recorded claim is (``serving.journal.record``), then the recoupments, then journaled; if anything
  fails once the state was changed (applying, the journal write) the state is reloaded from the journal
  (snapshot + records: the state as before) and the failure reported;
- **single flight**: one refresh at a time per journal folder (all workers; :func:`single_flight`); a
  refresh asked for while one runs does nothing and says so (``outcome: busy``; ``POST /refresh``: 409);
- **shared and kept**: the added claims and recoupments and the outcome are one journal record
  (serving/journal.py), so every worker applies them and a restart replays them (compaction saves them
  in the snapshot, with the outcome: ``HistoryState.refresh_info``).

A failed refresh (a bad file) changes nothing; it is logged without claim data (the contract error's
first line or the exception type) and shown in ``GET /model``. :func:`refresh` never raises.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import math
import os
import re
import threading
import time
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol

import pandas as pd

from features.errors import RecoupError
from features.settings import NUMERIC_SETTINGS

if TYPE_CHECKING:
    from features.engine.state import HistoryState
    from serving.scorer import Scorer

log = logging.getLogger("recoup.refresh")

SOURCE_ENV = "RECOUP_REFRESH_FROM"
EVERY_ENV = "RECOUP_REFRESH_EVERY"
#: the refresh interval's bounds, seconds (one minute to one day)
EVERY_MIN, EVERY_MAX = int(NUMERIC_SETTINGS[EVERY_ENV][2]), int(NUMERIC_SETTINGS[EVERY_ENV][3])
_INTERVAL = re.compile(r"^\s*(\d{1,6})\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
#: the recoupment columns a refresh journals (what the state's events need)
RECOUPMENT_FIELDS = ("claim_id", "recouped_date", "recouped_amount", "cause")
#: the answer to a refresh asked for while one runs (``POST /refresh``: 409)
BUSY = "a refresh is already running"
#: the journal folder's file whose lock a refresh holds (serving/journal.py's layout)
LOCK_FILE = "refresh.lock"


def parse_interval(text: str, option: str = "--refresh-every") -> int:
    """``"15m"``, ``"1h"``, ``"90s"``, ``"1d"`` (or plain seconds) -> seconds, within 1 min .. 1 day."""
    m = _INTERVAL.match(str(text))
    seconds = int(m.group(1)) * _UNIT[m.group(2).lower()] if m else -1
    if not EVERY_MIN <= seconds <= EVERY_MAX:
        raise RecoupError(
            f"{option} must be a duration from 1m to 1d (e.g. 15m, 2h, 1d; units s, m, h, d), got {str(text)[:20]!r}"
        )
    return seconds


@dataclass
class Increments:
    """Claims (and their lines) submitted, and recoupments dated, in a window of days."""

    claims: pd.DataFrame
    lines: pd.DataFrame
    recoupments: pd.DataFrame


class RefreshSource(Protocol):
    """Where new claims and recoupments come from (a history folder today, the claims store later)."""

    def describe(self) -> str:
        """What it is, for ``GET /model`` and the log (no claim data)."""
        ...

    def read(self, after: pd.Timestamp, upto: pd.Timestamp) -> Increments:
        """Claims submitted and recoupments dated in ``(after, upto]``; raises on unreadable data."""
        ...


def in_window(claims: pd.DataFrame, lines: pd.DataFrame, recoupments, after, upto) -> Increments:
    """The rows of typed contract frames dated in ``(after, upto]`` (claims by submitted date,
    recoupments by recouped date)."""
    keep = (claims["submitted_date"] > after) & (claims["submitted_date"] <= upto)
    c = claims[keep].reset_index(drop=True)
    ln = lines[lines["claim_id"].isin(c["claim_id"])].reset_index(drop=True)
    if recoupments is None:
        r = pd.DataFrame({k: pd.Series(dtype=object) for k in RECOUPMENT_FIELDS})
    else:
        r = recoupments[(recoupments["recouped_date"] > after) & (recoupments["recouped_date"] <= upto)]
    return Increments(c, ln, r.reset_index(drop=True))


class HistoryFolder:
    """A claims history folder (the data contract), read whole at each refresh."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def describe(self) -> str:
        return f"history folder {self.directory}"

    def read(self, after: pd.Timestamp, upto: pd.Timestamp) -> Increments:
        from features.contract import load_history

        h = load_history(self.directory)
        return in_window(h.claims, h.claim_lines, h.recoupments, after, upto)


def source_from_env() -> tuple[HistoryFolder | None, int | None]:
    """(the source, its interval in seconds) set by ``recoup serve --refresh-from/--refresh-every``."""
    import os

    from features.settings import env_number

    d = os.environ.get(SOURCE_ENV)
    if not d:
        return None, None
    return HistoryFolder(d), int(env_number(EVERY_ENV))


def safe_error(exc: BaseException) -> str:
    """A failure in one line without claim data: a contract error's count line, else the exception type."""
    from features.contract import ContractError

    if isinstance(exc, ContractError):
        return f"ContractError: {str(exc).splitlines()[0].rstrip(':')}"
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return f"{type(exc).__name__}: the source folder or a file of it is missing"
    return f"{type(exc).__name__} (message not shown: it may hold claim data)"


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def recoupment_records(rec: pd.DataFrame) -> list[dict]:
    """Recoupment rows as JSON-ready dicts (:data:`RECOUPMENT_FIELDS`) for the journal."""
    out = rec[[c for c in RECOUPMENT_FIELDS if c in rec.columns]].copy()
    out["recouped_date"] = pd.to_datetime(out["recouped_date"]).dt.strftime("%Y-%m-%d")
    out["recouped_amount"] = out["recouped_amount"].astype(float)
    if "cause" in out:
        out["cause"] = out["cause"].astype("string").fillna("").astype(str)
    return out.to_dict("records")


def recoupment_frame(records: list[dict]) -> pd.DataFrame:
    """The journal's recoupment dicts back as a frame :meth:`HistoryState.add_recoupments` takes."""
    df = pd.DataFrame(records, columns=list(RECOUPMENT_FIELDS))
    df["recouped_date"] = pd.to_datetime(df["recouped_date"]).astype("datetime64[s]")
    df["recouped_amount"] = df["recouped_amount"].astype(float)
    return df


def _reason(field: str, kind: str) -> str:
    """``claim.lines[3].units`` + ``too_long`` -> ``lines.units: too_long`` (no index, no value)."""
    path = re.sub(r"\[\d+\]", "", field)
    return f"{path.removeprefix('claim.').removeprefix('claim') or 'claim'}: {kind}"


def valid_claims(sent: list[dict]) -> tuple[list[dict], Counter]:
    """The CLAIM dicts the service's schema and the contract accept, and the others counted by reason kind
    (field and error type: never claim data or ids)."""
    from pydantic import ValidationError

    from serving.schemas import Claim, claims_to_frames

    ok: list[dict] = []
    models: list = []
    reasons: Counter = Counter()
    for c in sent:
        try:
            models.append(Claim.model_validate(c))
            ok.append(c)
        except ValidationError as exc:
            first = exc.errors()[0]
            reasons[_reason(".".join(str(p) for p in first["loc"] if not isinstance(p, int)), first["type"])] += 1
    if not models:
        return ok, reasons
    conv = claims_to_frames(models)
    for i, fields in conv.errors.items():
        reasons[_reason(fields[0]["field"] if fields else "claim", "contract")] += 1
    return [ok[i] for i in conv.ok], reasons


@contextmanager
def single_flight(scorer: Scorer) -> Iterator[bool]:
    """Whether this call may refresh ``scorer``'s state: no other refresh runs in this process (the
    scorer's ``refresh_lock``) nor, with a journal, in another worker (a lock on its folder's
    :data:`LOCK_FILE`). Never waits."""
    lock = scorer.refresh_lock
    if not lock.acquire(blocking=False):
        yield False
        return
    fd = None
    try:
        free = True
        j = scorer.journal
        if j is not None:
            fd = os.open(j.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                free = False
        yield free
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock
        lock.release()


def apply_increments(
    state: HistoryState, sent: list[dict], recoupments: pd.DataFrame, rulebook
) -> tuple[int, pd.DataFrame]:
    """Add the claims (CLAIM dicts, recorded as a scored claim is) then the recoupments not seen yet to
    ``state``; returns (claims added, the recoupment rows added). Raises if a claim cannot be applied."""
    from serving.journal import record

    if sent:
        record(state, sent, rulebook, strict=True)
    fresh = state.new_recoupments(recoupments)
    state.add_recoupments(fresh)
    return len(sent), fresh


def _window(scorer: Scorer, now: pd.Timestamp | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    as_of = scorer.bundle.meta.get("as_of")
    after = pd.Timestamp(as_of) if as_of else pd.Timestamp.min
    upto = (now if now is not None else pd.Timestamp(dt.datetime.now(dt.timezone.utc).date())).normalize()
    return after, upto


def refresh(scorer: Scorer, source: RefreshSource, now: pd.Timestamp | None = None) -> dict:
    """Add what ``source`` has in ``(model as-of, now]`` (``now``: today, UTC) to ``scorer``'s state
    (see the module docstring); returns the outcome (also kept in ``state.refresh_info``), ``busy``
    without doing anything while another refresh runs. Never raises."""
    with single_flight(scorer) as free:
        if not free:
            log.warning("state refresh from %s not started: %s", source.describe(), BUSY)
            return {"at": _utc_now(), "source": source.describe(), "outcome": "busy", "error": BUSY}
        return _refresh(scorer, source, now)


def _refresh(scorer: Scorer, source: RefreshSource, now: pd.Timestamp | None) -> dict:
    from serving.schemas import frames_to_claims

    t0 = time.perf_counter()
    after, upto = _window(scorer, now)
    info: dict = {"at": _utc_now(), "source": source.describe(), "upto": str(upto.date())}
    undone = True  # the state as before the refresh (until it was changed and could not be undone)
    try:
        inc = source.read(after, upto) if upto > after else None
        sent: list[dict] = []
        skipped: Counter = Counter()
        recs = inc.recoupments if inc is not None else pd.DataFrame(columns=list(RECOUPMENT_FIELDS))
        if inc is not None and len(inc.claims):
            with scorer.lock:  # a first cut against the state (cheap); checked again below
                assert scorer.state is not None
                versions = scorer.state.versions(inc.claims["claim_id"].astype(str).tolist())
            unknown = inc.claims[[v is None for v in versions]].sort_values("submitted_date", kind="stable")
            sent, skipped = valid_claims(
                frames_to_claims(unknown, inc.lines[inc.lines["claim_id"].isin(unknown["claim_id"])])
            )
        with scorer.lock:
            j = scorer.journal
            with j.exclusive() if j is not None else nullcontext():
                assert scorer.state is not None  # online scoring: a scorer with its history state
                if j is not None:
                    scorer.state = j.catch_up(scorer.state, scorer.rulebook)
                state = scorer.state
                if sent:  # recorded meanwhile (scored online, another worker's refresh): not again
                    now_known = state.versions([c["claim_id"] for c in sent])
                    sent = [c for c, v in zip(sent, now_known) if v is None]
                before = state.refresh_info
                try:  # from here the state changes: any failure undoes it
                    n_claims, fresh = apply_increments(state, sent, recs, scorer.rulebook)
                    info.update(
                        outcome="ok",
                        added_claims=n_claims,
                        added_recoupments=len(fresh),
                        skipped_claims=sum(skipped.values()),
                        skipped_reasons=dict(sorted(skipped.items())),
                        seconds=round(time.perf_counter() - t0, 3),
                    )
                    state.refresh_info = {"last": info, "last_ok": info}
                    if j is not None:
                        j.append(sent, recoupments=recoupment_records(fresh), refresh=info)
                except Exception:
                    state.refresh_info = before
                    undone = _undo(scorer)
                    raise
                _compact(j, state)
        log.info(
            "state refresh from %s: %d claims, %d recoupments added, %d claims skipped%s in %.1fs",
            info["source"],
            info["added_claims"],
            info["added_recoupments"],
            info["skipped_claims"],
            f" ({', '.join(f'{k} x{n}' for k, n in info['skipped_reasons'].items())})" if skipped else "",
            info["seconds"],
        )
    except Exception as exc:  # noqa: BLE001 - reported, the state is as before
        info = {k: v for k, v in info.items() if k in ("at", "source", "upto")}
        info.update(outcome="failed", error=safe_error(exc), seconds=round(time.perf_counter() - t0, 3))
        if not undone:
            info["error"] += "; NOT undone: the state in memory may hold part of it until a restart"
        log.error(
            "state refresh from %s failed: %s%s", info["source"], info["error"], "; the state is unchanged" * undone
        )
        _keep_failure(scorer, info)
    return info


def _undo(scorer: Scorer) -> bool:
    """After a failure once the state was changed: the state as the journal holds it (snapshot + records,
    the state before this refresh). False when that is impossible (no journal, or reloading failed)."""
    j = scorer.journal
    if j is None:
        return False
    try:
        scorer.state = j.reload(scorer.rulebook)
    except Exception as exc:  # noqa: BLE001 - reported with the refresh's failure
        log.error("state refresh: reloading the state from the journal failed (%s)", type(exc).__name__)
        return False
    return True


def _compact(j, state: HistoryState) -> None:
    """Compact the journal when due; a failure is logged (the refresh is journaled already: it stands)."""
    if j is None or not j.due():
        return
    try:
        j.compact(state)
    except Exception as exc:  # noqa: BLE001 - retried at the next record or refresh
        log.error("journal compaction after a state refresh failed (%s); retried later", type(exc).__name__)


def _keep_failure(scorer: Scorer, info: dict) -> None:
    """The failed outcome into the state and the journal (every worker shows it); if even that fails
    (the disk), it is logged: the outcome is still returned."""
    try:
        with scorer.lock:
            j = scorer.journal
            with j.exclusive() if j is not None else nullcontext():
                assert scorer.state is not None
                if j is not None:
                    scorer.state = j.catch_up(scorer.state, scorer.rulebook)
                scorer.state.refresh_info = {**scorer.state.refresh_info, "last": info}
                if j is not None:
                    j.append([], refresh=info)
    except Exception as exc:  # noqa: BLE001 - refresh() never raises
        log.error("state refresh failure not journaled (%s)", type(exc).__name__)


def status(scorer: Scorer, source: RefreshSource | None, every: int | None) -> dict:
    """The state's staleness for ``GET /model``: latest event date, last refresh and its outcome."""
    with scorer.lock:
        state = scorer.state
        latest = state.latest_day() if state is not None else None
        info = dict(state.refresh_info) if state is not None else {}
    last, ok = info.get("last"), info.get("last_ok")
    since = None
    if ok:
        since = round((dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(ok["at"])).total_seconds(), 1)
    return {
        "as_of": None if latest is None else str(latest.date()),
        "model_as_of": scorer.bundle.meta.get("as_of"),
        "refresh_source": None if source is None else source.describe(),
        "refresh_every_seconds": every,
        "last_refresh": last,
        "last_successful_refresh": ok,
        "seconds_since_refresh": since,
        "overdue": bool(every and (since is None or since > 2 * every)),
    }


class CallGap:
    """The minimum time between two called refreshes of a worker (``RECOUP_REFRESH_MIN_GAP``, seconds; 0:
    none): ``POST /refresh`` answers 429 with ``Retry-After`` within it."""

    def __init__(self, seconds: int):
        self.seconds = seconds
        self.last: float | None = None

    def wait(self) -> int:
        """Seconds before the next called refresh may run (0: now)."""
        if self.last is None or not self.seconds:
            return 0
        return max(0, math.ceil(self.seconds - (time.monotonic() - self.last)))

    def ran(self) -> None:
        """A called refresh ran (not one refused as busy)."""
        self.last = time.monotonic()


class Refresher:
    """Refreshes a scorer's state from a source every ``every`` seconds, in a daemon thread (the first
    refresh at start)."""

    def __init__(self, scorer: Scorer, source: RefreshSource, every: int):
        self.scorer, self.source, self.every = scorer, source, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recoup-state-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                refresh(self.scorer, self.source)  # reports and keeps its failures
            except Exception as exc:  # noqa: BLE001 - whatever happens, the schedule goes on
                log.error("scheduled state refresh raised %s; next in %d s", type(exc).__name__, self.every)
            self._stop.wait(self.every)
