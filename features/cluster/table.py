"""The feature table on a Dask cluster, identical to :func:`features.pipeline.build_feature_table` (docs/scale.md,
"The feature table on a cluster").

Time partitions with a carried summary ("a prefix scan over time"). The claims are split by submission month into
partitions ``p`` of ``months`` months, ``[a_p, b_p)``. Each partition's state ``T_p`` holds every event table as
the single process's full state answers it at the partition's claim times:

- ``T_p = S_p`` extended by the events of partition p (its claims' events, and the recoupments dated in it:
  :meth:`EventTable.extended` continues each key's running sums from the summary's, bitwise);
- ``S_{p+1} = fold(T_p)``: the windowed tables (``patient``, ``provider``: queried 30, 90, 180 and 365 days back)
  folded before ``a_{p+1} - W`` (:data:`LOOKBACK_DAYS`), the tables whose events are only summed before ``a_{p+1}``
  (queried only at a claim's own time); the enumerated tables (same-day lines, duplicates: their earlier events are
  listed) keep every event, so every partition sees what the full state shows. The end state
  (:meth:`ClusterTable.state`, for the service) folds their keys quiet for :data:`KEEP_DAYS` days.

The chain ``S_0 -> T_0 -> S_1 -> ...`` is a sequence of tasks (its state grows with the keys and the window, and
with the lines of the enumerated tables); :func:`features.pipeline.compute_features` of each partition's claims
against a view of its ``T_p`` (the keys they ask) runs in parallel tasks. Partitions are read from the store by
month (a plain store: one version per claim, no 835 part), each task reading only its months. Recoupments get their
claim's entity keys by a hash join on claim_id in :data:`BUCKETS` buckets. The within-day order is the single
process's: each claim's order is the number of claims in earlier partitions plus its rank by (submitted date, row
position) within its months, read in manifest order.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from features.contract import History
from features.engine.events import EventTable, day_number, day_of_time, encode_time, time_of_day_start, PHASE_CLAIM
from features.engine.lines import prepare_lines
from features.engine.state import (
    ENUMERATED_TABLES,
    RETENTION_DAYS,
    UNKNOWN_SPECIALTY,
    HistoryState,
    SavedState,
    compact_state,
    save_compact_state,
    recent_keys,
    submission_order,
)
from features.engine.tables import (
    KEYED_ENTITIES,
    TABLE_COLUMNS,
    KeyCoder,
    Tables,
    claim_entity_keys,
    claim_events,
    recoupment_events,
    table_values,
)
from features.cluster.parts import remove, stream_items, stream_writer, subfolder
from features.errors import RecoupError
from features.rulebook import Rulebook, load_rulebook

log = logging.getLogger(__name__)

#: W: the longest look-back of any feature (patient claims in the last 365 days) plus a day
LOOKBACK_DAYS = 366
#: R: the end state's enumerated tables (same-day lines, duplicates) keep every event of the keys active in the last
#: R days (one folded event per other key)
KEEP_DAYS = 365
#: the tables queried before a claim's own time (windows of 30/365 days: patient; 90/180 days: provider)
WINDOWED_TABLES = ("patient", "provider")
#: buckets of the hash join of recoupments with their claims' keys
BUCKETS = 8
#: months per partition, by default: at most this many ...
DEFAULT_MONTHS = 3
#: ... and as many as keep a partition within this many claims (a partition's features take about the single
#: process's memory for its claims: ~1.7 GB at 300k)
PARTITION_CLAIMS = 300_000
#: partitions read ahead of the last one whose features are done (their rows are what a worker holds) ...
AHEAD = 2
#: ... and in a history of more than LARGE_CLAIMS claims, whose chain state is large (~0.8 GB at 10M claims): with
#: two read ahead, a worker's peaks passed its 8 GB limit at 10M
AHEAD_LARGE, LARGE_CLAIMS = 1, 5_000_000
MAX_MONTHS = 120


# ---------------------------------------------------------------------- the plan
def month_start_day(month: str) -> int:
    """The day number (days since 1970-01-01) of a month's first day."""
    return int(np.datetime64(f"{month}-01", "D").astype(np.int64))


def month_of_days(days: np.ndarray) -> np.ndarray:
    """The month (YYYY-MM) of each day number."""
    return np.asarray(days, dtype="datetime64[D]").astype("datetime64[M]").astype(str)


@dataclass(frozen=True)
class Plan:
    """Partitions of the submission months: ``groups[p]`` the months of partition p (consecutive, sorted)."""

    groups: list[list[str]]

    def starts(self) -> list[int]:
        return [month_start_day(g[0]) for g in self.groups]

    def partition_of_months(self, months: np.ndarray) -> np.ndarray:
        """The partition holding each month (a month before the first: 0; between two: the earlier one)."""
        firsts = np.array([g[0] for g in self.groups])
        return np.maximum(np.searchsorted(firsts, np.asarray(months, dtype=str), side="right") - 1, 0)


def make_plan(months: list[str], per_partition: int) -> Plan:
    if not 1 <= per_partition <= MAX_MONTHS:
        raise RecoupError(f"months per partition: expected 1 to {MAX_MONTHS}, got {per_partition}")
    months = sorted(set(months))
    if not months:
        raise RecoupError("the history has no claims")
    return Plan([months[i : i + per_partition] for i in range(0, len(months), per_partition)])


# ---------------------------------------------------------------------- sources
@dataclass
class StoreSource:
    """A plain store read by month: the claims parts of each month and the line parts (with their claims' months)."""

    path: str
    claim_parts: dict[str, list[Any]]  # month -> parts
    line_parts: list[Any]
    recoupment_parts: list[Any]
    providers: list[Any]
    coverage: list[Any]


def _months_source(source: Any, months: list[str]) -> Any:
    """What a task reading ``months``' claims needs of the store (their claims parts and the line parts whose
    claims may fall in them), not the whole manifest: every task argument is a copy on the worker (10M claims:
    ~8,600 parts each). A History (a future) as it is."""
    if not isinstance(source, StoreSource):
        return source
    lo, hi = months[0], months[-1]
    lines = [
        p
        for p in source.line_parts
        if (p.ref_min is None or p.ref_min <= hi) and (p.ref_max is None or p.ref_max >= lo)
    ]
    claims = {m: source.claim_parts[m] for m in months if m in source.claim_parts}
    return StoreSource(source.path, claims, lines, [], [], [])


def _recoupment_source(source: Any, months: list[str] | None) -> Any:
    """What a task reading the recoupments of ``months`` (None: all) needs of the store."""
    if not isinstance(source, StoreSource):
        return source
    parts = [p for p in source.recoupment_parts if months is None or p.month in months]
    return StoreSource(source.path, {}, [], parts, [], [])


def _reference_source(source: Any) -> Any:
    """What the task reading the providers and the coverage needs of the store."""
    if not isinstance(source, StoreSource):
        return source
    return StoreSource(source.path, {}, [], [], source.providers, source.coverage)


def _store_source(store: Path) -> StoreSource | None:
    """The store's parts when its contract view is its rows as stored (one version per claim, no 835 part), else
    None."""
    from features.store import manifest as mf
    from features.store.read import plain_parts

    with mf.store_errors(store):
        listed = plain_parts(store)
        if listed is None or listed.get("reviews"):  # review refunds are netted against recoupments across months
            return None
        conn = mf.connect(store, readonly=True)
        try:
            claims = mf.live_parts(conn, "claims")
            by_month: dict[str, list[Any]] = {}
            for p in claims:
                by_month.setdefault(p.month or "", []).append(p)
            return StoreSource(
                str(store),
                by_month,
                mf.live_parts(conn, "claim_lines"),
                mf.live_parts(conn, "recoupments"),
                mf.live_parts(conn, "providers"),
                mf.live_parts(conn, "coverage"),
            )
        finally:
            conn.close()


def _typed(raw: pd.DataFrame, table: str) -> pd.DataFrame:
    """One table typed and checked by the contract's rules (what ``read_store`` applies to each table)."""
    import warnings

    from features.contract import ContractError, validate_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df, problems, _ = validate_table(raw, table, table)
    if problems:
        raise ContractError(problems)
    return df


def _read_parts(store: str, parts: list[Any], filter_ids: Any = None) -> pd.DataFrame | None:
    """Rows of these parts (in their manifest order), optionally only those of some claim ids, as read_store reads
    them."""
    from features.store.read import read_part_rows

    if not parts:
        return None
    return read_part_rows(store, parts, filter_ids)


def _reference_tables(source: StoreSource | History) -> tuple[dict[str, str], pd.DataFrame | None]:
    """(specialty of each NPI, coverage spans): read once, small next to the claims."""
    if isinstance(source, History):
        providers, coverage = source.providers, source.coverage
    else:
        raw_p, raw_c = _read_parts(source.path, source.providers), _read_parts(source.path, source.coverage)
        providers = None if raw_p is None else _typed(raw_p, "providers")
        coverage = None if raw_c is None else _typed(raw_c, "coverage")
    specialty_of: dict[str, str] = {}
    if providers is not None and len(providers):
        specialty_of = dict(
            zip(providers["npi"].astype(str), providers["taxonomy_code"].astype("string").fillna(UNKNOWN_SPECIALTY))
        )
    return specialty_of, coverage


def _frame_bytes(df: pd.DataFrame) -> int:
    """A frame's memory, text cells counted at ~60 bytes (no per-cell walk: Dask asks often)."""
    if not isinstance(df, pd.DataFrame):
        return 0
    n = int(df.memory_usage(index=True, deep=False).sum())
    return n + 60 * len(df) * sum(1 for t in df.dtypes if pd.api.types.is_object_dtype(t))


def _table_bytes(tab: EventTable) -> int:
    arrays = [tab.times, tab.offsets, tab.prefix] + [a for a in (tab.payload, tab.compensation) if a is not None]
    n = sum(a.nbytes for a in arrays) + 8 * len(tab.keys)
    return n + (60 * len(tab.keys) if tab.keys.dtype == object else 0)


class ChainState(HistoryState):
    """A state of the chain (``T_p``, its view, ``S_p``) that tells Dask its size (for spilling to disk)."""

    def __sizeof__(self) -> int:
        return sum(_table_bytes(t) for t in self.tables.values()) + sum(
            8 * len(v) for v in self.tables.coder.vocabs.values()
        )


@dataclass
class PartData:
    """One partition's claims, lines, line frame, order within the partition, specialties and entity keys."""

    claims: pd.DataFrame
    lines: pd.DataFrame
    la: pd.DataFrame
    local_order: np.ndarray
    specialty: np.ndarray
    keys: pd.DataFrame  # claim_id, KEYED_ENTITIES, _part
    first_month: str = ""
    extra: dict = field(default_factory=dict)

    def __sizeof__(self) -> int:  # what Dask's memory manager counts (spilling): the frames' memory
        return sum(_frame_bytes(f) for f in (self.claims, self.lines, self.la, self.keys)) + 16 * len(self.claims)


def _part_data(
    source: StoreSource | History,
    months: list[str],
    index: int,
    specialty_of: dict[str, str],
    rulebook: Rulebook,
    until: pd.Timestamp | None = None,
) -> PartData:
    """Read (store) or cut (history) the claims submitted in ``months`` (and by ``until``) and their lines, in the
    row order of a full read."""
    if isinstance(source, History):
        c = source.claims
        m = month_of_days(c["submitted_date"].to_numpy(dtype="datetime64[D]"))
        keep = np.isin(m, months)
        if until is not None:
            keep &= (c["submitted_date"] <= until).to_numpy(dtype=bool)
        claims = c[keep].reset_index(drop=True)
        ids = claims["claim_id"].astype(str)
        ln = source.claim_lines
        lines = ln[ln["claim_id"].astype(str).isin(ids)].reset_index(drop=True)
    else:
        parts = [p for mo in months for p in source.claim_parts.get(mo, [])]
        parts.sort(key=lambda p: (p.ingest, p.file))  # manifest order, as a full read
        claims = _typed(_read_parts(source.path, parts), "claims")
        if until is not None:
            claims = claims[(claims["submitted_date"] <= until).to_numpy(dtype=bool)].reset_index(drop=True)
        lo, hi = months[0], months[-1]
        lparts = [
            p
            for p in source.line_parts
            if (p.ref_min is None or p.ref_min <= hi) and (p.ref_max is None or p.ref_max >= lo)
        ]
        ids = claims["claim_id"].astype(str).to_numpy(dtype=object)
        raw = _read_parts(source.path, lparts, filter_ids=ids)
        if raw is None:
            raise RecoupError(f"{source.path}: claims of {lo}..{hi} have no lines in the store")
        lines = _typed(raw, "claim_lines")
    la = prepare_lines(claims, lines, rulebook)
    npi = claims["billing_npi"].astype(str)
    specialty = npi.map(specialty_of).fillna(UNKNOWN_SPECIALTY).to_numpy(dtype=object)
    cache: dict = {}
    keys = claim_entity_keys(claims, specialty, cache, la)
    kf = pd.DataFrame({"claim_id": claims["claim_id"].astype(str).to_numpy(dtype=object)})
    for k in KEYED_ENTITIES:
        kf[k] = keys[k]
    kf["_part"] = np.int64(index)
    return PartData(claims, lines, la, submission_order(claims), specialty, kf, months[0])


@dataclass
class PartKeys:
    """What the whole plan needs of a partition before its turn (small: no claim rows, no lines): every claim's
    entity keys (``keys``: claim_id, KEYED_ENTITIES, ``_part``), their submission days and order within the
    partition, the number of claims and lines, and the range of the lines' service-to-submission lags in days
    (None: a line without a service date, no bound)."""

    keys: pd.DataFrame
    day: np.ndarray
    local_order: np.ndarray
    n_lines: int
    lags: tuple[int, int] | None
    last: pd.Timestamp | None = None  # the latest submission or payment date (None: no date)

    def __sizeof__(self) -> int:
        return _frame_bytes(self.keys) + 16 * len(self.day)


#: how the keys frames hold their text columns until the end state (which has the single process's object columns)
KEY_DTYPE = pd.ArrowDtype(pa.string())
#: a service day before this is no date (NaT read as days: the lags are then unbounded)
_NO_DAY = -(10**6)


def _lag_range(part: PartData) -> tuple[int, int] | None:
    """(min, max) over the partition's lines of submission day minus service day; None when a line has none."""
    la = part.la
    if not len(la):
        return (0, 0)
    day = np.asarray(la["day"].to_numpy(), dtype=np.int64)
    if (day < _NO_DAY).any():
        return None
    sub = day_number(part.claims["submitted_date"])[np.asarray(la["ci"].to_numpy(), dtype=np.int64)]
    lag = sub - day
    return int(lag.min()), int(lag.max())


def _part_keys(
    source: StoreSource | History,
    months: list[str],
    index: int,
    specialty_of: dict[str, str],
    rulebook: Rulebook,
    until: pd.Timestamp | None = None,
) -> PartKeys:
    """The partition read once for its keys (the recoupment join and the end state need every partition's): its
    rows are read again, in turn, for its events and features (a bounded number of partitions in memory)."""
    part = _part_data(source, months, index, specialty_of, rulebook, until)
    day = day_number(part.claims["submitted_date"])
    keys = part.keys.copy()
    for c in ("claim_id", *KEYED_ENTITIES):  # one buffer per column, not a Python string per cell (10M claims)
        keys[c] = keys[c].astype(KEY_DTYPE)
    dates = pd.concat([part.claims["submitted_date"], part.claims["paid_date"]]).dropna()
    last = pd.Timestamp(dates.max()) if len(dates) else None
    return PartKeys(keys, day, part.local_order, len(part.lines), _lag_range(part), last)


def _span(ranges: list[tuple[int, int] | None]) -> int | None:
    """Days an event of the enumerated tables (keyed by service day) can be asked after it: the widest lag minus
    the narrowest (a claim submitted on T asks service days from T - max lag; their events were submitted from
    that day + min lag); None (every event kept) when some line has no service date."""
    if any(r is None for r in ranges):
        return None
    got = [r for r in ranges if r is not None]
    if not got:
        return 0
    return max(r[1] for r in got) - min(0, min(r[0] for r in got))


def _recoupments(
    source: StoreSource | History, months: list[str] | None, until: pd.Timestamp | None = None
) -> pd.DataFrame | None:
    """The recoupments dated in these months (None: all) and by ``until``, typed."""
    if isinstance(source, History):
        rec = source.recoupments
        if rec is None or not len(rec):
            return None
        if months is not None:
            m = month_of_days(rec["recouped_date"].to_numpy(dtype="datetime64[D]"))
            rec = rec[np.isin(m, months)].reset_index(drop=True)
    else:
        parts = [p for p in source.recoupment_parts if months is None or p.month in months]
        raw = _read_parts(source.path, parts)
        rec = None if raw is None else _typed(raw, "recoupments")
    if rec is not None and until is not None:
        rec = rec[(rec["recouped_date"] <= until).to_numpy(dtype=bool)].reset_index(drop=True)
    return rec


# ---------------------------------------------------------------------- the join of recoupments with claim keys
def _bucket_of(ids: pd.Series | np.ndarray, buckets: int) -> np.ndarray:
    h = pd.util.hash_array(pd.Series(ids).astype(str).to_numpy(dtype=object))
    return (h % np.uint64(buckets)).astype(np.int64)


def _split(df: pd.DataFrame | None, buckets: int) -> list[pd.DataFrame | None]:
    if df is None or not len(df):
        return [None] * buckets
    b = _bucket_of(df["claim_id"], buckets)
    return [df[b == i] for i in range(buckets)]


def _split_keys(part: PartKeys, buckets: int) -> list[pd.DataFrame | None]:
    return _split(part.keys, buckets)


def _join_bucket(keys: list[pd.DataFrame | None], recs: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    """Recoupments of one bucket with their claims' keys (inner: a recoupment of an unknown claim is dropped, as the
    single process's state does) and the partition of the claim (``_part``)."""
    r = [x for x in recs if x is not None and len(x)]
    k = [x for x in keys if x is not None and len(x)]
    if not r or not k:
        return None
    rec = pd.concat(r, ignore_index=True)
    ids = rec["claim_id"].astype(str).to_numpy(dtype=object)
    wanted = pd.Index(pd.unique(ids))
    k = [x[wanted.get_indexer(x["claim_id"].to_numpy(dtype=object)) >= 0] for x in k]  # only claims recouped
    kf = pd.concat(k, ignore_index=True).drop_duplicates("claim_id", keep="last")
    at = pd.Index(kf["claim_id"].to_numpy(dtype=object)).get_indexer(ids)
    hit = at >= 0
    rec = rec[hit].reset_index(drop=True)
    for c in (*KEYED_ENTITIES, "_part"):
        rec[c] = kf[c].to_numpy()[at[hit]]
    return rec


def _collect(joined: list[pd.DataFrame | None], col: str, value: int) -> pd.DataFrame | None:
    got = [j[j[col].to_numpy() == value] for j in joined if j is not None]
    got = [g for g in got if len(g)]
    return pd.concat(got, ignore_index=True) if got else None


def _tag(rec: pd.DataFrame | None, index: int) -> pd.DataFrame | None:
    if rec is None:
        return None
    rec = rec.copy()
    rec["_rp"] = np.int64(index)
    return rec


# ---------------------------------------------------------------------- the chain
#: a chain state on disk (written by each step, read by the next): a header, then each table in order
_STATE_NAME = "state-{:05d}.pkl"
#: a partition's events on disk (for the bundle's state): each table in order, with its events or None
_DELTA_NAME = "delta-{:05d}.pkl"


def _state_items(path: str | None) -> tuple[dict, Any]:
    """(header, the tables as an iterator of (name, EventTable)) of a chain state on disk (None: the empty state
    before the first partition)."""
    if path is None:
        return {"coder": KeyCoder(), "last_time": None}, None
    items = stream_items(path)
    return next(items), items


def load_state(path: str, specialty_of: dict[str, str]) -> ChainState:
    """A chain state written by :func:`_step`, whole."""
    header, items = _state_items(path)
    tables = Tables(dict(items), coder=header["coder"])
    return ChainState(
        tables=tables,
        claim_keys=pd.DataFrame(),
        specialty_of=specialty_of,
        coverage=None,
        next_order=header["next_order"],
    )


def _step(
    src: str | None,
    part: PartData,
    offset: int,
    recs: pd.DataFrame | None,
    specialty_of: dict[str, str],
    with_delta: bool,
    next_start_day: int | None,
    span: int | None,
    folder: str,
    index: int,
) -> HistoryState:
    """One step of the chain: ``S_p`` read from ``src`` (None: empty), ``T_p`` = it extended by partition p's claim
    and recoupment events (:meth:`EventTable.extended` continues each key's running sums bitwise), ``S_{p+1}`` =
    ``T_p`` folded (:func:`_fold_table`) and written to ``folder`` as state ``index``; with ``with_delta`` the
    partition's events too, per table (``delta-<index>.pkl``: what the bundle's state appends, see
    :meth:`ClusterTable.bundle_state`). Returns the view of ``T_p`` the partition's claims ask
    (:meth:`EventTable.select_keys`: the same answers, for the features task).

    Table by table: each table of ``S_p`` is read, extended, folded, written and dropped before the next is read,
    so a worker holds one table's versions at a time, not three states. The state on disk is what makes the chain
    restartable: a step retried after a lost worker reads its input again, it does not recompute the chain."""
    header, items = _state_items(src)
    coder = header["coder"]
    order = offset + part.local_order
    cache: dict = {}
    parts = [claim_events(part.claims, part.lines, part.la, part.specialty, order, cache, coder)]
    entity_keys = claim_entity_keys(part.claims, part.specialty, cache, part.la)
    if recs is not None and len(recs):
        ck = recs.drop_duplicates("claim_id")
        ck.index = pd.Index(ck["claim_id"].astype(str).to_numpy(dtype=object), dtype=object)
        parts.append(recoupment_events(recs, ck[list(KEYED_ENTITIES)]))
    times = [header["last_time"]] + [int(p[name][1].max()) for p in parts for name in p if len(p[name][1])]
    last_time = max((t for t in times if t is not None), default=None)
    if next_start_day is None:  # the last partition: fold everything before the day after the last event
        next_start_day = (0 if last_time is None else day_of_time(last_time)) + 1
    next_order = int(offset + len(part.claims))
    asked = Tables(coder=coder)
    with ExitStack() as files:
        put = files.enter_context(stream_writer(folder, _STATE_NAME.format(index)))
        put_delta = files.enter_context(stream_writer(folder, _DELTA_NAME.format(index))) if with_delta else None
        put({"coder": coder, "last_time": last_time, "next_order": next_order})  # the coder is final: events made
        for name, cols in TABLE_COLUMNS.items():
            old = _next_table(items, name, src)
            tab = old if old is not None else EventTable(columns=list(cols))
            del old
            got = [p.pop(name) for p in parts if name in p]
            events = None
            if got:
                keys = np.concatenate([g[0] for g in got])
                ts = np.concatenate([g[1] for g in got])
                vals = np.vstack([table_values(name, g[2]) for g in got])
                pays = [g[3] for g in got if g[3] is not None]
                payload = np.concatenate(pays) if pays and len(pays) == len(got) else None
                tab = tab.extended(keys, ts, vals, payload)
                events = (keys, ts, vals, payload)
            if put_delta is not None:
                put_delta((name, events))
            del events
            put((name, _fold_table(name, tab, next_start_day, None, span)))
            # what the partition's claims ask: only their keys (the same answers; small search indexes to build)
            q = entity_keys.get(name) if name in entity_keys else cache.get(_LINE_KEY_OF.get(name, ""))
            asked[name] = tab if q is None else tab.select_keys(q)
            del tab
    return ChainState(
        tables=asked, claim_keys=pd.DataFrame(), specialty_of=specialty_of, coverage=None, next_order=next_order
    )


def _next_table(items: Any, name: str, src: str | None) -> Any:
    """What the next item of a file read in order (a chain state, a partition's events) holds for table ``name``
    (None: no file)."""
    if items is None:
        return None
    got = next(items, None)
    if got is None or got[0] != name:
        raise RecoupError(f"{src}: no table {name!r} where expected (written by another version?)")
    return got[1]


#: the line keys (``features.engine.tables.line_keys``) each line table is asked by
_LINE_KEY_OF = {
    "dup": "dupkey",
    "sameday": "samekey",
    "proc": "code_id",
    "proc_dx": "proc_dx",
    "proc_pos": "proc_pos",
    "proc_plan": "proc_plan",
    "proc_dx1": "proc_dx1",
    "spec_proc": "spec_proc",
    "spec_proc_dx1": "spec_proc_dx1",
}


def _fold_table(
    name: str, tab: EventTable, next_start_day: int, keep_days: int | None = None, span: int | None = None
) -> EventTable:
    """One table of ``S_{p+1}``: windowed tables folded before ``a_{p+1} - W``, the others before ``a_{p+1}``; an
    enumerated table (``keep_days`` None) keeps every event of the keys a later claim can ask: keys (service days)
    whose latest event is before ``a_{p+1} - span`` are dropped (see :func:`_span`; None: none dropped), the others
    listed whole as the full state lists them; with ``keep_days`` folded but for the keys active in the last
    ``keep_days``."""
    start = int(time_of_day_start(np.array([next_start_day]))[0])
    if name in ENUMERATED_TABLES:
        if keep_days is None:
            if span is None:
                return tab
            return recent_keys(tab, int(time_of_day_start(np.array([next_start_day - span]))[0]))
        return tab.fold_before(start, int(time_of_day_start(np.array([next_start_day - keep_days]))[0]))
    window = int(time_of_day_start(np.array([next_start_day - LOOKBACK_DAYS]))[0])
    return tab.fold_before(window if name in WINDOWED_TABLES else start)


def _fold(state: HistoryState, keep_days: int | None = None) -> HistoryState:
    """The state after its last event, every table folded by :func:`_fold_table` before the next day."""
    last = max((int(t.times.max()) for t in state.tables.values() if len(t.times)), default=0)
    next_start_day = day_of_time(last) + 1
    folded = {name: _fold_table(name, tab, next_start_day, keep_days) for name, tab in state.tables.items()}
    return ChainState(
        tables=Tables(folded, coder=state.tables.coder),
        claim_keys=pd.DataFrame(),
        specialty_of=state.specialty_of,
        coverage=None,
        next_order=state.next_order,
    )


def _features(
    window: HistoryState,
    part: PartData,
    offset: int,
    coverage: pd.DataFrame | None,
    rulebook: Rulebook,
    months: list[str] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(X, hits) of the partition's claims (only those submitted in ``months`` when given)."""
    from features.pipeline import compute_features

    claims, lines, la, order = part.claims, part.lines, part.la, offset + part.local_order
    if months is not None:
        m = month_of_days(claims["submitted_date"].to_numpy(dtype="datetime64[D]"))
        keep = np.isin(m, months)
        if not keep.all():
            claims = claims[keep].reset_index(drop=True)
            ids = claims["claim_id"].astype(str)
            lines = lines[lines["claim_id"].astype(str).isin(ids)].reset_index(drop=True)
            la = prepare_lines(claims, lines, rulebook)
            order = order[keep]
    cov = coverage
    if coverage is not None and len(coverage):
        cov = coverage[coverage["patient_id"].astype(str).isin(claims["patient_id"].astype(str))]
    state = HistoryState(
        tables=window.tables,
        claim_keys=pd.DataFrame(),
        specialty_of=window.specialty_of,
        coverage=cov,
        next_order=window.next_order,
    )
    res = compute_features(claims, lines, state, rulebook, order=order, la=la, cache={})
    return res.X, res.hits


def _final_state(
    folded: HistoryState, keys: list[pd.DataFrame], coverage: pd.DataFrame | None, keep_days: int | None
) -> HistoryState:
    """The state after the last partition (every claim's keys with their times, the coverage), the enumerated
    tables folded but for the keys active in the last ``keep_days`` (None: as they are)."""
    if keep_days is not None:
        folded = _fold(folded, keep_days)
    return HistoryState(
        tables=folded.tables,
        claim_keys=_claim_keys(keys),
        specialty_of=folded.specialty_of,
        coverage=coverage,
        next_order=folded.next_order,
    )


def _claim_keys(keys: list[pd.DataFrame]) -> pd.DataFrame:
    """Every claim's keys as the single process's state holds them (index claim_id; the entity keys as object
    columns whose equal values share one string; version unknown: ``content_hash`` 0), from each partition's
    (the list is consumed: a frame held nowhere else is released once converted, so its Arrow strings and their
    Python copies are not both held for every claim; the bundle's state passes the only list)."""
    if not keys:
        ck = pd.DataFrame(columns=[*KEYED_ENTITIES, "time"])
        ck["content_hash"] = np.zeros(0, dtype=np.int64)
        ck.index = pd.Index([], dtype=object, name="claim_id")
        return ck[[*KEYED_ENTITIES, "content_hash", "time"]]
    shared: dict[str, dict] = {c: {} for c in KEYED_ENTITIES}
    cols: dict[str, list[np.ndarray]] = {c: [] for c in ("claim_id", *KEYED_ENTITIES, "time")}
    keys.reverse()
    while keys:
        kf = keys.pop()
        cols["claim_id"].append(_shared_strings(kf["claim_id"], None))
        for c in KEYED_ENTITIES:
            cols[c].append(_shared_strings(kf[c], shared[c]))
        cols["time"].append(kf["time"].to_numpy(dtype=np.int64))
        del kf
    index = pd.Index(np.concatenate(cols.pop("claim_id")), name="claim_id", dtype=object)
    ck = pd.DataFrame({c: np.concatenate(cols.pop(c)) for c in KEYED_ENTITIES}, index=index)
    ck["content_hash"] = np.zeros(len(ck), dtype=np.int64)
    ck["time"] = np.concatenate(cols.pop("time"))
    return ck  # the single process's columns, in its order


def _shared_strings(col: pd.Series, shared: dict | None) -> np.ndarray:
    """A text column as an object array whose equal values are one Python string, across calls when given the same
    ``shared`` (a patient's claims share it: 10M claims' entity keys take pointers, not 10M strings per column;
    pickled, each string is sent once); missing values None."""
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    values = np.asarray(pd.Series(uniques).to_numpy(dtype=object), dtype=object)
    if shared is not None and len(values):
        values = np.array([shared.setdefault(v, v) for v in values.tolist()] + [None], dtype=object)[:-1]
    out = values[np.maximum(codes, 0)] if len(values) else np.full(len(codes), None, dtype=object)
    out[codes < 0] = None
    return out


def _keys_with_time(part: PartKeys, offset: int) -> pd.DataFrame:
    kf = part.keys.copy()
    kf["time"] = encode_time(part.day, PHASE_CLAIM, offset + part.local_order)
    return kf


def _pick(seq: Any, i: int) -> Any:
    return seq[i]


def _offset(sizes: list[int]) -> int:
    return int(sum(sizes))


def _size(part: PartKeys) -> int:
    return len(part.day)


def _head(df: pd.DataFrame) -> pd.DataFrame:
    return df.iloc[:0]


def _x(pair: tuple) -> pd.DataFrame:
    return pair[0]


def _hits(pair: tuple) -> pd.DataFrame:
    return pair[1]


def _claims(part: PartData, months: list[str] | None = None) -> pd.DataFrame:
    """The partition's claim rows (only those submitted in ``months`` when given: the rows of its X)."""
    if months is None:
        return part.claims
    m = month_of_days(part.claims["submitted_date"].to_numpy(dtype="datetime64[D]"))
    return part.claims[np.isin(m, months)].reset_index(drop=True)


def _load(path: str) -> History:
    from features.contract import load_history

    return load_history(path)


def _months_of(history: History) -> dict[str, int]:
    """Claims submitted per month."""
    days = history.claims["submitted_date"].to_numpy(dtype="datetime64[D]")
    months, n = np.unique(month_of_days(days), return_counts=True)
    return {str(m): int(c) for m, c in zip(months, n)}


def auto_months(per_month: list[int]) -> int:
    """Months per partition: the most, up to :data:`DEFAULT_MONTHS`, whose partitions all hold at most
    :data:`PARTITION_CLAIMS` claims (one month when even one month holds more)."""
    m = DEFAULT_MONTHS
    while m > 1 and any(sum(per_month[i : i + m]) > PARTITION_CLAIMS for i in range(0, len(per_month), m)):
        m -= 1
    return m


def _rec_months(source: StoreSource | History) -> list[str]:
    if isinstance(source, History):
        rec = source.recoupments
        if rec is None or not len(rec):
            return []
        return sorted(set(month_of_days(rec["recouped_date"].to_numpy(dtype="datetime64[D]")).tolist()))
    return sorted({p.month for p in source.recoupment_parts if p.month})


# ---------------------------------------------------------------------- the table
@dataclass
class ClusterTable:
    """The feature table on the cluster: ``X`` (index claim_id, the columns and dtypes of build_feature_table's),
    ``hits``, ``claims`` (the claim rows, in the same partitions as X) and ``recoupments`` (each partition's claims'
    recoupments, for labels), as Dask DataFrames of computed partitions (None with a sink: ``sunk`` instead);
    :meth:`state` the folded state at the end."""

    X: Any
    hits: Any
    claims: Any
    recoupments: Any
    client: Any
    _end: Any  # (the path of the chain's state after the last partition, every partition's claim keys, the coverage)
    n_claims: int
    partitions: int
    n_lines: int = 0
    _recent: Any = None  # (the path of the state the bundle's is built from, the later partitions' events)
    last_date: Any = None  # a future: History.last_date of what was read
    sunk: list | None = None  # the sink's result per partition of features (see feature_table), as they come
    specialty_of: Any = None  # a future: the specialty of each NPI
    _spent: list = field(default_factory=list)  # the chain's states to remove once the sink's results are here

    def state(self, keep_days: int | None = KEEP_DAYS) -> HistoryState:
        """The folded state after the last claim (for the bundle): the windowed tables keep their last W days of
        events, the others one event per key; the enumerated tables (same-day lines, duplicates) every event of
        their keys active in the last ``keep_days`` (None: every event) and one folded event per other key; every
        claim's keys. Queries after the last event give the full state's sums. Built in this process from the
        chain's last state on disk and the gathered keys (built on a worker, at 10M claims it took that worker past
        its limit)."""
        if keep_days is not None and not 0 <= keep_days <= 100 * 366:
            raise RecoupError(f"keep_days: expected 0 to {100 * 366} days, got {keep_days}")
        path, keys, coverage = self._end
        if keys is None:
            raise RecoupError("the claims' keys went into the bundle's state (bundle_state): build state() before it")
        got = self.client.gather([self.specialty_of, coverage, *keys])
        return _final_state(load_state(path, got[0]), got[2:], got[1], keep_days)

    def bundle_state(self) -> HistoryState:
        """The state saved with a model, compact: the single process's :meth:`HistoryState.compact` of its full
        state as known at the table's end (``until``): the same events, the same running sums, the same claim keys.
        Built in this process table by table from the files (the summary of the last partition that starts before
        the service's retention cutoff, ``RETENTION_DAYS`` before the last month, extended by every later
        partition's events, as the chain extended them), each table compacted as soon as it is built
        (:func:`compact_state`): this process never holds the recent events of every table at once. Consumes the
        claims' keys (:meth:`state` is no longer available)."""
        args, kw = self._bundle_parts()
        return compact_state(*args, **kw)

    def save_bundle_state(self, directory: str | Path) -> SavedState:
        """:meth:`bundle_state` written to ``directory`` as it is built (:func:`save_compact_state`): each table
        is written as soon as it is compacted, so this process holds neither the recent events of every table nor
        the compact state (10M claims: ~6 GB in memory)."""
        args, kw = self._bundle_parts()
        return save_compact_state(directory, *args, **kw)

    def _bundle_parts(self) -> tuple[tuple, dict]:
        """The arguments of :func:`compact_state`: (the full tables one at a time, the coder, the claim keys, the
        last event's date), and the rest by keyword."""
        if self._recent is None:
            raise RecoupError("the feature table was built without its state (with_state=False)")
        self.collect()
        base, deltas = self._recent
        path, keys, coverage = self._end
        specialty_of, cov = self.client.gather([self.specialty_of, coverage])
        header, _ = _state_items(path)  # the coder after the last partition, the next order, the last event
        ck = _claim_keys(keys)  # consumed: state() has no keys after this
        self._end = (path, None, coverage)
        last = header["last_time"]
        self._recent = None

        def full_tables() -> Iterator[tuple[str, EventTable]]:
            _, base_items = _state_items(base)
            streams = [stream_items(d) for d in deltas]
            for name, cols in TABLE_COLUMNS.items():
                tab = _next_table(base_items, name, base)
                tab = tab if tab is not None else EventTable(columns=list(cols))
                for d, items in zip(deltas, streams):
                    events = _next_table(items, name, d)
                    if events is not None:
                        tab = tab.extended(*events)
                yield name, tab
                del tab

        last_date = None if last is None else pd.Timestamp(day_of_time(last), unit="D")
        kw = {"specialty_of": specialty_of, "coverage": cov, "next_order": header["next_order"]}
        return (full_tables(), header["coder"], ck, last_date), kw

    def collect(self) -> list:
        """Every claim's keys and the sink's results gathered into this process (most were as the chain ran),
        released on the workers; the sink's results in partition order."""
        path, keys, coverage = self._end
        keys = keys if keys is not None else []
        sunk = self.sunk or []
        got = _gather_each([*keys, *sunk])
        keys[:], sunk[:] = got[: len(keys)], got[len(keys) :]
        while self._spent:  # no retry reads them any more
            remove(self._spent.pop())
        return list(sunk)


def _gather_ready(items: list) -> set[Any]:
    """Replace, in ``items``, each future already computed by its result, released on the workers (without
    waiting for the others); the keys gathered."""
    from distributed import Future

    ready = [(i, x) for i, x in enumerate(items) if isinstance(x, Future) and x.done() and x.status == "finished"]
    if ready:
        got = ready[0][1].client.gather([x for _, x in ready])
        for (i, x), g in zip(ready, got):
            items[i] = g
            x.release()
    return {x.key for _, x in ready}


def _gather_each(items: list) -> list:
    """``items`` with each future replaced by its result as soon as it is computed, and released on the workers."""
    from distributed import Future, as_completed

    out = list(items)
    at = {x.key: i for i, x in enumerate(items) if isinstance(x, Future)}
    for fut in as_completed([x for x in items if isinstance(x, Future)]):
        out[at[fut.key]] = fut.result()
        fut.release()
    return out


def _dd(futures: list, meta: pd.DataFrame):
    import dask
    import dask.dataframe as dd

    # the partitions as computed: no conversion of object columns to Arrow strings (hit values mix numbers and text)
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_delayed([dask.delayed(f) for f in futures], meta=meta, verify_meta=False)


def feature_table(
    client,
    data: str | Path | History,
    rulebook: Rulebook | None = None,
    since: str | None = None,
    until: str | None = None,
    *,
    folder: str,
    months: int | None = None,
    buckets: int = BUCKETS,
    progress: Callable[[str], None] | None = None,
    with_state: bool = False,
    sink: Callable[..., Any] | None = None,
) -> ClusterTable:
    """The feature table of ``data`` (a store, a contract history folder, or a loaded History) computed on the
    cluster of ``client``: the claims submitted in ``since``..``until`` (``since`` a month YYYY-MM or a date's
    month; default all) as known at their submission (the history before ``since`` is read for the state).
    ``until`` (a month: its last day, or a date) also ends the history read: claims submitted and recoupments dated
    after it are left out, as ``truncate_history`` leaves them out (payments are the caller's business).
    ``months``: months per partition (None: :func:`auto_months`). ``with_state``: also build
    :meth:`ClusterTable.bundle_state` (training). ``folder``: a folder that the workers and this process share
    (:func:`features.cluster.parts.scratch`), where the chain writes its states; the caller removes it after the
    table's last use (the table's partitions may need them again if a worker is lost).

    ``sink``: called on a worker as each partition's features are done, ``sink(p, (X, hits), claims, recoupments,
    last_date)`` (its claim rows, the recoupments of its claims or None, the history's last date); its small
    results are :attr:`ClusterTable.sunk` and the table keeps no partition (``X``, ``hits``, ``claims`` and
    ``recoupments`` are None): what the sink does not keep is released at once."""
    from features.store.read import month_argument

    say = progress or (lambda msg: log.info(msg))
    rulebook = rulebook or load_rulebook()
    lo, hi = month_argument(since, "since"), month_argument(until, "until")
    until_day = _until_day(until, hi)
    if not 1 <= buckets <= 1024:
        raise RecoupError(f"buckets: expected 1 to 1024, got {buckets}")
    source: Any
    if isinstance(data, History):
        source = client.scatter(data, hash=False)
        counts = _months_of(data)
        rec_months = _rec_months(data)
    else:
        path = Path(data)
        if not path.is_dir():
            raise RecoupError(f"{path}: not a store or a claims history folder")
        store = _store_source(path) if (path / "manifest.sqlite").is_file() else None
        if store is not None:
            source = store
            counts = {m: sum(int(p.rows) for p in ps) for m, ps in store.claim_parts.items() if m}
            rec_months = _rec_months(store)
        else:  # a history folder, or a store with versions or 835 data: loaded whole by one task
            say("reading the history in one task (not a plain store: versions, 835 data or a folder)")
            source = client.submit(_load, str(path), pure=False)
            counts = client.submit(_months_of, source).result()
            rec_months = client.submit(_rec_months, source).result()
    month_list = sorted(counts)
    if hi is not None:  # the history as known on ``until``: nothing after it is read
        month_list = [m for m in month_list if m <= hi]
        rec_months = [m for m in rec_months if m <= hi]
    if not month_list:
        raise RecoupError("no claims submitted in the months asked (since/until)")
    if months is None:
        months = auto_months([counts[m] for m in month_list])
    plan = make_plan(month_list, months)
    P = len(plan.groups)
    ahead = AHEAD if sum(counts[m] for m in month_list) <= LARGE_CLAIMS else AHEAD_LARGE
    want = [[m for m in g if (lo is None or m >= lo) and (hi is None or m <= hi)] for g in plan.groups]
    if not any(want):
        raise RecoupError("no claims submitted in the months asked (since/until)")
    say(f"feature table on the cluster: {len(month_list)} months in {P} partitions")
    # the rulebook travels in the tasks (it pickles to its sources): a worker lost is a task retried, not data lost
    rb = rulebook
    ref = client.submit(_reference_tables, _reference_source(source))
    specialty_of = client.submit(_pick, ref, 0)
    coverage = client.submit(_pick, ref, 1)
    # the chain first (it is the critical path), then the partitions in time order
    chain = {"priority": 10 * P + 20}

    def order(p: int, extra: int = 0) -> dict:
        return {"priority": 10 * (P - p) + extra}

    # every partition read once for its keys (the recoupment join, the end state, the lags): only keys kept
    pkeys = [
        client.submit(_part_keys, _months_source(source, g), g, i, specialty_of, rb, until_day, **order(i, 1))
        for i, g in enumerate(plan.groups)
    ]
    size_f = [client.submit(_size, k, **order(i, 1)) for i, k in enumerate(pkeys)]
    offsets = [client.submit(_offset, size_f[:p], **order(p, 1)) for p in range(P)]  # claims before each partition
    span = client.submit(_span, [client.submit(_lags, k) for k in pkeys], **chain)
    # recoupments by the partition of their date, joined with their claims' keys in buckets
    rp = plan.partition_of_months(np.array(rec_months, dtype=str)) if rec_months else np.zeros(0, dtype=np.int64)
    rec_groups: dict[int, list[str]] = {}
    for m, p in zip(rec_months, rp.tolist()):
        rec_groups.setdefault(int(p), []).append(m)
    rec_frames = [
        client.submit(
            _tag,
            client.submit(_recoupments, _recoupment_source(source, ms), ms, until_day, **order(p, 1)),
            p,
            **order(p, 1),
        )
        for p, ms in sorted(rec_groups.items())
    ]
    key_split = [client.submit(_split_keys, k, buckets, **order(i, 1)) for i, k in enumerate(pkeys)]
    rec_split = [client.submit(_split, r, buckets, **order(0, 1)) for r in rec_frames]
    joined = [
        client.submit(
            _join_bucket,
            [client.submit(_pick, k, b) for k in key_split],
            [client.submit(_pick, r, b) for r in rec_split],
            **order(0, 1),
        )
        for b in range(buckets)
    ]
    by_date = [client.submit(_collect, joined, "_rp", p, **order(p, 1)) for p in range(P)]
    by_claim = [client.submit(_collect, joined, "_part", p) for p in range(P)]
    # History.last_date of what is read: the latest submission, payment or recoupment date
    last = client.submit(
        _last_date, [client.submit(_last_of, k) for k in pkeys], [client.submit(_rec_last, r) for r in rec_frames]
    )
    keys: list[Any] = [client.submit(_keys_with_time, k, o) for k, o in zip(pkeys, offsets)]
    n_lines_f = [client.submit(_n_lines, k) for k in pkeys]
    del pkeys  # what was read for the keys is released once these are computed (read again if one is lost)
    # the chain, driven from here one step at a time: step p reads S_p from the folder and writes S_{p+1} there.
    # A step's input is a file, not a result on a worker, so a worker lost costs one step retried, not the chain
    # recomputed from the first partition. Partition p's rows are read again when the partitions up to p - ahead
    # are done (at most ahead + 1 partitions' rows held at once).
    chain_dir = subfolder(folder, "chain")
    paths: list[str | None] = [None] + [f"{chain_dir}/{_STATE_NAME.format(p + 1)}" for p in range(P)]
    starts = plan.starts()
    # the bundle's state: from the last summary whose start is before the service's retention cutoff, every later
    # partition's events unfolded (HistoryState.compact then folds it as it folds the single process's full state):
    # the chain writes those partitions' events too, which this process appends (ClusterTable.bundle_state)
    last_month = max(month_list + rec_months)
    last_lo = month_start_day(last_month) if until_day is None else min(month_start_day(last_month), _day(until_day))
    p_star = max([p for p in range(P) if starts[p] <= last_lo - RETENTION_DAYS] or [0])
    keep = {paths[P], *([paths[p_star]] if with_state else [])}  # read again by this process at the end
    deltas: list[str] = []
    done: list[Any] = []
    sunk: list[Any] = []
    outs: list[tuple[int, Any]] = []
    cl: list[Any] = []
    needed: dict[int, list[Any]] = {}  # S_p's file is removed once these are gathered (a retry of step p reads it)
    gathered: set[Any] = set()

    def read(p: int) -> Any:
        """Partition p's rows, read once the work of partition p - ahead is done (waited for here, not as a task's
        input: a lost result of an earlier partition is then not recomputed through its chain step)."""
        if p >= ahead:
            wait([f for f in done[p - ahead] if f.key not in gathered])
            done[p - ahead] = []
            tidy()  # what is done comes here at once (a worker lost later does not take it along)
        src = _months_source(source, plan.groups[p])
        return client.submit(_part_data, src, plan.groups[p], p, specialty_of, rb, until_day, **order(p))

    def tidy() -> None:
        """Gather what is computed (keys, sink results), release it on the workers, remove the states no retry
        can need any more (with a sink: once the partition's result is here)."""
        for seq in (keys, sunk):
            gathered.update(_gather_ready(seq))
        for q, futs in list(needed.items()):
            if all(f is None or f.key in gathered for f in futs):
                src = paths[q]
                if src is not None and src not in keep:
                    remove(src)
                del needed[q]

    from distributed import wait

    part = read(0)
    for p in range(P):
        delta = with_state and p >= p_star
        nxt = starts[p + 1] if p + 1 < P else None
        step = client.submit(
            _step, paths[p], part, offsets[p], by_date[p], specialty_of, delta, nxt, span, chain_dir, p + 1, **chain
        )
        view = step  # the view of T_p its features ask
        watch: list[Any] = []
        if delta:
            deltas.append(f"{chain_dir}/{_DELTA_NAME.format(p + 1)}")
        waits: list[Any] = []  # what the read of partition p + ahead waits for (the step itself: waited for below)
        if want[p]:
            sel = None if len(want[p]) == len(plan.groups[p]) else want[p]
            feats = client.submit(_features, view, part, offsets[p], coverage, rb, sel, **order(p, 2))
            rows = client.submit(_claims, part, sel, **order(p, 2))
            if sink is None:
                outs.append((p, feats))
                cl.append(rows)
                waits.append(feats)
            else:
                sunk.append(client.submit(sink, p, feats, rows, by_claim[p], last, **order(p, 3)))
                waits.append(sunk[-1])
                watch.append(sunk[-1])
            del rows, feats
        done.append(waits)
        if sink is not None:  # without one, the features stay on the workers: every state is kept for them
            needed[p] = [step, *watch]
        del view
        if p + 1 < P:
            part = read(p + 1)
        wait([step])  # its state written: the next step reads it
        if step.status == "error":
            step.result()  # raises the step's error here
        if p in needed:
            needed[p][0] = None
        tidy()
        del step
    del part
    n = int(sum(client.gather(size_f)))
    n_lines = int(sum(client.gather(n_lines_f)))
    common: dict[str, Any] = {
        "client": client,
        "_end": (paths[P], keys, coverage),
        "n_claims": n,
        "n_lines": n_lines,
        "_recent": (paths[p_star], deltas) if with_state else None,
        "specialty_of": specialty_of,
        "last_date": last,
        "_spent": [src for q in needed if (src := paths[q]) is not None and src not in keep],
    }
    if sink is not None:
        say(f"feature table on the cluster: {n} claims submitted, {len(sunk)} partitions of features to the sink")
        return ClusterTable(X=None, hits=None, claims=None, recoupments=None, partitions=len(sunk), sunk=sunk, **common)
    xs = [client.submit(_x, f) for _, f in outs]
    hs = [client.submit(_hits, f) for _, f in outs]
    rc = [by_claim[p] for p, _ in outs]
    x_meta = client.submit(_head, xs[0]).result()
    h_meta = client.submit(_head, hs[0]).result()
    c_meta = client.submit(_head, cl[0]).result()
    r_meta = client.submit(_rec_meta, rc).result()
    rc = [client.submit(_or_empty, r, r_meta) for r in rc]
    say(f"feature table on the cluster: {n} claims submitted, {len(outs)} partitions of features")
    return ClusterTable(
        X=_dd(xs, x_meta),
        hits=_dd(hs, h_meta),
        claims=_dd(cl, c_meta),
        recoupments=_dd(rc, r_meta),
        partitions=len(outs),
        **common,
    )


def _last_of(part: PartKeys) -> pd.Timestamp | None:
    return part.last


def _rec_last(rec: pd.DataFrame | None) -> pd.Timestamp | None:
    if rec is None or not len(rec):
        return None
    v = rec["recouped_date"].max()
    return None if pd.isna(v) else pd.Timestamp(v)


def _last_date(parts: list[pd.Timestamp | None], recs: list[pd.Timestamp | None]) -> pd.Timestamp:
    """History.last_date from each partition's and each recoupment frame's latest date."""
    got = [d for d in [*parts, *recs] if d is not None]
    if not got:
        raise RecoupError("the history has no dates")
    return max(got)


def _day(ts: pd.Timestamp) -> int:
    return int(np.datetime64(ts.date(), "D").astype(np.int64))


def _n_lines(part: PartKeys) -> int:
    return part.n_lines


def _lags(part: PartKeys) -> tuple[int, int] | None:
    return part.lags


def _until_day(until: str | None, month: str | None) -> pd.Timestamp | None:
    """``until`` as the last day it covers: a month (YYYY-MM) its last day, a date that day."""
    if until is None or month is None:
        return None
    text = str(until).strip()
    if len(text) == 7:
        return pd.Timestamp(f"{month}-01") + pd.offsets.MonthEnd(0)
    try:
        return pd.Timestamp(text).normalize()
    except ValueError as e:
        raise RecoupError(f"until: expected a month (YYYY-MM) or a date, got {until!r}") from e


def _rec_meta(frames: list[pd.DataFrame | None]) -> pd.DataFrame:
    for f in frames:
        if f is not None:
            return f.iloc[:0]
    return pd.DataFrame(
        {
            "claim_id": pd.Series(dtype=object),
            "recouped_date": pd.Series(dtype="datetime64[s]"),
            "recouped_amount": pd.Series(dtype=float),
        }
    )


def _or_empty(frame: pd.DataFrame | None, meta: pd.DataFrame) -> pd.DataFrame:
    return meta if frame is None else frame
