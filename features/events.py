"""Point-in-time event tables: "what was known about this key before time T", for batch and online alike.

An :class:`EventTable` holds events (an entity key, a time, a row of numeric contributions and an
optional payload) sorted by (key, time), with prefix sums. A query ``(key, T)`` returns the sums of the
contributions of the key's events with time ``< T`` and the index of the latest such event. Batch
feature building asks millions of queries at once (vectorized binary search); the online service asks
one (a slice and a binary search). Both go through :meth:`EventTable.query`, so both give the same
numbers. New events (claims scored online, new recoupments) go into a small unsorted delta that is
merged on save or when it grows.

Times are int64: ``day << 33 | phase << 32 | order`` where ``day`` counts days since 1970-01-01,
``phase`` is 0 for recoupments and 1 for claims (a recoupment dated on a claim's submission day is
known to it), and ``order`` is the claim's position in submission order (same-day claims see the ones
submitted before them, never themselves or later ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PHASE_RECOUPMENT = 0
PHASE_CLAIM = 1
_DAY_SHIFT = 33
_PHASE_SHIFT = 32


def day_number(dates: pd.Series | np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 as int64 (NaT -> a very large number: never before anything)."""
    raw = dates.to_numpy() if isinstance(dates, pd.Series) else np.asarray(dates)
    if raw.dtype.kind != "M":
        raw = pd.to_datetime(pd.Series(raw)).to_numpy()
    arr = raw.astype("datetime64[D]")
    out = arr.astype("int64")
    out[np.isnat(arr)] = 10**6
    return out


def encode_time(day: np.ndarray, phase: int | np.ndarray, order: np.ndarray | int = 0) -> np.ndarray:
    """Pack (day, phase, order) into one sortable int64."""
    day = np.asarray(day, dtype=np.int64)
    return (day << _DAY_SHIFT) | (np.asarray(phase, dtype=np.int64) << _PHASE_SHIFT) | np.asarray(order, dtype=np.int64)


def time_of_day_start(day: np.ndarray) -> np.ndarray:
    """The earliest time of a day (before its recoupments and claims)."""
    return np.asarray(day, dtype=np.int64) << _DAY_SHIFT


@dataclass
class EventTable:
    """Events of one kind of key, sorted by (key, time), with prefix sums of their contributions."""

    columns: list[str]
    keys: pd.Index = field(default_factory=lambda: pd.Index([], dtype=object))  # object dtype: fast hashing
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    times: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    prefix: np.ndarray = field(default_factory=lambda: np.zeros((1, 0)))
    payload: np.ndarray | None = None
    # unsorted additions since the last merge: key -> list of (time, values, payload)
    delta: dict = field(default_factory=dict)
    n_delta: int = 0

    def __post_init__(self) -> None:
        if self.prefix.shape[1] != len(self.columns):
            self.prefix = np.zeros((len(self.times) + 1, len(self.columns)))
        if self.keys.dtype != object:
            self.keys = pd.Index(self.keys.to_numpy(dtype=object), dtype=object)

    def key_positions(self, keys: np.ndarray) -> np.ndarray:
        """Position of each key in :attr:`keys`, -1 when unknown (per-key hash lookups for a few keys,
        one vectorized indexer for many)."""
        n = len(keys)
        if not len(self.keys):
            return np.full(n, -1, dtype=np.int64)
        if n <= 32:
            get_loc = self.keys.get_loc
            out = np.empty(n, dtype=np.int64)
            for i, k in enumerate(keys.tolist()):
                try:
                    out[i] = get_loc(k)
                except KeyError:
                    out[i] = -1
            return out
        return self.keys.get_indexer(keys).astype(np.int64)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        columns: list[str],
        keys: np.ndarray | pd.Series,
        times: np.ndarray,
        values: np.ndarray,
        payload: np.ndarray | None = None,
    ) -> "EventTable":
        """Build from unsorted events: keys (strings or ints), int64 times, values [n, len(columns)]."""
        keys = np.asarray(keys)
        codes, uniques = pd.factorize(keys, sort=False)
        order = np.lexsort((times, codes))
        codes = codes[order]
        counts = np.bincount(codes, minlength=len(uniques))
        offsets = np.zeros(len(uniques) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        vals = np.asarray(values, dtype=np.float64).reshape(len(keys), len(columns))[order]
        prefix = np.zeros((len(keys) + 1, len(columns)))
        np.cumsum(vals, axis=0, out=prefix[1:])
        return cls(
            columns=list(columns),
            keys=pd.Index(np.asarray(uniques, dtype=object), dtype=object),
            offsets=offsets,
            times=np.asarray(times, dtype=np.int64)[order],
            prefix=prefix,
            payload=None if payload is None else np.asarray(payload)[order],
        )

    def append(self, keys: np.ndarray, times: np.ndarray, values: np.ndarray,
               payload: np.ndarray | None = None) -> None:
        """Add events (kept in the delta until :meth:`merge`)."""
        values = np.asarray(values, dtype=np.float64).reshape(len(keys), len(self.columns))
        for i, k in enumerate(np.asarray(keys).tolist()):
            self.delta.setdefault(k, []).append(
                (int(times[i]), values[i].copy(), None if payload is None else payload[i])
            )
        self.n_delta += len(keys)

    def merge(self) -> None:
        """Fold the delta into the sorted arrays."""
        if not self.n_delta:
            return
        base_keys = np.repeat(self.keys.to_numpy(dtype=object), np.diff(self.offsets))
        base_vals = np.diff(self.prefix, axis=0)
        d_keys, d_times, d_vals, d_pay = [], [], [], []
        for k, items in self.delta.items():
            for t, v, p in items:
                d_keys.append(k)
                d_times.append(t)
                d_vals.append(v)
                d_pay.append(p)
        keys = np.concatenate([base_keys, np.array(d_keys, dtype=object)])
        times = np.concatenate([self.times, np.array(d_times, dtype=np.int64)])
        vals = np.vstack([base_vals, np.array(d_vals).reshape(len(d_keys), len(self.columns))])
        payload = None
        if self.payload is not None:
            payload = np.concatenate([self.payload, np.array(d_pay, dtype=self.payload.dtype)])
        merged = EventTable.build(self.columns, keys, times, vals, payload)
        self.__dict__.update(merged.__dict__)

    # ------------------------------------------------------------------ querying
    def query(self, keys: np.ndarray | pd.Series, times: np.ndarray,
              columns: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For each (key, T): sums of contributions of the key's events with time < T, and the
        index (into :attr:`payload`/:attr:`times`) of the latest such event, -1 if none. ``columns``
        restricts the sums to some columns (less memory for millions of queries).

        Delta events are added to the sums; their latest is reported as ``-2 - position`` in
        :meth:`delta_payload` order only through :meth:`latest_payload`.
        """
        keys = np.asarray(keys, dtype=object)
        times = np.asarray(times, dtype=np.int64)
        n = len(keys)
        k_idx = self.key_positions(keys)
        known = k_idx >= 0
        lo = np.zeros(n, dtype=np.int64)
        hi = np.zeros(n, dtype=np.int64)
        lo[known] = self.offsets[k_idx[known]]
        hi[known] = self.offsets[k_idx[known] + 1]
        pos = lo.copy()
        if known.any():
            if n <= 32:
                for i in np.flatnonzero(known).tolist():
                    pos[i] = lo[i] + np.searchsorted(self.times[lo[i]:hi[i]], times[i], side="left")
            else:
                pos[known] = self._segmented_searchsorted(k_idx[known], times[known])
        prefix = self.prefix if columns is None else self.prefix[:, columns]
        sums = prefix[pos]
        sums -= prefix[lo]
        latest = np.where(pos > lo, pos - 1, -1)
        if self.n_delta:
            for i, k in enumerate(keys.tolist()):
                items = self.delta.get(k)
                if not items:
                    continue
                for t, v, _ in items:
                    if t < times[i]:
                        sums[i] += v if columns is None else v[columns]
        return sums, latest

    def _segmented_searchsorted(self, seg: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Per query i: offsets[seg[i]] + np.searchsorted(times of segment seg[i], q[i], 'left'), at once.

        Events are sorted by (segment, time); with ``rank`` the position of an event's time among the
        distinct event times, "time < q" is "rank < searchsorted(distinct times, q)", so one search over
        the composite keys ``segment * (U + 1) + rank`` (computed once per table state) answers all.
        """
        cached = getattr(self, "_seg_index", None)
        if cached is None or cached[0] is not self.times:
            uniq, rank = np.unique(self.times, return_inverse=True)
            seg_of_event = np.repeat(np.arange(len(self.offsets) - 1, dtype=np.int64), np.diff(self.offsets))
            span = np.int64(len(uniq) + 1)
            ev_key = seg_of_event * span + rank.ravel().astype(np.int64)
            del seg_of_event, rank
            cached = (self.times, uniq, span, ev_key)
            self._seg_index = cached
        _, uniq, span, ev_key = cached
        q_rank = np.searchsorted(uniq, q, side="left").astype(np.int64)
        return np.searchsorted(ev_key, seg.astype(np.int64) * span + q_rank, side="left")

    def window(self, keys: np.ndarray, t_end: np.ndarray, t_start: np.ndarray) -> np.ndarray:
        """Sums of the events with t_start <= time < t_end."""
        a, _ = self.query(keys, t_end)
        b, _ = self.query(keys, t_start)
        return a - b

    def latest_payload(self, keys: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(payload of the latest event before T or None, its time or -1) per query, delta included."""
        keys = np.asarray(keys)
        _, latest = self.query(keys, times)
        pay = np.empty(len(keys), dtype=object)
        tt = np.full(len(keys), -1, dtype=np.int64)
        ok = latest >= 0
        if self.payload is not None:
            pay[ok] = self.payload[latest[ok]]
        tt[ok] = self.times[latest[ok]]
        if self.n_delta:
            for i, k in enumerate(keys.tolist()):
                for t, _, p in self.delta.get(k, ()):
                    if t < times[i] and t > tt[i]:
                        tt[i], pay[i] = t, p
        return pay, tt

    def events_before(self, key, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices into payload, delta payloads) of one key's events before T (small groups)."""
        i = int(self.key_positions(np.array([key], dtype=object))[0])
        idx = np.zeros(0, dtype=np.int64)
        if i >= 0:
            lo, hi = self.offsets[i], self.offsets[i + 1]
            pos = lo + np.searchsorted(self.times[lo:hi], t, side="left")
            idx = np.arange(lo, pos)
        extra = [p for tt, _, p in self.delta.get(key, ()) if tt < t]
        return idx, np.array(extra, dtype=object)

    # ------------------------------------------------------------------ persistence
    def to_frame(self) -> pd.DataFrame:
        self.merge()
        df = pd.DataFrame(np.diff(self.prefix, axis=0), columns=self.columns)
        df.insert(0, "_key", np.repeat(self.keys.to_numpy(dtype=object), np.diff(self.offsets)))
        df.insert(1, "_time", self.times)
        if self.payload is not None:
            df["_payload"] = self.payload
        return df

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> "EventTable":
        cols = [c for c in df.columns if not c.startswith("_")]
        payload = df["_payload"].to_numpy() if "_payload" in df.columns else None
        return cls.build(cols, df["_key"].to_numpy(dtype=object), df["_time"].to_numpy(dtype=np.int64),
                         df[cols].to_numpy(dtype=np.float64), payload)


def _segmented_searchsorted(times: np.ndarray, offsets: np.ndarray, seg: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per query i: offsets[seg[i]] + np.searchsorted(times[segment seg[i]], q[i], 'left'), all at once.

    Events are sorted by (segment, time); ranking all times and queries together turns the problem
    into one search over (segment, rank) composite keys.
    """
    n = len(times)
    seg_of_event = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
    _, rank = np.unique(np.concatenate([times, q]), return_inverse=True)
    span = np.int64(n + len(q) + 1)
    ev_key = seg_of_event * span + rank[:n]
    q_key = seg.astype(np.int64) * span + rank[n:]
    return np.searchsorted(ev_key, q_key, side="left")
