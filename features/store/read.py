"""Reading a store as a claims history (docs/store.md, "Reading"): the live parts the manifest lists (optionally
only some months), claim versions resolved (the latest version of each claim_id; a void takes it out), the 835
data joined in (:func:`features.store.remit.apply_remittances`), then the contract's checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.contract.reviews import apply_reviews
from features.contract.schema import TABLES, History
from features.errors import RecoupError
from features.store import manifest as mf
from features.store.layout import MONTH_PATTERN, PARTITION_COLUMNS, staged
from features.store.unit import CONTRACT_TABLES, REMITTANCE_TABLES, STORE_TABLES
from features.store.writer import PRIVATE_COLUMNS

#: stored columns a read leaves out (the unit key of every row: for the manifest's users, not for the contract view)
SKIPPED_COLUMNS = ("_unit",)
#: the order of a row's version: (_ingest, _seq) as one integer
_SEQ_SPAN = 1 << 31


@dataclass
class StoreRead:
    """Tables read from a store (private columns kept) and what the reading dropped, by reason."""

    tables: dict[str, pa.Table | None]
    counts: dict[str, int] = field(default_factory=dict)
    ranged: bool = False  # only some months were read
    versioned: bool = True  # some claim_id has more than one stored version (False: known from the manifest)


def _month(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    text = str(value)[:7]
    if not MONTH_PATTERN.fullmatch(text):
        raise RecoupError(f"{name}: expected a month YYYY-MM (or a date YYYY-MM-DD), got {value!r}")
    return text


def _in_range(month: str | None, lo: str | None, hi: str | None) -> bool:
    if month is None:
        return True
    return (lo is None or month >= lo) and (hi is None or month <= hi)


def _parts(conn, table: str, lo: str | None, hi: str | None) -> list[mf.Part]:
    parts = mf.live_parts(conn, table)
    if lo is None and hi is None or PARTITION_COLUMNS[table] is None:
        return parts
    if table == "claims":
        return [p for p in parts if _in_range(p.month, lo, hi)]
    if table == "claim_lines":  # by the months of their claims (ref range), not their service dates
        return [
            p
            for p in parts
            if (p.ref_min is None and _in_range(p.month, lo, hi))
            or (p.ref_min is not None and (hi is None or p.ref_min <= hi) and (lo is None or (p.ref_max or "") >= lo))
        ]
    return parts  # recoupments, coverage, 835 data: all (filtered to the claims read below)


def _read_part(store: Path, part: mf.Part) -> pa.Table:
    path = store / part.file
    if not path.exists() and staged(path).exists():  # committed, not yet renamed by its (running) ingest
        path = staged(path)
    try:
        return pq.read_table(path, partitioning=None)  # the month is in the rows' own dates
    except (OSError, pa.ArrowException) as exc:
        raise RecoupError(f"{path}: a part listed in the store manifest cannot be read ({exc})") from None


def _read_table(store: Path, parts: list[mf.Part]) -> pa.Table:
    """The rows of the parts of one table: one Arrow dataset read (files in parallel); parts of differing schemas
    (a column added later) one by one, unified."""
    import pyarrow.dataset as ds

    paths = []
    for part in parts:
        path = store / part.file
        paths.append(str(path if path.exists() or not staged(path).exists() else staged(path)))
    try:
        dataset = ds.dataset(paths, format="parquet", partitioning=None)
        return dataset.to_table(columns=[c for c in dataset.schema.names if c not in SKIPPED_COLUMNS])
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pieces = [_read_part(store, p) for p in parts]
        table = pa.concat_tables(pieces, promote_options="permissive")
        return table.drop_columns([c for c in SKIPPED_COLUMNS if c in table.column_names])
    except (OSError, pa.ArrowException) as exc:
        raise RecoupError(f"{store}: a part listed in the store manifest cannot be read ({exc})") from None


def read_parts(store: str | Path, *, since: str | None = None, until: str | None = None) -> StoreRead:
    """The live rows of every table (claims and their lines only of the months ``since``..``until`` when given),
    versions not yet resolved."""
    store = Path(store)
    lo, hi = _month(since, "since"), _month(until, "until")
    conn = mf.connect(store, readonly=True)
    try:
        listed = {t: _parts(conn, t, lo, hi) for t in STORE_TABLES}
        versions = conn.execute("SELECT count(*) FROM claim_index").fetchone()[0]
        rows = conn.execute("SELECT coalesce(sum(rows), 0) FROM parts WHERE tbl='claims'").fetchone()[0]
    finally:
        conn.close()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:  # Arrow releases the GIL: tables are read side by side
        futures = {t: pool.submit(_read_table, store, parts) for t, parts in listed.items() if parts}
        tables: dict[str, pa.Table | None] = {t: futures[t].result() if t in futures else None for t in listed}
    return StoreRead(tables, ranged=lo is not None or hi is not None, versioned=rows != versions)


def _version(t: pa.Table) -> np.ndarray:
    return t["_ingest"].to_numpy().astype(np.int64) * _SEQ_SPAN + t["_seq"].to_numpy().astype(np.int64)


def _latest(t: pa.Table, key: str) -> pa.Table:
    """The row of the latest version of each ``key`` (ties: the last row)."""
    if pc.count_distinct(t[key]).as_py() == t.num_rows:
        return t
    df = pd.DataFrame({"k": t[key].to_numpy(zero_copy_only=False), "v": _version(t)})
    df["i"] = np.arange(len(df))
    keep = df.sort_values(["v", "i"], kind="stable").drop_duplicates("k", keep="last")["i"].to_numpy()
    return t.take(pa.array(np.sort(keep)))


def resolve(read: StoreRead) -> StoreRead:
    """Claim versions resolved: the latest version per claim_id (a void removes the claim, its lines and
    recoupments from the view), the lines of that version, providers latest per NPI, coverage rows deduplicated."""
    t = dict(read.tables)
    counts = dict(read.counts)
    claims = t.get("claims")
    if claims is None:
        return StoreRead(t, counts, read.ranged, read.versioned)
    multi = read.versioned and pc.count_distinct(claims["claim_id"]).as_py() < claims.num_rows
    n_void = 0
    if multi:  # a void (frequency 8) that superseded an earlier version takes the claim out of the view
        ids_all = pd.Series(claims["claim_id"].to_numpy(zero_copy_only=False))
        versioned = pa.array(ids_all[ids_all.duplicated(keep=False)].unique(), type=claims["claim_id"].type)
        claims = _latest(claims, "claim_id")
        void = pc.and_(pc.equal(claims["frequency_code"], "8"), pc.is_in(claims["claim_id"], versioned))
        n_void = pc.sum(void).as_py() or 0
    counts["claims_voided"] = n_void
    if n_void:
        claims = claims.filter(pc.invert(void))
    t["claims"] = claims
    ids = claims["claim_id"]
    lines = t.get("claim_lines")
    if lines is not None:
        if multi:  # the lines of each claim's latest version (the latest (_ingest, _seq) that sent lines)
            df = pd.DataFrame({"k": lines["claim_id"].to_numpy(zero_copy_only=False), "v": _version(lines)})
            lines = lines.filter(pa.array(df["v"].to_numpy() == df.groupby("k")["v"].transform("max").to_numpy()))
        if multi or n_void or read.ranged:
            lines = lines.filter(pc.is_in(lines["claim_id"], ids))
        t["claim_lines"] = lines
    rec = t.get("recoupments")
    if rec is not None and (multi or read.ranged):  # (an ingest checks that a recoupment's claim is known)
        inside = pc.is_in(rec["claim_id"], ids)
        counts["recoupments_outside_view"] = rec.num_rows - (pc.sum(inside).as_py() or 0)
        t["recoupments"] = rec.filter(inside)
    rev = t.get("reviews")
    if rev is not None:
        rev = latest_reviews(rev)
        if multi or n_void or read.ranged:
            rev = rev.filter(pc.is_in(rev["claim_id"], ids))
        t["reviews"] = rev
    if t.get("providers") is not None:
        t["providers"] = _latest(t["providers"], "npi")
    if t.get("coverage") is not None:
        t["coverage"] = _coverage(t["coverage"])
    return StoreRead(t, counts, read.ranged, read.versioned)


def latest_reviews(rev: pa.Table) -> pa.Table:
    """The latest stored row of each review (claim_id, reviewed_at to the second, outcome): a correction replaces the
    earlier row."""
    day = pc.strftime(pc.cast(rev["reviewed_at"], pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S")
    key = pc.binary_join_element_wise(
        pc.cast(rev["claim_id"], pa.large_string()),
        pc.cast(day, pa.large_string()),
        pc.cast(pc.cast(rev["outcome"], pa.string()), pa.large_string()),
        pa.scalar("|", pa.large_string()),
    )
    return _latest(rev.append_column("_key", key), "_key").drop_columns(["_key"])


def _coverage(cov: pa.Table) -> pa.Table:
    """Coverage rows sent by several units: a row sent again is dropped."""
    version = _version(cov)
    if len(version) and version.min() < version.max():
        cols = [c.name for c in TABLES["coverage"] if c.name in cov.column_names]
        keep = ~cov.select(cols).to_pandas().duplicated().to_numpy()
        if not keep.all():
            return cov.filter(pa.array(keep))
    return cov


def _to_pandas(t: pa.Table, private: bool) -> pd.DataFrame:
    if not private:
        t = t.drop_columns([c for c in PRIVATE_COLUMNS if c in t.column_names])
    return t.to_pandas(types_mapper=lambda ty: pd.ArrowDtype(ty) if pa.types.is_list(ty) else None)


def contract_tables(read: StoreRead) -> tuple[dict[str, pd.DataFrame | None], dict[str, int]]:
    """The resolved tables joined with the 835 data: the five contract tables (raw for the contract's checks)."""
    from features.store.remit import apply_remittances

    frames: dict[str, pd.DataFrame | None] = {}
    for name in CONTRACT_TABLES:
        tbl = read.tables.get(name)
        frames[name] = None if tbl is None else _to_pandas(tbl, private=False)
    for name in REMITTANCE_TABLES:
        tbl = read.tables.get(name)
        frames[name] = None if tbl is None else _to_pandas(tbl, private=True)
    out, counts = apply_remittances(frames)
    out["reviews"] = frames.get("reviews")  # not the 835's business: joined to the recoupments after the checks
    return out, {**read.counts, **counts}


def _plain(store: Path) -> dict[str, list[mf.Part]] | None:
    """The live parts of each contract table when the store's contract view is its stored rows as they are: one
    version per claim_id and no 835 row (nothing to resolve or join); else None."""
    conn = mf.connect(store, readonly=True)
    try:
        versions = conn.execute("SELECT count(*) FROM claim_index").fetchone()[0]
        rows = conn.execute("SELECT coalesce(sum(rows), 0) FROM parts WHERE tbl='claims'").fetchone()[0]
        marks = ",".join("?" * len(REMITTANCE_TABLES))
        remits = conn.execute(f"SELECT count(*) FROM parts WHERE tbl IN ({marks})", REMITTANCE_TABLES).fetchone()[0]
        if rows != versions or remits:
            return None
        return {t: mf.live_parts(conn, t) for t in CONTRACT_TABLES}
    finally:
        conn.close()


def _read_plain(store: Path, listed: dict[str, list[mf.Part]], max_shown: int) -> History:
    """A plain store (:func:`_plain`) read and checked table by table: each table is checked by the contract's rules
    (the ones :func:`features.contract.validate_frames` applies: every column and row rule, then the relations) as
    soon as it is read, while the next tables are still being read (Arrow reads without the GIL)."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from features.contract import ContractError, check_relations, validate_table
    from features.contract.schema import OPTIONAL_TABLES, REQUIRED_TABLES

    def read(table: str) -> pd.DataFrame | None:
        if not listed.get(table):
            return None
        t = _read_table(store, listed[table])
        if table == "providers":
            t = _latest(t, "npi")
        elif table == "coverage":
            t = _coverage(t)
        elif table == "reviews":
            t = latest_reviews(t)
        return _to_pandas(t, private=False)

    order = REQUIRED_TABLES + OPTIONAL_TABLES
    problems = []
    typed: dict[str, pd.DataFrame | None] = {}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {t: pool.submit(read, t) for t in order}
        for table in order:
            raw = futures[table].result()
            if raw is None:
                typed[table] = None
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # as validate_frames: notes are not shown
                df, probs, _ = validate_table(raw, table, table)
            problems.extend(probs)
            typed[table] = df
    if typed.get("claims") is None or typed.get("claim_lines") is None:
        raise RecoupError(f"{store}: the store has no claims yet")
    problems.extend(check_relations(typed))
    if problems:
        raise ContractError(problems, max_shown=max_shown)
    return apply_reviews(History(**typed))[0]  # type: ignore[arg-type]


def read_store(
    store: str | Path, *, since: str | None = None, until: str | None = None, max_shown: int = 20
) -> History:
    """A store as a validated :class:`History` (``source`` = the store); ``since``/``until`` (months YYYY-MM, or
    dates: their month) read only the claims submitted in those months, pruning the other partitions."""
    with mf.store_errors(store):
        return _read_store(Path(store), since, until, max_shown)


def _read_store(store: Path, since: str | None, until: str | None, max_shown: int) -> History:
    from features.contract import validate_frames

    plain = _plain(store) if since is None and until is None else None
    if plain is not None:
        history = _read_plain(store, plain, max_shown)
        history.source = str(store)
        return history
    tables, _ = contract_tables(resolve(read_parts(store, since=since, until=until)))
    if tables.get("claims") is None or tables.get("claim_lines") is None:
        raise RecoupError(f"{store}: the store has no claims{' in these months' if since or until else ''} yet")
    history = apply_reviews(validate_frames(tables, max_shown=max_shown))[0]
    history.source = str(store)
    return history


# ---------------------------------------------------------------------- reading by partition (features.cluster.table)
def plain_parts(store: str | Path) -> dict[str, list[mf.Part]] | None:
    """The live parts of each contract table when the store's contract view is its rows as stored (one version per
    claim_id, no 835 part: nothing to resolve across months), else None. Such a store can be read month by month."""
    return _plain(Path(store))


def read_part_rows(store: str | Path, parts: list[mf.Part], claim_ids: np.ndarray | None = None) -> pd.DataFrame:
    """The rows of these parts in the contract's columns (raw, for the contract's checks), in the order a full read
    gives them; only those of ``claim_ids`` when given. For the providers and coverage: latest per NPI, deduplicated,
    as a full read."""
    t = _read_table(Path(store), parts)
    if claim_ids is not None:
        t = t.filter(pc.is_in(t["claim_id"], value_set=pa.array(claim_ids, type=t["claim_id"].type)))
    table = Path(parts[0].file).parts[0] if parts else ""
    if table == "providers":
        t = _latest(t, "npi")
    elif table == "coverage":
        t = _coverage(t)
    return _to_pandas(t, private=False)


def month_argument(value: str | None, name: str) -> str | None:
    """A month option (YYYY-MM, or a date: its month) checked; None stays None."""
    return _month(value, name)
