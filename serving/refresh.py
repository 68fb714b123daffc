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
- **atomic**: the source is read and the claims turned into CLAIM objects outside the scorer's lock;
  under it (and the journal's exclusive lock) they are checked against the current state and applied
  as a recorded claim is (``serving.journal.record``), then the recoupments; if applying fails the state
  is reloaded from the journal (snapshot + records: the state as before) and the failure reported;
- **shared and kept**: the added claims and recoupments and the outcome are one journal record
  (serving/journal.py), so every worker applies them and a restart replays them (compaction saves them
  in the snapshot, with the outcome: ``HistoryState.refresh_info``).

A failed refresh (a bad file) changes nothing; it is logged without claim data (the contract error's
first line or the exception type) and shown in ``GET /model``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

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
    (see the module docstring); returns the outcome (also kept in ``state.refresh_info``)."""
    from serving.schemas import frames_to_claims

    t0 = time.perf_counter()
    after, upto = _window(scorer, now)
    info: dict = {"at": _utc_now(), "source": source.describe(), "upto": str(upto.date())}
    try:
        inc = source.read(after, upto) if upto > after else None
        sent: list[dict] = []
        recs = inc.recoupments if inc is not None else pd.DataFrame(columns=list(RECOUPMENT_FIELDS))
        if inc is not None and len(inc.claims):
            with scorer.lock:  # a first cut against the state (cheap); checked again below
                assert scorer.state is not None
                versions = scorer.state.versions(inc.claims["claim_id"].astype(str).tolist())
            unknown = inc.claims[[v is None for v in versions]].sort_values("submitted_date", kind="stable")
            sent = frames_to_claims(unknown, inc.lines[inc.lines["claim_id"].isin(unknown["claim_id"])])
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
                try:
                    n_claims, fresh = apply_increments(state, sent, recs, scorer.rulebook)
                    n_rec = len(fresh)
                except Exception:
                    if j is not None:  # the state as before: the snapshot and the journal
                        scorer.state = j.reload(scorer.rulebook)
                    raise
                info.update(
                    outcome="ok",
                    added_claims=n_claims,
                    added_recoupments=n_rec,
                    seconds=round(time.perf_counter() - t0, 3),
                )
                state.refresh_info = {"last": info, "last_ok": info}
                if j is not None:
                    j.append(sent, recoupments=recoupment_records(fresh), refresh=info)
                    if j.due():
                        j.compact(state)
        log.info(
            "state refresh from %s: %d claims, %d recoupments added in %.1fs",
            info["source"],
            n_claims,
            n_rec,
            info["seconds"],
        )
    except Exception as exc:  # noqa: BLE001 - reported, the state is as before
        info.update(outcome="failed", error=safe_error(exc), seconds=round(time.perf_counter() - t0, 3))
        log.error("state refresh from %s failed: %s; the state is unchanged", info["source"], info["error"])
        with scorer.lock:
            j = scorer.journal
            with j.exclusive() if j is not None else nullcontext():
                assert scorer.state is not None
                if j is not None:
                    scorer.state = j.catch_up(scorer.state, scorer.rulebook)
                scorer.state.refresh_info = {**scorer.state.refresh_info, "last": info}
                if j is not None:
                    j.append([], refresh=info)
    return info


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
            refresh(self.scorer, self.source)  # never raises: a failure is reported and kept
            self._stop.wait(self.every)
