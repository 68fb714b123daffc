"""The two column checkers give exactly the same result: the row-wise one of small tables and the vectorized one.

``features.contract.load`` checks each column of a table of at most ``FAST_PATH_MAX_ROWS`` rows value by value in
plain Python (one claim from the scoring service: ~0.7 ms instead of ~27 ms) and larger ones with vectorized
pandas/pyarrow; both read their patterns, bounds and messages from ``features.contract.schema``. The rules across
rows and tables (unique ids, date order, orphans) are one implementation for every size, so there is nothing to
compare there. Here many random small tables, valid and invalid, in every representation a caller may hand over
(object columns of text, numbers, bools, lists; pandas ``str`` / ``string`` columns; missing and extra columns; a
shuffled index) are checked both ways, at the seam (each column through ``_fast_column`` and ``_vector_column``)
and whole (``validate_table`` / ``validate_frames``): the typed frames must be equal value for value and dtype for
dtype (categories, Arrow types, the sign of zeros included) and the problems and notes must be equal.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import pandas as pd
import pytest

import features.contract.load as contract
from features.contract.bounds import MAX_CHARS, MAX_DIAGNOSIS_CODES, MAX_DIAGNOSIS_POINTERS
from features.contract import TABLES, ContractError, Problem, validate_frames, validate_table
from tests.helpers.claims import service_claim

pytestmark = pytest.mark.filterwarnings("ignore:.*ignoring unknown column")

# ------------------------------------------------------------------------------ random raw values

NA = pd.NA
NAN = float("nan")
BLANKS = ["", "   ", None, NAN, NA, "\t"]
#: texts at and just over each length bound (features/contract/bounds.py), padded or not
AT_BOUNDS = [
    x
    for f in ("claim_id", "patient_id", "prior_auth_number", "state", "carc")
    for x in ("X" * MAX_CHARS[f], "X" * (MAX_CHARS[f] + 1), " " + "X" * MAX_CHARS[f] + " ")
]

POOLS: dict[str, list] = {
    "id": ["C1", "C2", "C3", " C1 ", "c1", 12, 3.0, True, "Ç1", "C\u00a01", "a;b"] + AT_BOUNDS + BLANKS,
    "npi": [
        "1234567893",
        "1987654321",
        " 1234567893 ",
        "123456789",
        "12345678901",
        "12345x7893",
        1234567893,
        1234567893.0,
        12345,
        "１２３４５６７８９０",
    ]
    + BLANKS,
    "pos": ["11", "22", "1", " 2", "02", "111", "ab", "1a", 11, 1, 1.0, "٣"] + BLANKS,
    "procedure": [
        "99213",
        "36415",
        "g0008",
        " G0008 ",
        "0001A",
        "9921",
        "992133",
        "ABCDE",
        "A123",
        "1234a",
        99213,
        99213.0,
        "99.13",
        "éé",
    ]
    + BLANKS,
    "date": [
        "2024-01-05",
        " 2024-02-29 ",
        "2023-02-29",
        "2024-13-01",
        "2024-00-10",
        "2024-01-32",
        "2024-01-00",
        "2024-04-31",
        "2024-1-5",
        "03/01/2025",
        "20240105",
        "0000-01-01",
        "0001-01-01",
        "9999-12-31",
        "1600-06-01",
        "2262-04-12",
        20240105,
        "2024-01-05T00:00",
        "2024-01-05 00:00",
        "２０２４-01-05",
        "2024-01-05x",
        True,
    ]
    + BLANKS,
    "datetime": [
        "2024-01-05",
        " 2024-02-29 ",
        "2024-01-05T14:05:09",
        "2024-01-05T14:05:09Z",
        "2024-01-05 14:05:09",
        "2024-01-05T14:05:09+00:00",
        "2024-01-05T14:05:09+02:00",
        "2024-01-05T14:05",
        "2024-01-05T24:00:00",
        "2024-01-05T23:60:00",
        "2024-01-05T23:59:60",
        "2024-01-05T23:59:59.5",
        "2024-02-30T01:00:00",
        "2024-1-5T01:00:00",
        "2199-12-31T23:59:59",
        "2200-01-01T00:00:00",
        "1899-12-31T23:59:59",
        "2024-01-05t14:05:09",
        "２０２４-01-05T14:05:09",
        20240105,
        True,
    ]
    + BLANKS,
    "money": [
        "120.50",
        "80",
        "0",
        "0.0",
        "-0",
        "-0.0",
        "-5",
        "-0.01",
        "1e3",
        " 7 ",
        "abc",
        250.0,
        0.1,
        0.30000000000000004,
        -2.0,
        0.0,
        -0.0,
        3,
        0,
        -1,
        "1.",
        ".5",
        "+3",
        "+.5",
        "1,5",
        "inf",
        "-inf",
        "nan",
        "NaN",
        "12345678901234567",
        "123456789012345",
        "00012",
        True,
        1e20,
        1e-7,
        float("inf"),
        "1_000",
        "0x10",
        "--1",
        ".",
        "+",
        "1.2.3",
        "٣",
        np.float64(2.5),
    ]
    + BLANKS,
    "int_pos": [
        "1",
        "2",
        " 3 ",
        "0",
        "-1",
        "1.5",
        "2.0",
        "x",
        1,
        2,
        3.0,
        2.5,
        0,
        -3,
        "99999999999",
        "2147483647",
        "2147483648",
        "1e1",
        True,
        "01",
        "+2",
        ".0",
    ]
    + BLANKS,
    "bool": ["true", "FALSE", "yes", "N", "1", "0", "t", " y ", True, False, "maybe", 1, 0, 1.0, 2, "是"] + BLANKS,
    "diagnosis_codes": [
        "E119;I10",
        "e119; i10 ",
        "E11.9",
        "Z0000",
        "M545",
        ";",
        " ; ",
        "E119;;I10",
        "E119;",
        ["E119", "I10"],
        [],
        ["e119"],
        ("E119",),
        ["E11.9"],
        [" Z0000 ", ""],
        ["E119", 5],
        5,
        1.5,
        "ÉÉ",
        ["Ä"],
        ["E119", None],
        "A1",
        "E1199999",
        "E11999999",
        ["E119;I10"],
        np.array(["E119"]),
        ["E119"] * MAX_DIAGNOSIS_CODES,
        ";".join(["I10"] * (MAX_DIAGNOSIS_CODES + 1)),
        ["E119"] * (MAX_DIAGNOSIS_CODES + 1),
    ]
    + BLANKS,
    "modifiers": [
        "25",
        "RT;LT",
        "25;59;XU;RT;LT",
        "25;59;XU;RT",
        "2",
        "rt",
        " lt ;",
        ["25"],
        [],
        ["25", "59", "XU", "RT", "LT"],
        [" lt "],
        ("59",),
        "2 5",
        25,
        [25],
        "ÀB",
    ]
    + BLANKS,
    "diagnosis_pointers": [
        "1;2",
        "1",
        "12",
        "13",
        "0",
        ";",
        " 1 ; 2 ",
        "01",
        "-1",
        "1.0",
        "100",
        "x",
        [1, 2],
        ["1", "2"],
        [],
        [13],
        ["x"],
        [0],
        (3,),
        [1.0],
        2,
        2.0,
        "١",
        list(range(1, MAX_DIAGNOSIS_POINTERS + 1)),
        list(range(1, MAX_DIAGNOSIS_POINTERS + 2)),
        ";".join(["1"] * (MAX_DIAGNOSIS_POINTERS + 1)),
    ]
    + BLANKS,
    "str": ["PA1", " x ", "OH", "co-97", "CO-18", 5, 2.5, "ñ"] + AT_BOUNDS + BLANKS,
}
ENUM_EXTRA = [
    "gold",
    "",
    " Medicare ",
    "PROFESSIONAL",
    "Commercial",
    "1",
    "7",
    "8",
    1,
    7.0,
    8,
    "07",
    "other",
    "Duplicate",
    "é",
]


def pool(col: contract.Column) -> list:
    if col.kind == "enum":
        return list(col.levels) + [v.upper() for v in col.levels] + ENUM_EXTRA + BLANKS
    if col.kind in ("money_pos", "units"):
        return POOLS["money"]
    if col.kind in ("list_str", "list_int"):
        return POOLS[col.name]
    return POOLS[col.kind]


def good(col: contract.Column, rng: random.Random, i: int):
    """A valid value, as the service or a CSV export would give it."""
    k = col.kind
    return {
        "id": f"C{rng.randint(1, 4)}" if col.name == "claim_id" else f"P{i}",
        "npi": rng.choice(["1234567893", 1234567893]),
        "enum": rng.choice(col.levels) if col.levels else None,
        "pos": rng.choice(["11", "02", "2", 22]),
        "procedure": rng.choice(["99213", "36415", "G0008", "0001a"]),
        "date": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "datetime": rng.choice([f"2024-03-{rng.randint(1, 28):02d}", f"2024-03-02T{rng.randint(0, 23):02d}:05:09Z"]),
        "money": rng.choice([120.5, "80", 0.0, 49.99, 3]),
        "money_pos": rng.choice([120.5, "80", 49.99, 3]),
        "units": rng.choice([1.0, 2, "1.5"]),
        "int_pos": i + 1,
        "bool": rng.choice([True, False, None, "yes"]),
        "list_str": rng.choice([["E119", "I10"], "E119;I10", ["Z0000"]])
        if col.name == "diagnosis_codes"
        else rng.choice([["25"], [], None, "RT;LT"]),
        "list_int": rng.choice([[1, 2], ["1"], [], None, "1;2"]),
        "str": rng.choice(["PA1", None, "CO-97"]),
    }[k]


def random_table(table: str, rng: random.Random, *, n: int | None = None, p_bad: float = 0.3) -> pd.DataFrame:
    n = n or rng.randint(1, 12)
    container = rng.choice(["object", "object", "object", "str", "string"])
    cols: dict[str, list] = {}
    for col in TABLES[table]:
        if rng.random() < 0.04:  # a missing column, required or not
            continue
        vals = [rng.choice(pool(col)) if rng.random() < p_bad else good(col, rng, i) for i in range(n)]
        cols[col.name] = vals
    if rng.random() < 0.15:
        cols["unknown_extra"] = [rng.choice(["x", 1, None]) for _ in range(n)]
    order = list(cols)
    if rng.random() < 0.3:
        rng.shuffle(order)
    df = pd.DataFrame({c: pd.Series(cols[c], dtype=object) for c in order})
    if container != "object":  # text columns only hold text (or missing) in a str/string frame
        for c in df.columns:
            if all(v is None or isinstance(v, str) or (isinstance(v, float) and v != v) or v is NA for v in df[c]):
                df[c] = df[c].astype(container)
    if rng.random() < 0.2:
        df.index = pd.Index(rng.sample(range(100, 100 + 2 * n), n))
    elif rng.random() < 0.1:
        df.index = pd.RangeIndex(5, 5 + n)
    return df


def valid_history(rng: random.Random, p_bad: float = 0.0) -> dict[str, pd.DataFrame]:
    """A small consistent history (unique ids, every claim with lines, ...); ``p_bad`` of cells spoiled."""
    n = rng.randint(1, 8)
    ids = [rng.choice([f"C{i}", f" C{i} ", f"c-{i}"]) for i in range(n)]
    key = [i.strip() for i in ids]
    claims = random_table("claims", rng, n=n, p_bad=0.0)
    claims = pd.DataFrame(
        {
            c.name: [good(c, rng, i) for i in range(n)]
            for c in TABLES["claims"]
            if c.name in claims.columns or c.required or rng.random() < 0.5
        },
        dtype=object,
    )
    claims["claim_id"] = ids
    claims["submitted_date"] = [f"2024-03-{rng.randint(1, 28):02d}" for _ in range(n)]
    if "paid_date" in claims.columns:
        claims["paid_date"] = [rng.choice([None, "", f"2024-04-{rng.randint(1, 30):02d}"]) for _ in range(n)]
    owner = list(range(n)) + [rng.randrange(n) for _ in range(rng.randint(0, 10))]
    count: dict[int, int] = {}
    rows = []
    for o in owner:
        count[o] = count.get(o, 0) + 1
        rows.append((o, count[o]))
    lines = pd.DataFrame(
        {
            c.name: [good(c, rng, i) for i in range(len(rows))]
            for c in TABLES["claim_lines"]
            if c.required or rng.random() < 0.7
        },
        dtype=object,
    )
    lines["claim_id"] = [rng.choice([key[o], f" {key[o]}"]) for o, _ in rows]
    lines["line_number"] = [rng.choice([k, str(k), float(k), f" {k} "]) for _, k in rows]
    out = {"claims": claims, "claim_lines": lines}
    if rng.random() < 0.5:
        m = rng.randint(1, 5)
        out["recoupments"] = pd.DataFrame(
            {
                "claim_id": [rng.choice(key) for _ in range(m)],
                "recouped_date": "2024-06-01",
                "recouped_amount": [rng.choice([5, "12.5", 0.01]) for _ in range(m)],
                "carc": [rng.choice(["CO-97", "", None, "18", "PR-1", "co 50"]) for _ in range(m)],
                "cause": [rng.choice(["", None, "Documentation", "units"]) for _ in range(m)],
            },
            dtype=object,
        )
    if rng.random() < 0.5:
        m = rng.randint(1, 4)
        out["providers"] = pd.DataFrame(
            {"npi": [f"12345678{i:02d}" for i in range(m)], "state": [rng.choice(["OH", None]) for _ in range(m)]},
            dtype=object,
        )
    if rng.random() < 0.5:
        out["coverage"] = pd.DataFrame(
            {
                "patient_id": ["P0"],
                "payer_id": ["X"],
                "plan_type": ["Medicare"],
                "coverage_start": ["2023-01-01"],
                "coverage_end": [rng.choice(["", "2025-01-01"])],
            },
            dtype=object,
        )
    for name in list(out):
        df = out[name] = out[name].astype(object)
        spec = {c.name: c for c in TABLES[name]}
        for c in df.columns:
            for i in range(len(df)):
                if rng.random() < p_bad:
                    df.at[i, c] = rng.choice(pool(spec[c]))
        if rng.random() < 0.3:  # as a CSV reader hands text over
            for c in df.columns:
                if all(v is None or isinstance(v, str) for v in df[c]):
                    df[c] = df[c].astype(rng.choice(["str", "string"]))
    return out


# ------------------------------------------------------------------------------ comparing both paths


def vectorized(monkeypatch, fn, *args, **kw):
    """``fn`` with the row-wise checker switched off (every table goes the vectorized way)."""
    with monkeypatch.context() as m:
        m.setattr(contract, "FAST_PATH_MAX_ROWS", 0)
        return fn(*args, **kw)


def assert_same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert list(a.columns) == list(b.columns)
    assert a.index.equals(b.index) and type(a.index) is type(b.index)
    for c in a.columns:
        x, y = a[c], b[c]
        assert x.dtype == y.dtype and str(x.dtype) == str(y.dtype), c
        if isinstance(x.dtype, pd.CategoricalDtype):
            assert x.cat.categories.dtype == y.cat.categories.dtype, c
            assert x.cat.categories.tolist() == y.cat.categories.tolist(), c
            assert x.cat.codes.tolist() == y.cat.codes.tolist(), c
        elif isinstance(x.dtype, (pd.ArrowDtype, pd.StringDtype)) and hasattr(x.array, "_pa_array"):
            assert x.array._pa_array.type == y.array._pa_array.type, c
            assert x.array._pa_array.null_count == y.array._pa_array.null_count, c
            assert x.tolist() == y.tolist(), c
        elif x.dtype.kind == "f":
            xv, yv = x.to_numpy(), y.to_numpy()
            assert np.array_equal(np.signbit(xv), np.signbit(yv)), c  # -0.0 stays -0.0
            assert np.array_equal(xv, yv, equal_nan=True), c


def check_columns(raw: pd.DataFrame, table: str, only: str | None = None) -> None:
    """Each column of ``raw`` (or column ``only``) checked both ways at the seam: the row-wise checker, unless a
    value makes it hand the column over (then both ways are the vectorized checker), and the vectorized one."""
    raw = raw.reset_index(drop=True)
    for col in TABLES[table]:
        if col.name not in raw.columns or (only is not None and col.name != only):
            continue
        src = raw[col.name]
        if not contract._fast_ok(src):
            continue
        fast_problems: list[Problem] = []
        vec_problems: list[Problem] = []
        try:
            fast = contract._fast_column(col, src.tolist(), "t.csv", fast_problems)
        except contract._Odd:
            continue
        with warnings.catch_warnings(action="ignore"):
            vec = contract._vector_column(col, src, raw.index, "t.csv", vec_problems)
        assert fast_problems == vec_problems, col.name
        assert_same_frame(
            pd.DataFrame({col.name: fast}, index=raw.index, copy=False), pd.DataFrame({col.name: vec}, index=raw.index)
        )


def check_table(monkeypatch, raw: pd.DataFrame, table: str) -> tuple[list[Problem], pd.DataFrame]:
    before = raw.copy()
    fa, pa_, na = validate_table(raw, table, f"{table}.csv")
    fb, pb, nb = vectorized(monkeypatch, validate_table, raw, table, f"{table}.csv")
    pd.testing.assert_frame_equal(raw, before)  # the input is not changed
    assert pa_ == pb
    assert na == nb
    assert_same_frame(fa, fb)
    return pa_, fa


def outcome(fn, tables):
    try:
        return fn(tables), None
    except Exception as exc:  # noqa: BLE001 - any failure must be the same both ways
        return None, exc


def check_frames(monkeypatch, tables: dict) -> ContractError | None:
    ha, ea = outcome(validate_frames, tables)
    hb, eb = vectorized(monkeypatch, outcome, validate_frames, tables)
    assert (ea is None) == (eb is None)
    if ea is not None:
        assert type(ea) is type(eb) and str(ea) == str(eb)
        if not isinstance(ea, ContractError):
            return None
        assert ea.problems == eb.problems
        return ea
    for name in ("claims", "claim_lines", "coverage", "providers", "recoupments"):
        a, b = getattr(ha, name), getattr(hb, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert_same_frame(a, b)
    return None


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("table", list(TABLES))
@pytest.mark.parametrize("seed", range(30))
def test_random_small_tables_equal_both_ways(monkeypatch, table, seed):
    rng = random.Random(hash((table, seed)) & 0xFFFF_FFFF)
    for p_bad in (0.0, 0.05, 0.3, 1.0):
        raw = random_table(table, rng, p_bad=p_bad)
        check_columns(raw, table)
        if p_bad == 0.3:
            check_table(monkeypatch, raw, table)


@pytest.mark.parametrize("table", ["claims", "claim_lines"])
@pytest.mark.parametrize("n", [150, 700, contract.FAST_PATH_MAX_ROWS])
def test_random_large_tables_equal_both_ways(monkeypatch, table, n):
    """Up to the row-wise limit (a batch of the service: up to 1,000 claims and their lines)."""
    rng = random.Random(n)
    for p_bad in (0.0, 0.01, 0.2):
        check_table(monkeypatch, random_table(table, rng, n=n, p_bad=p_bad), table)


@pytest.mark.parametrize("seed", range(150))
def test_random_small_histories_equal_both_ways(monkeypatch, seed):
    """Whole validate_frames calls (relations across tables, ContractError text included)."""
    rng = random.Random(seed)
    p_bad = rng.choice([0.0, 0.0, 0.02, 0.1, 0.4])
    tables = {
        "claims": random_table("claims", rng, p_bad=p_bad),
        "claim_lines": random_table("claim_lines", rng, p_bad=p_bad),
    }
    for opt in ("coverage", "providers", "recoupments"):
        if rng.random() < 0.3:
            tables[opt] = random_table(opt, rng, p_bad=p_bad)
    check_frames(monkeypatch, tables)


def test_random_valid_histories_equal_both_ways(monkeypatch):
    """Consistent histories (most validate), some with a few spoiled cells."""
    rng = random.Random(2024)
    passed = failed = 0
    for _ in range(150):
        err = check_frames(monkeypatch, valid_history(rng, p_bad=rng.choice([0.0, 0.0, 0.0, 0.01, 0.05])))
        passed += err is None
        failed += err is not None
    assert passed > 60 and failed > 10  # both outcomes are exercised


def test_every_pool_value_alone_in_every_column(monkeypatch):
    """Each edge value in each column of an otherwise valid one-row table."""
    rng = random.Random(7)
    for table, spec in TABLES.items():
        base = {c.name: good(c, rng, 0) for c in spec}
        for col in spec:
            for v in pool(col):
                raw = pd.DataFrame({k: pd.Series([v if k == col.name else x], dtype=object) for k, x in base.items()})
                check_columns(raw, table, only=col.name)


def test_missing_and_extra_columns(monkeypatch):
    rng = random.Random(3)
    for table, spec in TABLES.items():
        for col in spec:
            raw = random_table(table, rng, n=4, p_bad=0.0)
            raw = raw.drop(columns=[col.name], errors="ignore")
            raw["zzz"] = "extra"
            probs, typed = check_table(monkeypatch, raw, table)
            if col.required:
                assert any(p.column == col.name and "present" in p.expected for p in probs)
                assert col.name not in typed.columns
        check_table(monkeypatch, pd.DataFrame({"zzz": ["x"]}), table)  # nothing but an unknown column


def test_duplicates_orphans_and_paid_before_submitted(monkeypatch):
    claims = pd.DataFrame(
        {
            "claim_id": ["C1", "C1", "", None, "C5"],
            "patient_id": "P",
            "billing_npi": "1234567893",
            "payer_id": "X",
            "plan_type": "medicare",
            "claim_type": "professional",
            "place_of_service": "11",
            "frequency_code": "1",
            "submitted_date": ["2024-01-05", "2024-01-05", "2024-01-05", "", "2024-03-01"],
            "total_charge": "1",
            "diagnosis_codes": "E119",
            "paid_date": ["2024-01-01", "2024-01-05", "", "2024-01-01", "2024-02-01"],
        },
        dtype=object,
    )
    lines = pd.DataFrame(
        {
            "claim_id": ["C1", "C1", "C9", None, "C1", "C5"],
            "line_number": ["1", "1", "1", "2", "x", "x"],
            "service_date": "2024-01-01",
            "procedure_code": "99213",
            "units": "1",
            "line_charge": "1",
        },
        dtype=object,
    )
    rec = pd.DataFrame(
        {
            "claim_id": ["C1", "C7", None],
            "recouped_date": "2024-05-01",
            "recouped_amount": "5",
            "carc": ["CO-97", "", None],
        },
        dtype=object,
    )
    err = check_frames(monkeypatch, {"claims": claims, "claim_lines": lines, "recoupments": rec})
    assert err is not None
    got = {(p.file, p.column, p.expected.split(" (")[0]) for p in err.problems}
    assert ("claims", "claim_id", "unique claim ids") in got
    assert ("claims", "paid_date", "a date on or after submitted_date") in got
    assert ("claim_lines", "line_number", "unique line numbers within a claim") in got
    assert ("claim_lines", "claim_id", "a claim_id present in claims") in got
    assert ("recoupments", "claim_id", "a claim_id present in claims") in got


def test_claims_from_the_service_take_the_row_wise_path(monkeypatch):
    """A CLAIM turned into frames by the service is checked without a single vectorized column."""
    from serving.schemas import Claim, raw_frames

    claim = Claim.model_validate(service_claim(5, plan_type="Medicare"))
    rc, rl, _, _ = raw_frames([claim])
    calls = []
    real = contract._vector_column
    monkeypatch.setattr(contract, "_vector_column", lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    h = validate_frames({"claims": rc, "claim_lines": rl})
    assert calls == []
    monkeypatch.undo()
    check_frames(monkeypatch, {"claims": rc, "claim_lines": rl})
    assert h.claims["plan_type"].tolist() == ["medicare"]


def test_random_service_claims_equal_both_ways(monkeypatch):
    """Claims as the service builds them (pydantic models -> raw_frames), valid and invalid."""
    from serving.schemas import Claim, raw_frames

    rng = random.Random(11)
    for k in range(150):
        lines = []
        for j in range(rng.randint(1, 10)):
            lines.append(
                {
                    "line_number": rng.choice([j + 1, j + 1, j + 1, 1, 0, -1]),
                    "service_date": rng.choice(["2025-03-01", "2025-02-30", "03/01/2025", " 2025-03-01", "2025-3-1"]),
                    "procedure_code": rng.choice(["99214", "36415", "g0008", "9921", 99213]),
                    "modifiers": rng.choice(
                        [None, ["25"], [], "RT;LT", ["rt", "lt", "59", "XU"], ["2"]]
                    ),  # <= 4: schema
                    "units": rng.choice([1, 2.5, 0, -2, 1e-7, 0.30000000000000004]),
                    "line_charge": rng.choice([50.0, 0, -1.5, 1e20, 12.34]),
                    "diagnosis_pointers": rng.choice([None, [1, 2], [], [13], "1;2", [0]]),
                }
            )
        c = {
            "claim_id": rng.choice(["C-1", "C-2", " C-3 ", 17]),
            "patient_id": "P-1",
            "billing_npi": rng.choice(["1234567890", "12345", 1234567890]),
            "rendering_npi": rng.choice([None, "1234567890", "x"]),
            "payer_id": "MCR",
            "plan_type": rng.choice(["medicare", "MEDICAID", "gold"]),
            "claim_type": rng.choice(["professional", "Institutional", "x"]),
            "place_of_service": rng.choice(["11", "2", 22, "1A"]),
            "frequency_code": rng.choice(["1", "7", "9"]),
            "submitted_date": rng.choice(["2025-03-04", "2025-02-29", "2025-3-4"]),
            "total_charge": rng.choice([250.0, 0, -3.0]),
            "diagnosis_codes": rng.choice([["E119", "I10"], "E119;I10", ["E11.9"], [], ["e119"]]),
            "prior_auth_number": rng.choice([None, "PA1"]),
            "has_attachment": rng.choice([None, True, False]),
            "lines": lines,
        }
        rc, rl, _, _ = raw_frames([Claim.model_validate(c)])
        check_columns(rc, "claims")
        check_columns(rl, "claim_lines")
        if k < 15:
            check_frames(monkeypatch, {"claims": rc, "claim_lines": rl})


def test_large_tables_still_go_the_vectorized_way(monkeypatch):
    rng = random.Random(5)
    raw = random_table("claim_lines", rng, n=contract.FAST_PATH_MAX_ROWS + 1, p_bad=0.1)
    calls = []
    real = contract._vector_column
    monkeypatch.setattr(contract, "_vector_column", lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    validate_table(raw, "claim_lines", "x")
    assert len(calls) == sum(c.name in raw.columns or not c.required for c in TABLES["claim_lines"])


def test_unknown_column_warning_still_emitted():
    raw = random_table("providers", random.Random(1), n=2, p_bad=0.0)
    raw["zzz"] = "x"
    with pytest.warns(UserWarning, match="ignoring unknown column"):
        validate_table(raw, "providers", "providers.csv")
