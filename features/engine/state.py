"""The history state: everything history features need, built from a claims history directory.

Storage choice: Parquet files plus an in-memory index (events sorted by key and time, with prefix
sums; see :mod:`features.engine.events`). A query is a dictionary lookup plus a binary search — microseconds,
with no database process or driver — and the same arrays answer millions of training queries at once.
The state is saved next to the model (a folder of Parquet files and a JSON manifest) and updated in
memory with newly scored claims and new recoupments (appended to a small delta, merged on save).

Claims recorded online keep their *version*: a content hash (given by the caller, see
:func:`serving.scorer.content_hashes`) and their time (``claim_keys`` columns ``content_hash``,
``time``). The service uses it to tell a retry (same id, same content: scored as the first time, not
recorded again) from a replacement (same id, new content: the previous version is superseded, see
:meth:`HistoryState.add_claims`). Claims of the training history have no hash (0: unknown).

The service asks only after the state's last event, so the state saved with a model is compact
(:meth:`HistoryState.compact`): old events folded into per-key summaries, old service-date keys dropped, claim
versions kept for a window; it grows with the number of keys and the recent window, not the history's length
(docs/scale.md, "The service's state").

A saved state holds claims (patient ids included): :meth:`HistoryState.save` writes it atomically
(temporary folder, fsync, rename) with files 0600 in a folder 0700 (:func:`make_private`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
import weakref
from typing import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from features.outputs import fsync_dir
from features.contract import History
from features.errors import RecoupError
from features.engine.arrays import SMALL
from features.engine.events import (
    EventTable,
    Vocab,
    day_number,
    day_of_time,
    pack,
    release_memory,
    time_of_day_start,
)
from features.engine.lines import prepare_lines
from features.engine.tables import (
    KEYED_ENTITIES,
    KeyCoder,
    Tables,
    build_tables,
    table_values,
    claim_entity_keys,
    claim_events,
    claim_times,
    recoupment_events,
)
from features.rulebook import Rulebook

UNKNOWN_SPECIALTY = "unknown"
#: the version columns of ``claim_keys`` (content hash, 0 = unknown; claim event time, -1 = unknown)
VERSION_COLUMNS = ("content_hash", "time")
_ENTITY_TABLES = (*KEYED_ENTITIES, "all")
#: the identity of a recoupment (the same one read twice is counted once): these columns, joined
RECOUPMENT_KEY = ("claim_id", "recouped_date", "recouped_amount", "cause")
_KEY_SEP = "\x1f"
#: tables whose events are enumerated, not only summed (``payloads_before`` of same-day lines; the duplicate
#: check looks before a claim's own event): a fold keeps every event of their recently active keys
ENUMERATED_TABLES = ("sameday", "dup")

# the compact state the service loads (:meth:`HistoryState.compact`; docs/scale.md, "The service's state")
#: the longest look-back of any history feature: the patient's claims in the last 365 days
LOOKBACK_DAYS = 365
#: days of events kept beyond the look-back: a claim submitted up to this many days before the state's last
#: event is still answered exactly as by the full state
MARGIN_DAYS = 35
#: events of the last this many days are kept as they are; older ones are folded or dropped
RETENTION_DAYS = LOOKBACK_DAYS + MARGIN_DAYS
#: claims whose later recoupments the compact state can still attribute: those submitted in the last three years
#: (Medicare's recovery audit look-back)
RECOUPMENT_DAYS = 3 * 365 + 1
#: line tables keyed by the service date (patient, provider, day[, code]): read event by event (same-day
#: lines, the duplicate's claim), so their old keys are dropped, not folded
SERVICE_DATE_TABLES = ("dup", "sameday")


def recoupment_keys(recoupments: pd.DataFrame) -> np.ndarray:
    """One text key per recoupment row: claim id, recouped day, amount in cents, cause (:data:`RECOUPMENT_KEY`)."""
    if not len(recoupments):
        return np.zeros(0, dtype=object)
    day = day_number(recoupments["recouped_date"]).astype(str)
    cents = np.round(recoupments["recouped_amount"].to_numpy(dtype=np.float64) * 100).astype(np.int64).astype(str)
    cause = recoupments["cause"].astype("string").fillna("").to_numpy(dtype=object) if "cause" in recoupments else ""
    ids = recoupments["claim_id"].astype(str).to_numpy(dtype=object)
    return ids + _KEY_SEP + day.astype(object) + _KEY_SEP + cents.astype(object) + _KEY_SEP + cause


def _write_events(directory: Path, name: str, table: EventTable) -> None:
    """One event table's file of a saved state."""
    table.to_frame().to_parquet(directory / f"events_{name}.parquet", index=False)


def _write_rest(
    directory: Path,
    *,
    tables: list[str],
    coder: KeyCoder,
    claim_keys: pd.DataFrame,
    coverage: pd.DataFrame | None,
    recoupment_seen: set,
    next_order: int,
    specialty_of: dict[str, str],
    refresh_info: dict,
    compaction: dict,
) -> None:
    """A saved state's files but the event tables' (written by :func:`_write_events`): the vocabularies, the claim
    keys, the coverage, the recoupments seen and ``state.json``."""
    for name, vocab in coder.vocabs.items():
        vocab.to_frame().to_parquet(directory / f"vocab_{name}.parquet", index=False)
    claim_keys.reset_index().to_parquet(directory / "claim_keys.parquet", index=False)
    if coverage is not None:
        coverage.to_parquet(directory / "coverage.parquet", index=False)
    if recoupment_seen:
        pd.DataFrame({"key": sorted(recoupment_seen)}).to_parquet(directory / "recoupment_seen.parquet", index=False)
    manifest = {
        "next_order": next_order,
        "tables": tables,
        "vocabs": sorted(coder.vocabs),
        "specialty_of": specialty_of,
        "has_coverage": coverage is not None,
        "has_recoupment_seen": bool(recoupment_seen),
        "refresh_info": refresh_info,
        "compaction": compaction,
    }
    (directory / "state.json").write_text(json.dumps(manifest))


def _publish(directory: Path, write: Callable[[Path], None]) -> Path:
    """``write`` a folder's files into a temporary folder next to ``directory`` (0700, files 0600, each fsynced),
    renamed in place of the previous one."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir(mode=0o700)
    try:
        write(tmp)
        make_private(tmp)
        for f in tmp.iterdir():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(tmp)
        old = None
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{secrets.token_hex(4)}"
            os.rename(directory, old)
        os.rename(tmp, directory)
        fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return directory


def make_private(path: str | Path) -> None:
    """Folders 0700 and files 0600 from ``path`` down (state, journal, snapshots: they hold claims)."""
    path = Path(path)
    if path.is_file():
        os.chmod(path, 0o600)
        return
    os.chmod(path, 0o700)
    for root, dirs, files in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
        for f in files:
            os.chmod(os.path.join(root, f), 0o600)


def submission_order(claims: pd.DataFrame) -> np.ndarray:
    """Order of each claim in submission sequence: by submitted date, then by row position."""
    day = claims["submitted_date"].to_numpy(dtype="datetime64[D]").astype("int64")
    order = np.empty(len(claims), dtype=np.int64)
    order[np.lexsort((np.arange(len(claims)), day))] = np.arange(len(claims))
    return order


@dataclass
class HistoryState:
    """Event tables, claim keys, provider specialties and coverage spans, as of the last event."""

    tables: Tables  # dict of EventTable, with the key coder of the line tables (``tables.coder``)
    claim_keys: pd.DataFrame  # index claim_id; columns provider, patient, payer, specialty
    specialty_of: dict[str, str]
    coverage: pd.DataFrame | None
    next_order: int = 0
    extra_claim_keys: list[pd.DataFrame] = field(default_factory=list)
    _coverage_by_patient: dict | None = field(default=None, repr=False)
    #: claim id -> (content hash, time, entity keys...) of the claims in ``extra_claim_keys`` (not yet
    #: folded into ``claim_keys``; emptied by :meth:`all_claim_keys`, so bounded by what is recorded
    #: between two saves)
    _recent: dict = field(default_factory=dict, repr=False)
    #: keys (:func:`recoupment_keys`) of the recoupments added after the state was built
    #: (:meth:`add_recoupments`): one read again is not counted twice
    recoupment_seen: set[str] = field(default_factory=set, repr=False)
    #: what the last refreshes did (serving.refresh): kept with the state, shown by the service
    refresh_info: dict = field(default_factory=dict)
    #: how the state was compacted (:meth:`compact`), empty for a full state
    compaction: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_history(
        cls,
        history: History,
        rulebook: Rulebook,
        order: np.ndarray | None = None,
        la: pd.DataFrame | None = None,
        cache: dict | None = None,
    ) -> "HistoryState":
        """Build the state holding every claim and recoupment of ``history``."""
        claims, lines = history.claims, history.claim_lines
        specialty_of = {}
        if history.providers is not None and len(history.providers):
            p = history.providers
            specialty_of = dict(
                zip(p["npi"].astype(str), p["taxonomy_code"].astype("string").fillna(UNKNOWN_SPECIALTY))
            )
        state = cls(tables=Tables(), claim_keys=pd.DataFrame(), specialty_of=specialty_of, coverage=history.coverage)
        order = submission_order(claims) if order is None else order
        specialty = state.specialty_for(claims)
        la = prepare_lines(claims, lines, rulebook) if la is None else la
        coder = KeyCoder()
        parts = [claim_events(claims, lines, la, specialty, order, cache, coder)]
        state.claim_keys = state._keys_frame(claims, specialty, la, cache, order)
        if history.recoupments is not None and len(history.recoupments):
            parts.append(recoupment_events(history.recoupments, state.claim_keys))
        state.tables = build_tables(parts, coder)
        del parts
        state.next_order = int(order.max()) + 1 if len(order) else 0
        return state

    @staticmethod
    def _keys_frame(
        claims: pd.DataFrame, specialty: np.ndarray, la, cache: dict | None = None, order: np.ndarray | None = None
    ) -> pd.DataFrame:
        keys = claim_entity_keys(claims, specialty, cache, la)
        times = claim_times(claims, order, cache) if order is not None else np.full(len(claims), -1, np.int64)
        ids = (
            cache["claim_id"]
            if cache is not None and "claim_id" in cache
            else claims["claim_id"].astype(str).to_numpy(dtype=object)
        )
        # training claims: no content hash (unknown), their claim event time
        return pd.DataFrame(
            {
                **{k: keys[k] for k in KEYED_ENTITIES},
                "content_hash": np.zeros(len(ids), dtype=np.int64),
                "time": np.asarray(times),
            },
            index=pd.Index(ids, name="claim_id", dtype=object),
        )

    def specialty_for(self, claims: pd.DataFrame, cache: dict | None = None) -> np.ndarray:
        """The specialty of each claim's billing provider. For a few claims with a per-call ``cache``
        (see :func:`features.pipeline.compute_features`) the NPIs are read from it and the result is
        kept there (``_specialty``), so recording the claims afterwards does not look them up again."""
        if len(claims) <= SMALL:
            if cache is not None and "_specialty" in cache:
                return cache["_specialty"]
            get = self.specialty_of.get
            npi = (
                cache["billing_npi"]
                if cache is not None and "billing_npi" in cache
                else claims["billing_npi"].astype(str).to_numpy(dtype=object)
            )
            out = np.array([get(k, UNKNOWN_SPECIALTY) for k in npi.tolist()], dtype=object)
            if cache is not None:
                cache["_specialty"] = out
            return out
        npi = claims["billing_npi"].astype(str)
        return npi.map(self.specialty_of).fillna(UNKNOWN_SPECIALTY).to_numpy(dtype=object)

    def coverage_for(self, patient_ids: pd.Series) -> pd.DataFrame | None:
        """The coverage spans of these patients (all of them when many are asked)."""
        if self.coverage is None:
            return None
        if len(patient_ids) > 1000:
            return self.coverage
        if self._coverage_by_patient is None:
            cov = self.coverage.reset_index(drop=True)
            self._coverage_by_patient = {
                k: v for k, v in cov.groupby(cov["patient_id"].astype(str), sort=False).indices.items()
            }
        rows = [self._coverage_by_patient.get(p) for p in patient_ids.astype(str)]
        found = [r for r in rows if r is not None]
        if not found:
            return self.coverage.iloc[0:0]
        return self.coverage.iloc[np.concatenate(found)]

    # ------------------------------------------------------------------ folding
    def fold_before(
        self, cutoff: int, keep_keys_since: int | None = None, keep_claims_since: int | None = None
    ) -> "HistoryState":
        """The state answering every feature query at ``T >= cutoff`` as this one does: each event table
        folded (:meth:`EventTable.fold_before`); the enumerated tables (:data:`ENUMERATED_TABLES`) keep
        every event of the keys active since ``keep_keys_since``. What a state needs besides its tables:
        the key coder (kept whole: its vocabularies grow with the number of distinct values, not events),
        the providers' specialties (kept: one per NPI) and the coverage spans (kept: a claim may be
        submitted long after its service dates, whose spans are read). The claim keys are needed only to
        attribute recoupments of known claims and to tell replacements online: those with a time before
        ``keep_claims_since`` are left out when it is given (time -1, unknown, kept)."""
        tables = Tables(
            {
                name: tab.fold_before(cutoff, keep_keys_since if name in ENUMERATED_TABLES else None)
                for name, tab in self.tables.items()
            },
            coder=self._coder(),
        )
        keys = self.all_claim_keys()
        if keep_claims_since is not None and len(keys) and "time" in keys.columns:
            t = keys["time"].to_numpy(dtype=np.int64)
            keys = keys[(t >= keep_claims_since) | (t < 0)]
        return HistoryState(
            tables=tables,
            claim_keys=keys,
            specialty_of=dict(self.specialty_of),
            coverage=self.coverage,
            next_order=self.next_order,
            recoupment_seen=set(self.recoupment_seen),
            refresh_info=dict(self.refresh_info),
        )

    # ------------------------------------------------------------------ updating
    def add_claims(
        self, claims: pd.DataFrame, lines: pd.DataFrame, la: pd.DataFrame, order: np.ndarray, cache: dict | None = None
    ) -> None:
        """Record scored claims (so a later duplicate or same-day pair is caught), with their content hashes
        when ``cache["_content_hash"]`` holds them.

        A claim whose id is already in the state is a new version that supersedes the previous one: the
        previous version's contribution to the entity tables (provider, patient, payer, specialty,
        procedure, all: counts, charges) is taken back by events of the opposite sign at the new
        version's time (so what was known before it stays as it was). Its line events stay (duplicate and
        same-day matches never match a claim with its own id; peer support counts keep its lines).
        """
        specialty = self.specialty_for(claims, cache)
        ids = claims["claim_id"].astype(str).to_numpy(dtype=object)
        times = claim_times(claims, order, cache)
        self._supersede(ids, times)
        for name, (keys, t, vals, payload) in claim_events(
            claims, lines, la, specialty, order, cache, self._coder()
        ).items():
            self.tables[name].append(keys, t, table_values(name, vals), payload)
        keys = claim_entity_keys(claims, specialty, cache, la)
        hashes = cache.get("_content_hash") if cache is not None else None  # given by the service
        if hashes is None or len(hashes) != len(ids):
            hashes = np.zeros(len(ids), dtype=np.int64)  # content unknown
        extra = {
            "claim_id": ids,
            **{k: keys[k] for k in KEYED_ENTITIES},
            "content_hash": np.asarray(hashes, dtype=np.int64),
            "time": np.asarray(times, dtype=np.int64),
        }
        self.extra_claim_keys.append(extra)  # turned into a frame lazily (see all_claim_keys)
        cols = [extra[k] for k in KEYED_ENTITIES]
        for i, cid in enumerate(ids.tolist()):
            self._recent[cid] = (int(extra["content_hash"][i]), int(extra["time"][i]), *(c[i] for c in cols))
        self.next_order = max(self.next_order, int(np.max(order)) + 1 if len(order) else 0)

    def versions(self, claim_ids) -> list[tuple[int, int] | None]:
        """(content hash, time) of the recorded version of each claim id (hash 0: a training claim, content
        unknown), None for ids never recorded."""
        out: list[tuple[int, int] | None] = []
        for cid in claim_ids:
            row = self._known(cid)
            out.append(None if row is None else (row[0], row[1]))
        return out

    def _known(self, cid: str) -> tuple | None:
        """(content hash, time, provider, patient, payer, specialty, procedure) of a recorded claim id."""
        got = self._recent.get(cid)
        if got is not None:
            return got
        keys = self.claim_keys
        if not len(keys):
            return None
        try:
            i = keys.index.get_loc(cid)
        except KeyError:
            return None
        if not isinstance(i, (int, np.integer)):  # not unique (an old state): the last one
            i = int(np.flatnonzero(np.atleast_1d(keys.index == cid))[-1])
        row = keys.iloc[int(i)]
        h = int(row["content_hash"]) if "content_hash" in keys.columns else 0
        t = int(row["time"]) if "time" in keys.columns else -1
        return (h, t, *(row[k] for k in KEYED_ENTITIES))

    def _supersede(self, ids: np.ndarray, times: np.ndarray) -> None:
        """Take back the entity-table events of the previous versions of these claim ids (see add_claims)."""
        for cid, t_new in zip(ids.tolist(), np.asarray(times).tolist()):
            row = self._known(cid)
            if row is None or row[1] < 0:
                continue
            t_old = row[1]
            keys = dict(zip(KEYED_ENTITIES, row[2:]), all="all")
            for name in _ENTITY_TABLES:
                table = self.tables.get(name)
                if table is None or keys[name] is None or (isinstance(keys[name], float) and keys[name] != keys[name]):
                    continue
                k = np.array([keys[name]], dtype=object)
                # the previous version's own event: the sums over [t_old, t_old + 1) (claim times are unique)
                old = table.query(k, np.array([t_old + 1]))[0] - table.query(k, np.array([t_old]))[0]
                if np.any(old != 0):
                    table.append(k, np.array([t_new], dtype=np.int64), -old)

    def _coder(self) -> KeyCoder:
        if not isinstance(self.tables, Tables):
            self.tables = Tables(self.tables)
        return self.tables.coder

    def all_claim_keys(self) -> pd.DataFrame:
        if self.extra_claim_keys:
            extra = [
                e
                if isinstance(e, pd.DataFrame)
                else pd.DataFrame(
                    {k: v for k, v in e.items() if k != "claim_id"}, index=pd.Index(e["claim_id"], name="claim_id")
                )
                for e in self.extra_claim_keys
            ]
            self.claim_keys = pd.concat([self.claim_keys, *extra])
            self.claim_keys = self.claim_keys[~self.claim_keys.index.duplicated(keep="last")]
            self.extra_claim_keys = []
            self._recent = {}
        return self.claim_keys

    # ------------------------------------------------------------------ compaction
    def compacted(self) -> "HistoryState":
        """This state if it is compact already (:attr:`compaction` set), else :meth:`compact` of it."""
        return self if self.compaction else self.compact()

    def compact(self, retention_days: int = RETENTION_DAYS, recoupment_days: int = RECOUPMENT_DAYS) -> "HistoryState":
        """A copy of the state for the service, whose size grows with the number of keys and the recent
        window, not with the history's length (docs/scale.md, "The service's state"). With ``last`` the day
        of the latest event and the cutoff the start of day ``last - retention_days``:

        - per-key and global tables (entities, procedure lines): each key's events before the cutoff are
          folded into one (:meth:`EventTable.fold_before`): sums and latest payloads asked at the cutoff or
          later are the full state's, bit for bit;
        - ``dup`` and ``sameday`` (keyed by service date, read event by event): the keys with an event since
          the cutoff are kept whole, the others dropped (a claim for a service date before the cutoff is not
          compared with them); the same-day vocabulary keeps only the ids the kept duplicate keys use;
        - claim keys: the version (content hash, time) of the claims since the cutoff, so retries and
          replacements of them are handled as by the full state; older claims keep their entity keys with
          the version unknown (a replacement of one supersedes nothing: its old version stays counted, as
          with a state saved before versions were kept); claims submitted before ``last - recoupment_days``
          are dropped (a recoupment of one is skipped, like one of a claim the state never held).

        Exact for claims submitted from ``last - retention_days + LOOKBACK_DAYS`` on (``exact_from`` in
        :attr:`compaction`). This state is not changed (its deltas are merged)."""
        for table in self.tables.values():
            table.merge()
        return compact_state(
            iter(self.tables.items()),
            _copy_coder(self._coder()),
            self.all_claim_keys().copy(),
            self.latest_day(),
            specialty_of=dict(self.specialty_of),
            coverage=self.coverage,
            next_order=self.next_order,
            recoupment_seen=set(self.recoupment_seen),
            refresh_info=dict(self.refresh_info),
            retention_days=retention_days,
            recoupment_days=recoupment_days,
        )

    def new_recoupments(self, recoupments: pd.DataFrame) -> pd.DataFrame:
        """The rows :meth:`add_recoupments` would add: of claims the state holds, not seen before (by
        :func:`recoupment_keys`), the first of rows that share a key."""
        if not len(recoupments):
            return recoupments
        rk = recoupment_keys(recoupments)
        seen = self.recoupment_seen
        fresh = np.fromiter((k not in seen for k in rk.tolist()), dtype=bool, count=len(rk))
        fresh &= ~pd.Series(rk, dtype=object).duplicated().to_numpy()
        ids = recoupments["claim_id"].astype(str).to_numpy(dtype=object)
        recent = self._recent
        known = np.fromiter((c in recent for c in ids.tolist()), dtype=bool, count=len(ids))
        if len(self.claim_keys):
            known |= pd.Index(ids, dtype=object).isin(self.claim_keys.index)
        return recoupments[fresh & known]

    def _keys_of(self, claim_ids: np.ndarray) -> pd.DataFrame:
        """The entity keys of these known claim ids (as :meth:`all_claim_keys` rows), without folding the
        recently recorded claims into ``claim_keys``."""
        uniq = list(dict.fromkeys(claim_ids.tolist()))
        rows = []
        for c in uniq:
            row = self._known(c)
            if row is None:
                raise KeyError(f"claim {c!r} is not in the state")  # new_recoupments keeps known claims only
            rows.append(row[2:])
        return pd.DataFrame(rows, columns=list(KEYED_ENTITIES), index=pd.Index(uniq, name="claim_id", dtype=object))

    def add_recoupments(self, recoupments: pd.DataFrame) -> int:
        """Record new recoupments of known claims, each once (:meth:`new_recoupments`: one seen by an
        earlier call, or twice in this one, is skipped); returns how many were recorded. Recoupments of
        claims the state does not hold are skipped and not remembered (they count once their claim is in)."""
        rec = self.new_recoupments(recoupments)
        if not len(rec):
            return 0
        keys = self._keys_of(rec["claim_id"].astype(str).to_numpy(dtype=object))
        for name, (k, times, vals, payload) in recoupment_events(rec, keys).items():
            self.tables[name].append(k, times, table_values(name, vals), payload)
        self.recoupment_seen.update(recoupment_keys(rec).tolist())
        return len(rec)

    def warm_up(self) -> None:
        """Build what the first lookups would otherwise build (the tables' pending events merged, the lookups of
        their keys and of the key vocabularies, the claim ids' hash table): at 10M claims the service's first claim
        took 12 s without them."""
        for table in self.tables.values():
            table.merge()
            if len(table.keys):
                table.keys.get_indexer(table.keys[:1])
        for vocab in self._coder().vocabs.values():
            index = vocab.values()
            if len(index):
                index.get_indexer(index[:1])
        keys = self.claim_keys
        if len(keys):
            keys.index.get_loc(keys.index[0])  # builds the hash table (an old state's ids may repeat)

    def latest_day(self) -> pd.Timestamp | None:
        """The date of the latest event the state holds (claim or recoupment), None when empty."""
        table = self.tables.get("all")
        if table is None:
            return None
        t = [int(table.times.max())] if len(table.times) else []
        t += [max(item[0] for item in d) for d in table.delta.values() if len(d)]
        if not t:
            return None
        return pd.Timestamp(day_of_time(max(t)), unit="D")

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write the state into ``directory`` atomically: a temporary folder next to it (0700, files 0600,
        each fsynced), renamed in place of the previous one."""
        return _publish(Path(directory), self._write)

    def n_events(self) -> int:
        """Events held, all tables."""
        return int(sum(len(t.times) for t in self.tables.values()))

    def _write(self, directory: Path) -> None:
        for name, table in self.tables.items():
            _write_events(directory, name, table)
        _write_rest(
            directory,
            tables=sorted(self.tables),
            coder=self._coder(),
            claim_keys=self.all_claim_keys(),
            coverage=self.coverage,
            recoupment_seen=self.recoupment_seen,
            next_order=self.next_order,
            specialty_of=self.specialty_of,
            refresh_info=self.refresh_info,
            compaction=self.compaction,
        )

    @classmethod
    def load(cls, directory: str | Path) -> "HistoryState":
        directory = Path(directory)
        manifest = json.loads((directory / "state.json").read_text())
        if "vocabs" not in manifest:
            raise RecoupError(
                f"the history state in {directory} was saved by an older version (string keys); "
                "rebuild it from the history (retrain or HistoryState.from_history)"
            )
        coder = KeyCoder(
            {
                name: Vocab.from_frame(pd.read_parquet(directory / f"vocab_{name}.parquet"))
                for name in manifest["vocabs"]
            }
        )
        tables = Tables(
            {
                name: EventTable.from_frame(pd.read_parquet(directory / f"events_{name}.parquet"))
                for name in manifest["tables"]
            },
            coder=coder,
        )
        keys = pd.read_parquet(directory / "claim_keys.parquet").set_index("claim_id")
        for col, unknown in zip(VERSION_COLUMNS, (0, -1)):  # a state saved before versions were kept
            if col not in keys.columns:
                keys[col] = np.full(len(keys), unknown, dtype=np.int64)
        coverage = pd.read_parquet(directory / "coverage.parquet") if manifest["has_coverage"] else None
        if coverage is not None:
            for c in ("coverage_start", "coverage_end"):
                coverage[c] = coverage[c].astype("datetime64[s]")
        seen: set[str] = set()
        if manifest.get("has_recoupment_seen"):
            seen = set(pd.read_parquet(directory / "recoupment_seen.parquet")["key"].tolist())
        release_memory()  # the Parquet reads' and the builds' temporaries: back to the OS (the service's RSS)
        return cls(
            tables=tables,
            claim_keys=keys,
            specialty_of=manifest["specialty_of"],
            coverage=coverage,
            next_order=int(manifest["next_order"]),
            recoupment_seen=seen,
            refresh_info=manifest.get("refresh_info") or {},
            compaction=manifest.get("compaction") or {},
        )


#: the largest retention a compaction takes (100 years)
MAX_DAYS = 36_500


class SavedState:
    """A compact state already written to a folder of this machine (:meth:`HistoryState.save`): the cluster's
    training writes the bundle's state as soon as it is built, so the command does not hold it in memory through
    training; :meth:`save` copies it where the bundle goes. The folder is removed with this object (or at exit)."""

    def __init__(self, directory: Path, events: int, compaction: dict) -> None:
        self.directory, self.events, self.compaction = directory, events, compaction
        self._remove = weakref.finalize(self, shutil.rmtree, str(self.directory), True)

    @classmethod
    def of(cls, state: HistoryState, directory: str | Path) -> "SavedState":
        """``state`` saved to ``directory``."""
        return cls(state.save(directory), state.n_events(), dict(state.compaction))

    def compacted(self) -> "SavedState":
        return self

    def n_events(self) -> int:
        return self.events

    def load(self) -> HistoryState:
        return HistoryState.load(self.directory)

    def save(self, directory: str | Path) -> Path:
        """Copy the state's files into ``directory`` atomically (as :meth:`HistoryState.save` writes them)."""

        def copy(tmp: Path) -> None:
            for f in self.directory.iterdir():
                shutil.copyfile(f, tmp / f.name)

        try:
            return _publish(Path(directory), copy)
        except OSError as e:
            raise RecoupError(f"{directory}: cannot write the history state ({e.strerror or e})") from None


def _compaction(last: pd.Timestamp | None, retention_days: int, recoupment_days: int) -> tuple[int | None, int]:
    """(the day of ``last``, the cutoff time) of a compaction, its bounds checked."""
    for name, days, low in (
        ("retention_days", retention_days, LOOKBACK_DAYS),
        ("recoupment_days", recoupment_days, retention_days),
    ):
        if not isinstance(days, (int, np.integer)) or not low <= days <= MAX_DAYS:
            raise RecoupError(f"{name} must be a whole number of days from {low} to {MAX_DAYS}, got {days!r}")
    # nothing to fold in an empty state (the tables are copied all the same: the two states are independent)
    last_day = None if last is None else int(day_number(np.array([last.to_datetime64()]))[0])
    cutoff = (
        np.iinfo(np.int64).min if last_day is None else int(time_of_day_start(np.array([last_day - retention_days]))[0])
    )
    return last_day, cutoff


def _compact_tables(
    tables: Iterator[tuple[str, EventTable]], cutoff: int, coder: KeyCoder, renumber: bool
) -> Iterator[tuple[str, EventTable]]:
    """Each full table compacted as it comes (the duplicate table's same-day ids renumbered in ``coder``)."""
    for name, table in tables:
        out = recent_keys(table, cutoff) if name in SERVICE_DATE_TABLES else table.fold_before(cutoff)
        del table
        if name == "dup" and renumber:
            _renumber_sameday(out, coder)
        yield name, out


def _compact_keys(
    keys: pd.DataFrame, last: pd.Timestamp | None, last_day: int | None, cutoff: int, retention_days: int,
    recoupment_days: int,
) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """The claim keys of a compact state and the ``compaction`` info."""
    info: dict = {"retention_days": int(retention_days), "recoupment_days": int(recoupment_days)}
    if last is None or last_day is None:
        return keys, info
    t = keys["time"].to_numpy(dtype=np.int64, copy=True)
    old = (t >= 0) & (t < cutoff)
    keys.loc[old, "content_hash"] = 0
    keys.loc[old, "time"] = -1
    gone = (t >= 0) & (t < int(time_of_day_start(np.array([last_day - recoupment_days]))[0]))
    keys = keys[~gone]
    info.update(
        last_day=str(last.date()),
        cutoff_day=str((last - pd.Timedelta(days=retention_days)).date()),
        exact_from=str((last - pd.Timedelta(days=retention_days - LOOKBACK_DAYS)).date()),
        claims_dropped=int(gone.sum()),
        versions_dropped=int((old & ~gone).sum()),
    )
    return keys, info


def compact_state(
    tables: Iterator[tuple[str, EventTable]],
    coder: KeyCoder,
    keys: pd.DataFrame,
    last: pd.Timestamp | None,
    *,
    specialty_of: dict[str, str],
    coverage: pd.DataFrame | None,
    next_order: int,
    recoupment_seen: set | None = None,
    refresh_info: dict | None = None,
    retention_days: int = RETENTION_DAYS,
    recoupment_days: int = RECOUPMENT_DAYS,
) -> HistoryState:
    """The compact state (:meth:`HistoryState.compact`) of the full tables given one at a time (each compacted
    as it comes: a caller building them one by one never holds two full tables), the claim keys and the key coder
    (both owned: changed in place) and the date of the latest event (``last``)."""
    last_day, cutoff = _compaction(last, retention_days, recoupment_days)
    out = Tables(dict(_compact_tables(tables, cutoff, coder, last_day is not None)), coder=coder)
    keys, info = _compact_keys(keys, last, last_day, cutoff, retention_days, recoupment_days)
    return HistoryState(
        tables=out,
        claim_keys=keys,
        specialty_of=specialty_of,
        coverage=coverage,
        next_order=next_order,
        recoupment_seen=recoupment_seen if recoupment_seen is not None else set(),
        refresh_info=refresh_info if refresh_info is not None else {},
        compaction=info,
    )


def save_compact_state(
    directory: str | Path,
    tables: Iterator[tuple[str, EventTable]],
    coder: KeyCoder,
    keys: pd.DataFrame,
    last: pd.Timestamp | None,
    *,
    specialty_of: dict[str, str],
    coverage: pd.DataFrame | None,
    next_order: int,
) -> "SavedState":
    """:func:`compact_state` written to ``directory`` as it is made (the files of :meth:`HistoryState.save`,
    published atomically): each table is written and dropped as soon as it is compacted, so the caller never holds
    the compact state either (at 10M claims it is ~6 GB in memory)."""
    last_day, cutoff = _compaction(last, RETENTION_DAYS, RECOUPMENT_DAYS)
    counted: dict = {}

    def write(tmp: Path) -> None:
        names, events = [], 0
        for name, table in _compact_tables(tables, cutoff, coder, last_day is not None):
            _write_events(tmp, name, table)
            names.append(name)
            events += len(table.times)
            del table
        ck, info = _compact_keys(keys, last, last_day, cutoff, RETENTION_DAYS, RECOUPMENT_DAYS)
        _write_rest(
            tmp,
            tables=sorted(names),
            coder=coder,
            claim_keys=ck,
            coverage=coverage,
            recoupment_seen=set(),
            next_order=next_order,
            specialty_of=specialty_of,
            refresh_info={},
            compaction=info,
        )
        counted.update(events=events, compaction=info)

    try:
        folder = _publish(Path(directory), write)
    except OSError as e:
        raise RecoupError(f"{directory}: cannot write the history state ({e.strerror or e})") from None
    return SavedState(folder, counted["events"], counted["compaction"])


def _copy_coder(coder: KeyCoder) -> KeyCoder:
    """A key coder of its own (vocabularies copied: the two states record claims independently)."""
    return KeyCoder({name: Vocab(v.values().copy()) for name, v in coder.vocabs.items()})


def recent_keys(table: EventTable, since: int) -> EventTable:
    """``table`` with only the keys that have an event at or after ``since``, each with all its events (rows
    copied: the same running sums and payloads, nothing recomputed)."""
    table.merge()
    counts = np.diff(table.offsets)
    last = np.full(len(counts), np.iinfo(np.int64).min, dtype=np.int64)
    has = counts > 0
    last[has] = table.times[table.offsets[1:][has] - 1]
    keep = last >= since
    ev = np.repeat(keep, counts)
    offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(counts[keep], out=offsets[1:])
    return EventTable(
        columns=list(table.columns),
        keys=table.keys[keep],
        offsets=offsets,
        times=table.times[ev],
        prefix=np.concatenate([table.prefix[:1], table.prefix[1:][ev]]),
        payload=None if table.payload is None else table.payload[ev],
        compensation=None if table.compensation is None else table.compensation[keep],
    )


def _renumber_sameday(dup: EventTable, coder: KeyCoder) -> None:
    """Keep in the ``sameday`` vocabulary only the same-day keys of the kept duplicate keys (``dup`` keys are
    ``pack(sameday id, code id)``; nothing else reads that vocabulary), renumbered in their order."""
    vocab = coder.vocabs.get("sameday")
    if vocab is None or not len(vocab) or dup.keys.dtype != np.int64:
        return
    k = dup.keys.to_numpy(dtype=np.int64)
    ok = k >= 0
    hi, lo = k >> 31, k & ((1 << 31) - 1)
    used = np.unique(hi[ok])
    new = k.copy()
    new[ok] = pack(np.searchsorted(used, hi[ok]), lo[ok])
    dup.keys = pd.Index(new, dtype=np.int64)
    coder.vocabs["sameday"] = Vocab(pd.Index(vocab.values().to_numpy()[used], dtype=np.int64))
