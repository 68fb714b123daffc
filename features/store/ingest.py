"""``recoup ingest PATH... --into STORE``: files into a store, atomically and idempotently (docs/store.md).

:func:`ingest` expands the paths, reads each file's units (:mod:`features.store.sources`) one file at a time,
decides what each unit adds (unit already ingested; claim versions; recoupment duplicates), stages the new rows
(:class:`~features.store.writer.Stager`), commits the manifest last and then publishes the parts, all under the
store's writer lock. Strict by default: any problem and nothing is written."""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import re
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from features.contract.schema import (
    LINE_WITHOUT_CLAIM,
    RECOUPMENT_WITHOUT_CLAIM,
    REVIEW_WITHOUT_CLAIM,
    TABLES,
    Problem,
)
from features.errors import RecoupError
from features.store import manifest as mf
from features.store.layout import (
    DEFAULT_WAIT,
    LOCK,
    MANIFEST,
    fsync_dir,
    quarantine_dir,
    recover,
    staged_quarantine_dir,
    writer_lock,
)
from features.store.sources import WORKERS, FileUnits, InputFile, classify, expand, read_files
from features.store.unit import STORE_TABLES, Unit
from features.store.writer import Stager, months_of

log = logging.getLogger(__name__)

#: what a claim row of a unit does to the store
ADDED, REPLACED, VOIDED, PRESENT = "added", "replaced", "voided", "already present"
#: an original (frequency 1) that arrives after the replacement or void of its claim_id: not stored (the later
#: version wins whatever the order of arrival), counted
SUPERSEDED = "superseded"
#: a claim_id known with other content, sent again as an original (frequency 1)
CLAIM_ID_REUSED = (
    "a claim_id not used by another claim (this claim_id is in the store with other content; "
    "send a replacement, frequency_code 7, or a void, 8)"
)
#: a claim added or replaced by this ingest without any line
CLAIM_WITHOUT_LINES_HERE = "claim_lines rows in the same ingest for a claim added or replaced (claim without lines)"
#: test hook: ``<point>:<seconds>`` sleeps at ``staged`` (parts staged, manifest not committed) or ``committed``
#: (manifest committed, parts not yet renamed) -- the kill -9 tests stop a real ingest there
QUARANTINED = "quarantined"
PAUSE_ENV = "RECOUP_STORE_TEST_PAUSE"
_ROWS_PREFIX = re.compile(
    r"^(?:rows? [0-9, ]+(?:, \.\.\. and [0-9]+ more)?: |segment [0-9]+(?: \([^)]*\))?: (?:[0-9]+ row\(s\)[^:]*: )?)"
)


@dataclass
class IngestSummary:
    """Counts of one ingest; units = ingested + already ingested + rejected; claims read in ingested units =
    added + replaced + voided + already present + superseded (an original arriving after its replacement or void)."""

    store: str
    ingest: int | None = None
    files: int = 0
    files_already: int = 0
    files_skipped: dict[str, int] = field(default_factory=dict)
    units: int = 0
    units_ingested: int = 0
    units_already: int = 0
    units_rejected: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    claims_added: int = 0
    claims_replaced: int = 0
    claims_voided: int = 0
    claims_present: int = 0
    claims_superseded: int = 0
    lines_stored: int = 0
    lines_skipped: int = 0
    recoupments_added: int = 0
    recoupments_duplicate: int = 0
    reviews_added: int = 0
    reviews_replaced: int = 0
    reviews_already: int = 0
    remittances_waiting: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    quarantine: str | None = None
    seconds: float = 0.0

    def __str__(self) -> str:
        kinds = ", ".join(f"{n} x {k}" for k, n in sorted(self.by_kind.items())) or "none"
        out = [
            f"ingest {self.ingest if self.ingest is not None else '-'} into {self.store}: {self.files} file(s)"
            + (f" ({self.files_already} already ingested whole, not read again)" if self.files_already else ""),
            f"  units: {self.units} ({kinds}) = {self.units_ingested} ingested + {self.units_already} already "
            f"ingested + {self.units_rejected} rejected",
            f"  claims: {self.claims_added} added, {self.claims_replaced} replaced, {self.claims_voided} voided, "
            f"{self.claims_present} already present, {self.claims_superseded} superseded (originals arriving after "
            "their replacement or void)",
            f"  claim lines: {self.lines_stored} stored, {self.lines_skipped} of claims already present skipped",
            f"  recoupments: {self.recoupments_added} added, {self.recoupments_duplicate} duplicates skipped",
            *(
                [
                    f"  reviews: {self.reviews_added} added, {self.reviews_replaced} replaced (same claim, time and "
                    f"outcome, other content), {self.reviews_already} already recorded"
                ]
                if self.reviews_added or self.reviews_replaced or self.reviews_already
                else []
            ),
            f"  remittances: {self.rows.get('remittances', 0)} claim payments = "
            f"{self.rows.get('remittances', 0) - self.remittances_waiting} of claims in the store + "
            f"{self.remittances_waiting} waiting for their claim (no 837 yet); "
            f"{self.rows.get('remittance_lines', 0)} service lines, {self.rows.get('offsets', 0)} offsets "
            "(their payments, recoupments and duplicates: `recoup store info`)",
        ]
        if self.files_skipped:
            out.append("  files skipped: " + "; ".join(f"{n} {k}" for k, n in sorted(self.files_skipped.items())))
        if self.skipped:
            out.append("  left out on purpose: " + "; ".join(f"{n} x {k}" for k, n in sorted(self.skipped.items())))
        if self.rejected:
            out.append(f"  rejected units by reason (quarantined in {self.quarantine}):")
            for reason, n in sorted(self.rejected.items(), key=lambda kv: -kv[1])[:12]:
                out.append(f"    {n} x {reason}")
        out.append(f"  took {self.seconds:.2f} s")
        return "\n".join(out)


def _reason(unit: Unit, problem: str) -> str:
    """A problem without its file and row numbers (to count rejections by reason)."""
    text = problem
    for prefix in (unit.source + " ", unit.source + ": ", unit.source):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    return _ROWS_PREFIX.sub("", text).strip()


def content_hash(df: pd.DataFrame, table: str) -> np.ndarray:
    """One int64 per row from its contract columns (equal rows, equal hash; private columns ignored)."""
    from features.contract.write import to_contract_frame

    cols = [c.name for c in TABLES[table] if c.name in df.columns]
    text = to_contract_frame(df[cols])
    text = pd.DataFrame({c: text[c].astype("string").fillna("") for c in cols})
    return pd.util.hash_pandas_object(text, index=False).to_numpy().view(np.int64)


def recoupment_keys(df: pd.DataFrame) -> np.ndarray:
    """The identity of a contract recoupment: (claim_id, recouped_date, recouped_amount in cents, carc)."""
    carc = df["carc"] if "carc" in df.columns else pd.Series("", index=df.index)
    key = pd.DataFrame(
        {
            "claim_id": df["claim_id"].astype("string"),
            "date": pd.to_datetime(df["recouped_date"]).dt.strftime("%Y-%m-%d"),
            "cents": (pd.to_numeric(df["recouped_amount"]) * 100).round().astype("Int64").astype("string"),
            "carc": carc.astype("string").fillna("").str.strip().str.upper(),
        }
    )
    return pd.util.hash_pandas_object(key, index=False).to_numpy().view(np.int64)


def review_keys(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The identity of a review, (claim_id, reviewed_at to the second, outcome), and the hash of its contract columns
    (a time at midnight is written as its date: a date-only review keeps the key it always had)."""
    from features.contract.write import datetime_text

    key = pd.DataFrame(
        {
            "claim_id": df["claim_id"].astype("string"),
            "date": datetime_text(df["reviewed_at"]),
            "outcome": df["outcome"].astype("string"),
        }
    )
    return pd.util.hash_pandas_object(key, index=False).to_numpy().view(np.int64), content_hash(df, "reviews")


def _problem(unit: Unit, column: str, expected: str, rows: np.ndarray) -> str:
    """One line naming the unit's file and rows (a table file) or transaction segment (X12), column and rule."""
    if unit.segment is not None:
        return (
            f"{unit.source}: segment {unit.segment} ({unit.kind} transaction): {len(rows)} row(s): "
            f"column '{column}': expected {expected}"
        )
    return Problem(unit.source, column, expected, [int(r) + 1 for r in rows]).describe()


@dataclass
class _Decision:
    """What the good units of one file add: rows per table (with ``_n``, the unit of each row), new claim versions,
    the status of each claim row by (unit, claim_id), counts; problems by unit."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    versions: dict[str, mf.ClaimVersion] = field(default_factory=dict)
    statuses: list[tuple[int, str, str]] = field(default_factory=list)  # (unit, claim_id, status) in row order
    line_refs: np.ndarray | None = None
    lined: set[str] = field(default_factory=set)
    recoup_keys: set[int] = field(default_factory=set)
    review_keys: dict[int, int] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    problems: dict[int, list[str]] = field(default_factory=dict)


class _Batch:
    """The state of one ingest run: the claim index as this ingest changes it, and what it stages."""

    def __init__(
        self, conn, store: Path, ingest: int, stager: Stager, excluded: dict[str, list[str]], workers: int = WORKERS
    ):
        self.conn = conn
        self.workers = workers
        self.store = store
        self.ingest = ingest
        self.stager = stager
        self.excluded = excluded
        self.versions: dict[str, mf.ClaimVersion] = {}
        self.statuses: dict[str, str] = {}
        self.status_unit: dict[str, str] = {}
        self.lined: set[str] = set()
        self.recoup_keys: set[int] = set()
        self.review_keys: dict[int, int] = {}
        self.unit_keys: set[str] = set()
        self.seq = 0
        self.good: list[tuple[Unit, InputFile, dict]] = []
        self.bad: list[tuple[Unit, InputFile]] = []
        self.counts: Counter = Counter()
        self.rows: Counter = Counter()
        self.skipped: Counter = Counter()
        self.by_kind: Counter = Counter()
        self.units = 0
        self.already = 0
        self.files_already = 0
        self.remitted: list[np.ndarray] = []  # claim_id of every remittance (CLP) row staged
        self.file_kinds: dict[str, Counter] = {}  # sha256 -> units by kind of each file read in this ingest

    def known(self, ids) -> dict[str, mf.ClaimVersion]:
        ids = pd.unique(np.asarray(ids, dtype=object))
        out = mf.claim_versions(self.conn, [i for i in ids if i not in self.versions])
        out.update({i: self.versions[i] for i in ids if i in self.versions})
        return out

    def decide(self, units: list[Unit], tables: dict[str, pd.DataFrame]) -> _Decision:
        """What ``units`` (the good new units of one file, in order) add, their rows being ``tables`` (``_n`` = the
        unit's position in ``units``)."""
        d = _Decision()
        claims = tables.get("claims")
        if claims is not None and len(claims):
            self._claims(units, claims, d)
        lines = tables.get("claim_lines")
        if lines is not None and len(lines):
            self._lines(units, lines, d)
        rec = tables.get("recoupments")
        if rec is not None and len(rec):
            self._recoupments(units, rec, d)
        rev = tables.get("reviews")
        if rev is not None and len(rev):
            self._reviews(units, rev, d)
        for name, df in tables.items():
            if name in ("claims", "claim_lines", "recoupments", "reviews") or df is None or not len(df):
                continue
            if name not in STORE_TABLES:
                d.problems.setdefault(0, []).append(f"{units[0].source}: internal: rows of an unknown table {name!r}")
                continue
            d.tables[name] = df
        return d

    def _claims(self, units: list[Unit], claims: pd.DataFrame, d: _Decision) -> None:
        ids = claims["claim_id"].astype(str).to_numpy(dtype=object)
        freq = claims["frequency_code"].astype(str).to_numpy(dtype=object)
        unit_of = claims["_n"].to_numpy()
        content = content_hash(claims, "claims")
        months = months_of(claims["submitted_date"])
        known = self.known(ids)
        keep = np.zeros(len(ids), dtype=bool)
        reused: dict[int, list[int]] = {}
        for i, cid in enumerate(ids):
            k = d.versions.get(cid) or known.get(cid)
            if k is None:  # a new claim_id, whatever its frequency (a 7 or 8 of a never-seen claim is kept as sent)
                status = ADDED
            elif k.content == content[i]:
                status = PRESENT
            elif freq[i] == "7":
                status = REPLACED
            elif freq[i] == "8":
                status = VOIDED
            elif k.frequency in ("7", "8"):  # the original arrives after its replacement or void: it lost already
                status = SUPERSEDED
            else:
                reused.setdefault(int(unit_of[i]), []).append(i)
                continue
            d.statuses.append((int(unit_of[i]), cid, status))
            d.counts[status] += 1
            if status not in (PRESENT, SUPERSEDED):
                keep[i] = True
                d.versions[cid] = mf.ClaimVersion(self.ingest, freq[i], int(content[i]), str(months[i]))
        for n, rows in reused.items():
            rows_in_unit = claims.index.to_numpy()[rows]
            d.problems.setdefault(n, []).append(_problem(units[n], "claim_id", CLAIM_ID_REUSED, rows_in_unit))
        if keep.any():
            d.tables["claims"] = claims[keep] if not keep.all() else claims

    def _lines(self, units: list[Unit], lines: pd.DataFrame, d: _Decision) -> None:
        ids = lines["claim_id"].astype(str).to_numpy(dtype=object)
        unit_of = lines["_n"].to_numpy()
        here = {(n, cid): st for n, cid, st in d.statuses}  # the claim in the same unit (an X12 transaction)
        status = {**self.statuses, **{cid: st for _, cid, st in d.statuses}}
        versions = {**self.versions, **d.versions}
        st = [here.get((int(n), cid)) or status.get(cid) for n, cid in zip(unit_of, ids)]
        unknown = [i for i, s in enumerate(st) if s is None]
        if self._missing_claims(units, lines, ids, unit_of, unknown, LINE_WITHOUT_CLAIM, d):
            return
        keep = np.asarray([s in (ADDED, REPLACED, VOIDED) for s in st], dtype=bool)
        d.counts["lines_skipped"] += int((~keep).sum())
        if keep.any():
            kept = lines[keep] if not keep.all() else lines
            d.tables["claim_lines"] = kept
            d.line_refs = np.asarray([versions[c].month for c in ids[keep]], dtype=object)
            d.lined.update(ids[keep].tolist())
            d.counts["lines_stored"] += int(keep.sum())

    def _missing_claims(
        self, units: list[Unit], df: pd.DataFrame, ids, unit_of, candidates: list[int], expected: str, d: _Decision
    ) -> bool:
        """Whether some of the ``candidates`` rows (positions) name a claim the store does not know: each such unit
        gets one problem naming its rows."""
        if not candidates:
            return False
        known = self.known(ids[candidates])
        missing = [i for i in candidates if ids[i] not in known]
        for n in sorted({int(unit_of[i]) for i in missing}):
            rows = df.index.to_numpy()[[i for i in missing if unit_of[i] == n]]
            d.problems.setdefault(n, []).append(_problem(units[n], "claim_id", expected, rows))
        return bool(missing)

    def _recoupments(self, units: list[Unit], rec: pd.DataFrame, d: _Decision) -> None:
        ids = rec["claim_id"].astype(str).to_numpy(dtype=object)
        unit_of = rec["_n"].to_numpy()
        versions = {**self.versions, **d.versions}
        pending = [i for i, cid in enumerate(ids) if cid not in versions]
        if self._missing_claims(units, rec, ids, unit_of, pending, RECOUPMENT_WITHOUT_CLAIM, d):
            return
        keys = recoupment_keys(rec)
        stored = mf.known_recoupments(self.conn, keys.tolist())
        keep = np.zeros(len(keys), dtype=bool)
        for i, k in enumerate(keys.tolist()):
            if k in stored or k in self.recoup_keys or k in d.recoup_keys:
                continue
            keep[i] = True
            d.recoup_keys.add(k)
        d.counts["recoupments_added"] += int(keep.sum())
        d.counts["recoupments_duplicate"] += int((~keep).sum())
        if keep.any():
            d.tables["recoupments"] = rec[keep] if not keep.all() else rec

    def _reviews(self, units: list[Unit], rev: pd.DataFrame, d: _Decision) -> None:
        """Reviews of claims the store knows: a new (claim_id, reviewed_at, outcome) is added; the same one with the
        same content is already recorded; with other content it is stored and replaces the earlier one at read."""
        ids = rev["claim_id"].astype(str).to_numpy(dtype=object)
        unit_of = rev["_n"].to_numpy()
        versions = {**self.versions, **d.versions}
        pending = [i for i, cid in enumerate(ids) if cid not in versions]
        if self._missing_claims(units, rev, ids, unit_of, pending, REVIEW_WITHOUT_CLAIM, d):
            return
        keys, content = review_keys(rev)
        stored = mf.known_reviews(self.conn, keys.tolist())
        keep = np.zeros(len(keys), dtype=bool)
        for i, (k, c) in enumerate(zip(keys.tolist(), content.tolist())):
            before = d.review_keys.get(k, self.review_keys.get(k, stored.get(k)))
            if before == c:
                d.counts["reviews_already"] += 1
                continue
            d.counts["reviews_added" if before is None else "reviews_replaced"] += 1
            keep[i] = True
            d.review_keys[k] = c
        if keep.any():
            d.tables["reviews"] = rev[keep] if not keep.all() else rev

    def accept(self, units: list[Unit], f: InputFile, d: _Decision) -> None:
        """Stage the good units' rows and fold their decisions into the batch."""
        seqs = np.arange(self.seq + 1, self.seq + 1 + len(units), dtype=np.int32)
        keys = np.asarray([u.key for u in units], dtype=object)
        self.seq += len(units)
        per_unit: list[dict[str, int]] = [{} for _ in units]
        for name, df in d.tables.items():
            n = df["_n"].to_numpy()
            out = df.drop(columns="_n")
            out["_ingest"] = np.int64(self.ingest)
            out["_seq"] = seqs[n]
            out["_unit"] = keys[n]
            self.stager.add(name, out, refs=d.line_refs if name == "claim_lines" else None)
            if name == "remittances":
                self.remitted.append(out["claim_id"].astype(str).to_numpy(dtype=object))
            for i, k in zip(*np.unique(n, return_counts=True)):
                per_unit[int(i)][name] = int(k)
            self.rows[name] += len(out)
        self.versions.update(d.versions)
        for n, cid, st in d.statuses:
            if st == PRESENT and cid in self.statuses:
                continue  # sent again in this ingest: what the first copy did stands
            self.statuses[cid] = st
            self.status_unit[cid] = units[n].key
        self.lined.update(d.lined)
        self.recoup_keys.update(d.recoup_keys)
        self.review_keys.update(d.review_keys)
        self.counts.update(d.counts)
        for unit, rows in zip(units, per_unit):
            for reason, k in unit.skipped.items():
                self.skipped[reason] += k
            self.good.append((unit, f, rows))

    def run(self, files: list[InputFile], given: Sequence[tuple[InputFile, FileUnits]] = ()) -> None:
        """Decide on the units of ``files`` (read here) and of ``given`` (units made in memory, after the files)."""
        todo = []
        for f in files:
            done = mf.complete_file(self.conn, f.sha256)
            if done is None:
                todo.append(f)
                continue
            self.files_already += 1  # every unit of this very file is in the store: not read again
            for kind, k in done.items():
                self.by_kind[kind] += k
                self.units += k
                self.already += k
            log.info("ingest: %s already ingested whole, not read again", f.path.name)
        with contextlib.closing(read_files(todo, self.workers)) as reads:
            for i, (f, read) in enumerate(zip(todo, reads), 1):
                self._file(f, read, i, len(todo))
        for f, read in given:
            done = mf.complete_file(self.conn, f.sha256)
            if done is not None:  # the very same rows were recorded before
                self.files_already += 1
                for kind, k in done.items():
                    self.by_kind[kind] += k
                    self.units += k
                    self.already += k
                continue
            self._file(f, read, 1, 1)

    def _file(self, f: InputFile, read: FileUnits, i: int, n_files: int) -> None:
        """Decide on the units of one file read, stage the good ones."""
        self.file_kinds[f.sha256] = Counter(u.kind for u in read.units)
        stored = mf.ingested_units(self.conn, [u.key for u in read.units])
        good: list[int] = []
        for n, unit in enumerate(read.units):
            self.units += 1
            self.by_kind[unit.kind] += 1
            if unit.key in self.unit_keys or unit.key in stored:
                self.already += 1
                continue
            self.unit_keys.add(unit.key)
            if unit.key in self.excluded:  # found bad at the end of an earlier pass
                unit.problems.extend(self.excluded[unit.key])
            if unit.problems:
                self.bad.append((unit, f))
            else:
                good.append(n)
        while good:  # a unit found bad leaves the file's decision, which is made again without it
            units = [read.units[n] for n in good]
            position = np.full(len(read.units), -1, dtype=np.int64)
            position[good] = np.arange(len(good))
            tables = {}
            for name, df in read.tables.items():
                at = position[df["_n"].to_numpy()]
                mine = at >= 0
                sub = df[mine] if not mine.all() else df.copy()
                sub["_n"] = at[mine]
                tables[name] = sub
            d = self.decide(units, tables)
            if not d.problems:
                self.accept(units, f, d)
                break
            for k, problems in d.problems.items():
                units[k].problems.extend(problems)
                self.bad.append((units[k], f))
            good = [n for k, n in enumerate(good) if k not in d.problems]
        log.info("ingest [%d/%d] %s: %d unit(s)", i, n_files, f.path.name, len(read.units))

    def remittances_waiting(self) -> int:
        """Remittance (CLP) rows staged whose claim_id the store does not know once this ingest commits: they wait
        for their 837 (docs/x12.md "Store semantics"; a claim voided later also leaves its remittances waiting)."""
        if not self.remitted:
            return 0
        ids = np.concatenate(self.remitted)
        known = self.known(ids)
        return int(sum(cid not in known for cid in ids))

    def complete_files(self) -> dict[str, dict[str, int]]:
        """Files read in this ingest none of whose units was rejected: units by kind (a later ingest skips them)."""
        bad = {f.sha256 for _, f in self.bad}
        return {sha: dict(kinds) for sha, kinds in self.file_kinds.items() if sha not in bad}

    def late_problems(self) -> dict[str, list[str]]:
        """Claims added or replaced by this ingest without a line, by the key of the unit that sent them."""
        out: dict[str, list[str]] = {}
        for cid, st in self.statuses.items():
            if st in (ADDED, REPLACED) and cid not in self.lined:
                out.setdefault(self.status_unit[cid], []).append(cid)
        return {
            key: [
                f"{next(u.source for u, _, _ in self.good if u.key == key)}: {len(ids)} claim(s): expected "
                f"{CLAIM_WITHOUT_LINES_HERE}"
            ]
            for key, ids in out.items()
        }


def _pause(point: str) -> None:
    spec = os.environ.get(PAUSE_ENV, "")
    if spec.partition(":")[0] == point:
        time.sleep(float(spec.partition(":")[2] or 0))


def _prepare_store(store: Path) -> None:
    from features.outputs import check_writable, refuse_symlink, write_error

    refuse_symlink(store)
    check_writable(store)  # a parent that is a file, or not writable: one line naming it
    if store.exists() and not store.is_dir():
        raise RecoupError(f"{store}: not a folder; --into takes a store folder")
    if store.is_dir() and not (store / MANIFEST).exists() and any(p.name != LOCK for p in store.iterdir()):
        raise RecoupError(f"{store}: a folder that is not a claims store and not empty; give a new or empty folder")
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(store, exc) from None


def ingest(
    paths: Sequence[str | Path],
    store: str | Path,
    *,
    skip_invalid: bool = False,
    wait: float = DEFAULT_WAIT,
    workers: int = WORKERS,
) -> IngestSummary:
    """Ingest ``paths`` into ``store`` (created when new). Strict by default: a problem in any unit raises a
    :class:`RecoupError` listing every problem (one line each) and nothing is written. With ``skip_invalid`` the
    good units are ingested and the bad ones copied with their reasons to ``STORE/quarantine/<ingest>/``. Large X12
    inputs are parsed in ``workers`` processes (:func:`features.store.sources.read_files`; 1: in this process).
    A damaged manifest or a failed write (a full disk) is one line; the store is left as it was."""
    with mf.store_errors(store, writing=True):
        return _ingest(paths, store, skip_invalid=skip_invalid, wait=wait, workers=workers)


def _ingest(
    paths: Sequence[str | Path],
    store: str | Path,
    *,
    skip_invalid: bool = False,
    wait: float = DEFAULT_WAIT,
    workers: int = WORKERS,
) -> IngestSummary:
    """:func:`ingest` itself."""
    t0 = time.perf_counter()
    store = Path(store)
    if not paths:
        raise RecoupError("no input given: name X12 files, contract table files or folders")
    files, problems, skipped_files = expand(list(paths))
    inside = _inside(files, store)  # the store's own files (its quarantine copies, parts) are never input
    if inside:
        files = [p for p in files if p not in inside]
        skipped_files["files inside the store"] = skipped_files.get("files inside the store", 0) + len(inside)
    given = {Path(str(p)) for p in paths}
    inputs, more, skipped_more = classify(files, given)
    problems += more
    for k, v in skipped_more.items():
        skipped_files[k] = skipped_files.get(k, 0) + v
    if problems:
        raise RecoupError(_refusal(problems, hint=False))
    _prepare_store(store)
    return write_units(store, inputs, skipped_files, skip_invalid=skip_invalid, wait=wait, workers=workers, t0=t0)


def write_units(
    store: Path,
    inputs: list[InputFile],
    skipped_files: dict[str, int] | None = None,
    *,
    skip_invalid: bool = False,
    wait: float = DEFAULT_WAIT,
    workers: int = WORKERS,
    t0: float | None = None,
    given: Sequence[tuple[InputFile, FileUnits]] = (),
) -> IngestSummary:
    """One ingest of the files ``inputs`` and of the in-memory units ``given`` into the (prepared) ``store``, under
    its writer lock: decide, stage, commit the manifest last, publish (docs/store.md, "Atomicity")."""
    t0 = time.perf_counter() if t0 is None else t0
    skipped_files = skipped_files or {}
    every = [*inputs, *(f for f, _ in given)]
    with writer_lock(store, wait):
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")  # holding the lock
        conn = mf.connect(store, create=True)
        try:
            renamed, deleted = recover(store, *mf.committed(conn))
            if renamed or deleted:
                log.info("store: finished an interrupted ingest (%d part(s) published, %d dropped)", renamed, deleted)
            ingest_id = mf.next_ingest_id(conn)
            excluded: dict[str, list[str]] = {}
            while True:
                stager = Stager(store, ingest_id)
                batch = _Batch(conn, store, ingest_id, stager, excluded, workers)
                try:
                    batch.run(inputs, given)
                    late = batch.late_problems()
                    if late and skip_invalid:
                        stager.discard()
                        excluded.update(late)
                        continue
                    for key, probs in late.items():
                        unit = next(u for u, _, _ in batch.good if u.key == key)
                        unit.problems.extend(probs)
                        batch.bad.append((unit, next(f for u, f, _ in batch.good if u.key == key)))
                    if batch.bad and not skip_invalid:
                        raise RecoupError(_refusal([p for u, _ in batch.bad for p in u.problems]))
                    stager.flush()
                except BaseException:
                    stager.discard()
                    raise
                break
            summary = _summary(batch, store, every, skipped_files)
            summary.ingest = ingest_id
            qdir = _stage_quarantine(store, ingest_id, batch.bad) if batch.bad else None
            if qdir is not None:
                summary.quarantine = str(quarantine_dir(store, ingest_id))
            summary.seconds = time.perf_counter() - t0
            _pause("staged")
            try:
                mf.commit(conn, _commit(batch, every, summary, started, skip_invalid))
            except BaseException:
                if _committed(conn, ingest_id):  # interrupted just after COMMIT: the parts are the store's now
                    _publish(stager, qdir, store, ingest_id)
                    raise
                stager.discard()
                if qdir is not None:
                    shutil.rmtree(qdir, ignore_errors=True)
                raise
            _pause("committed")
            _publish(stager, qdir, store, ingest_id)
        finally:
            conn.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _committed(conn, ingest_id: int) -> bool:
    """Whether the manifest holds ingest ``ingest_id`` (its transaction committed)."""
    try:
        return conn.execute("SELECT 1 FROM ingests WHERE id = ?", (ingest_id,)).fetchone() is not None
    except Exception:
        return False


def _publish(stager: Stager, qdir: Path | None, store: Path, ingest_id: int) -> None:
    """Rename the committed ingest's staged parts and quarantine into place (recovery on the next open finishes it
    if this is interrupted)."""
    stager.publish()
    if qdir is not None:
        os.replace(qdir, quarantine_dir(store, ingest_id))
        fsync_dir(qdir.parent)


def _inside(files: list[Path], store: Path) -> set[Path]:
    """The files that lie inside ``store`` (e.g. a store kept in its own inbox folder)."""
    root = store.resolve()
    return {p for p in files if p.resolve().is_relative_to(root)}


def _refusal(problems: list[str], hint: bool = True) -> str:
    head = f"{len(problems)} problem(s); nothing was written" + (
        " (--skip-invalid ingests the good units and quarantines the bad ones):" if hint else ":"
    )
    return "\n".join([head, *("  - " + p for p in problems)])


def _summary(batch: _Batch, store: Path, inputs: list[InputFile], skipped_files: dict[str, int]) -> IngestSummary:
    c = batch.counts
    rejected: Counter = Counter()
    for unit, _ in batch.bad:
        rejected[_reason(unit, unit.problems[0]) if unit.problems else "excluded"] += 1
    return IngestSummary(
        store=str(store),
        files=len(inputs),
        files_already=batch.files_already,
        files_skipped=dict(skipped_files),
        units=batch.units,
        units_ingested=len(batch.good),
        units_already=batch.already,
        units_rejected=len(batch.bad),
        by_kind=dict(batch.by_kind),
        claims_added=c[ADDED],
        claims_replaced=c[REPLACED],
        claims_voided=c[VOIDED],
        claims_present=c[PRESENT],
        claims_superseded=c[SUPERSEDED],
        lines_stored=c["lines_stored"],
        lines_skipped=c["lines_skipped"],
        recoupments_added=c["recoupments_added"],
        recoupments_duplicate=c["recoupments_duplicate"],
        reviews_added=c["reviews_added"],
        reviews_replaced=c["reviews_replaced"],
        reviews_already=c["reviews_already"],
        remittances_waiting=batch.remittances_waiting(),
        rows=dict(batch.rows),
        skipped=dict(batch.skipped),
        rejected=dict(rejected),
    )


def _stage_quarantine(store: Path, ingest_id: int, bad: list[tuple[Unit, InputFile]]) -> Path:
    """Copies of the files of rejected units and ``reasons.txt``, staged (published after the commit)."""
    tmp = staged_quarantine_dir(store, ingest_id)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    copied: dict[Path, str] = {}
    lines = []
    for unit, f in bad:
        if f.path not in copied:
            tail = f.path.name.encode("utf-8", "replace")[-100:].decode("utf-8", "ignore")  # names: <= 255 bytes
            name = f"{len(copied) + 1:04d}-{tail}"
            shutil.copyfile(f.path, tmp / name)
            copied[f.path] = name
        where = f" (segment {unit.segment})" if unit.segment is not None else ""
        for p in unit.problems:
            lines.append(f"{copied[f.path]}{where}: {p}")
    (tmp / "reasons.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    fsync_dir(tmp)
    return tmp


def _commit(batch: _Batch, inputs: list[InputFile], summary: IngestSummary, started: str, skip: bool) -> mf.Commit:
    units = [
        mf.unit_row(u.key, u.kind, f.sha256, u.segment, u.control, rows, batch.ingest, "ingested")
        for u, f, rows in batch.good
    ]
    units += [
        mf.unit_row(
            u.key, u.kind, f.sha256, u.segment, u.control, {"problems": len(u.problems)}, batch.ingest, QUARANTINED
        )
        for u, f in batch.bad
    ]
    return mf.Commit(
        ingest=batch.ingest,
        started=started,
        finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        summary=asdict(summary),
        options={"skip_invalid": skip},
        files=[(f.sha256, str(f.path), f.size) for f in inputs],
        units=units,
        parts=batch.stager.parts,
        claims=batch.versions,
        recoupment_keys=batch.recoup_keys,
        complete_files=batch.complete_files(),
        review_keys=batch.review_keys,
    )


def ingest_cli(
    paths: Sequence[str | Path],
    into: Path,
    skip_invalid: bool = False,
    wait: float = DEFAULT_WAIT,
    workers: int = WORKERS,
) -> IngestSummary:
    """``recoup ingest``: ingest and print the summary (problems: one line each, exit 2, nothing written)."""
    summary = ingest(paths, into, skip_invalid=skip_invalid, wait=wait, workers=workers)
    print(summary)
    return summary
