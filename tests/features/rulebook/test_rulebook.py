"""Spot checks of the packaged CMS rulebook against facts of the published 2024Q3 tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.rulebook import PTP_BYPASS_MODIFIERS, Rulebook
from features.rulebook import build as rulebook_build
from tests.helpers.paths import shared_path


def day(text: str) -> np.ndarray:
    return np.array([text], dtype="datetime64[s]")


def ptp(rb, c1, c2, date="2024-08-01", claim_type="professional") -> int:
    return int(rb.ptp_lookup(np.array([c1]), np.array([c2]), day(date), claim_type)[0])


def test_version(rb):
    assert rb.version == "2024Q3"
    assert rb.meta["ncci_ptp"] == "ncci_ptp_practitioner_2024-07-01.csv.gz"


@pytest.mark.parametrize(
    "c1, c2, indicator",
    [("29880", "29881", 1), ("43239", "43235", 0), ("93000", "93005", 1)],
)
def test_ptp_spot_checks_practitioner(rb, c1, c2, indicator):
    assert ptp(rb, c1, c2) == indicator
    assert ptp(rb, c2, c1) == -1  # an edit is directional: column 1 comprehensive, column 2 component


def test_ptp_vectorized_mixed_inputs(rb):
    c1 = pd.Series(["29880", "43239", "93000", "99999", None, "29880"], dtype="string")
    c2 = pd.Series(["29881", "43235", "93005", "29881", "29881", "ZZZZZ"], dtype="string")
    dates = pd.Series(pd.to_datetime(["2024-08-01"] * 6)).astype("datetime64[s]")
    out = rb.ptp_lookup(c1, c2, dates)
    assert out.dtype == np.int8
    assert out.tolist() == [1, 0, 1, -1, -1, -1]
    # one date for all pairs, dates as strings, per-line claim types
    assert rb.ptp_lookup(c1, c2, np.datetime64("2024-08-01")).tolist() == [1, 0, 1, -1, -1, -1]
    assert rb.ptp_lookup(["29880"], ["29881"], ["2024-08-01"]).tolist() == [1]
    ct = np.array(["professional", "institutional"])
    assert rb.ptp_lookup(["00100", "00100"], ["36010", "36010"], day("2024-08-01").repeat(2), ct).tolist() == [0, 1]


def test_ptp_unknown_codes(rb):
    assert ptp(rb, "ZZZZZ", "29881") == -1
    assert ptp(rb, "29880", "00000") == -1
    assert ptp(rb, "ZZZZZ", "YYYYY") == -1
    assert (
        rb.ptp_lookup(
            np.array([], dtype=object), np.array([], dtype=object), np.array([], dtype="datetime64[s]")
        ).tolist()
        == []
    )


def test_ptp_deleted_pair_active_only_up_to_its_deletion_date(rb):
    # 0001A/0591T appears once, deleted 2023-12-31 (indicator 1)
    t = rb.table("ptp_professional")
    rows = t[(t["column_1"] == "0001A") & (t["column_2"] == "0591T")]
    assert rows["deletion_date"].tolist() == [20231231]
    assert ptp(rb, "0001A", "0591T", "2023-06-01") == 1
    assert ptp(rb, "0001A", "0591T", "2023-12-31") == 1  # in force on its deletion date
    assert ptp(rb, "0001A", "0591T", "2024-01-01") == -1
    assert ptp(rb, "0001A", "0591T", "2024-08-01") == -1


def test_ptp_pair_with_several_periods_uses_the_period_of_the_service_date(rb):
    # 0007U/0328U: indicator 0 until 2023-06-30, then a new row with indicator 1 (still active)
    assert ptp(rb, "0007U", "0328U", "2022-01-15") == 0
    assert ptp(rb, "0007U", "0328U", "2023-06-30") == 0
    assert ptp(rb, "0007U", "0328U", "2023-07-01") == 1
    assert ptp(rb, "0007U", "0328U", "2024-08-01") == 1


def test_ptp_outpatient_hospital_differs_from_practitioner(rb):
    # anesthesia 00100 with 36010: modifier never allowed (0) for practitioners, allowed (1) in OPPS
    assert ptp(rb, "00100", "36010", claim_type="professional") == 0
    assert ptp(rb, "00100", "36010", claim_type="institutional") == 1
    # and an edit only in the practitioner table
    assert ptp(rb, "0002M", "96523", claim_type="professional") >= 0
    assert ptp(rb, "0002M", "96523", claim_type="institutional") == -1
    assert len(rb.table("ptp_professional")) != len(rb.table("ptp_institutional"))


def test_ptp_pairs_among(rb):
    pairs = rb.ptp_pairs_among({"29880", "29881", "43239", "43235", "0007U", "0328U", "0001A", "0591T"})
    got = {(a, b): int(m) for a, b, m in zip(pairs["column_1"], pairs["column_2"], pairs["modifier_indicator"])}
    assert got[("29880", "29881")] == 1 and got[("43239", "43235")] == 0
    assert got[("0007U", "0328U")] == 1  # one row per pair: its latest period
    assert ("0001A", "0591T") not in got  # deleted before 2024-07-01
    assert not pairs.duplicated(["column_1", "column_2"]).any()
    codes = {"0007U", "0328U", "0001A", "0591T"}
    ever = rb.ptp_pairs_among(codes, active_on="1900-01-01")  # every pair ever, latest row
    got = {
        (a, b): (int(d), int(m))
        for a, b, d, m in zip(ever["column_1"], ever["column_2"], ever["deletion_date"], ever["modifier_indicator"])
    }
    assert got == {("0007U", "0328U"): (99991231, 1), ("0001A", "0591T"): (20231231, 1)}
    old = rb.ptp_pairs_among(codes, active_on="2023-01-01", in_force=True)  # the rows in force then
    got = {(a, b): int(m) for a, b, m in zip(old["column_1"], old["column_2"], old["modifier_indicator"])}
    assert got == {("0007U", "0328U"): 0, ("0001A", "0591T"): 1}


def test_bypass_modifiers():
    assert {"59", "XE", "XS", "XP", "XU"} <= PTP_BYPASS_MODIFIERS
    assert "GT" not in PTP_BYPASS_MODIFIERS


@pytest.mark.parametrize("code, units, mai", [("97110", 6, 3), ("36415", 2, 3), ("99213", 2, 3)])
def test_mue_spot_checks(rb, code, units, mai):
    u, m = rb.mue_lookup(np.array([code]))
    assert u[0] == units and m[0] == mai


def test_mue_unknown_and_types(rb):
    u, m = rb.mue_lookup(pd.Series(["97110", "ZZZZZ", None], dtype="string"))
    assert u.dtype == np.float64 and m.dtype == np.int8
    assert u[0] == 6 and np.isnan(u[1]) and np.isnan(u[2])
    assert m.tolist() == [3, 0, 0]


def test_mue_outpatient_hospital_differs(rb):
    # chest X-ray 71046: 2 per day for practitioners, 3 in the outpatient hospital table
    u, m = rb.mue_lookup(
        np.array(["71046", "71046", "97110"]), np.array(["professional", "institutional", "institutional"])
    )
    assert u.tolist() == [2, 3, 8]  # 97110: 6 practitioner, 8 outpatient hospital
    assert rb.mue_lookup(["71046"], "institutional")[0][0] == 3


def test_icd10cm_status(rb):
    assert rb.icd_status(np.array(["E119", "E11", "ZZZ99", "E11.9", "e119", "A000", "A00"])).tolist() == [
        0,
        1,
        2,
        0,
        0,
        0,
        1,
    ]
    t = rb.table("icd10cm")
    assert 90_000 < len(t) < 110_000 and t["billable"].sum() > 70_000


def test_addon_primaries(rb):
    a = rb.addon_primaries
    assert a["99292"] == frozenset({"99291"})  # critical care, each additional 30 minutes
    assert a["0054T"] == frozenset()  # edit type 2 (CCCCC): any primary
    # a type-3 add-on listing some primaries and CCCCC: any primary
    assert a["C9726"] == frozenset()
    assert len(a) > 500


def test_vocabularies(rb):
    assert {"11", "22", "02"} <= rb.place_of_service_codes
    assert {"59", "25", "XU", "RT"} <= rb.modifier_codes
    assert "duplicate" in rb.carc_description("CO-18").lower()


def test_rebuild_reproduces_packaged_tables(tmp_path, rb):
    reference = shared_path("reference")
    assert (reference / "ncci_ptp_practitioner_2024-07-01.csv.gz").exists(), f"{reference} lacks the raw PTP table"
    meta = rulebook_build.build(reference, tmp_path, "2024Q3")
    assert meta["rows"] == rb.meta["rows"]
    fresh = Rulebook(tmp_path)
    assert fresh.version == "2024Q3"
    for name, key in [
        ("ptp_professional", ["column_1", "column_2", "deletion_date"]),
        ("ptp_institutional", ["column_1", "column_2", "deletion_date"]),
        ("mue_professional", ["code"]),
        ("mue_institutional", ["code"]),
        ("icd10cm", ["code"]),
        ("addon", ["primary_code", "add_on_code"]),
    ]:
        a, b = fresh.table(name), rb.table(name)
        assert len(a) == len(b), name
        assert list(a.columns) == list(b.columns) and (a.dtypes == b.dtypes).all(), name
        rows = np.random.default_rng(0).choice(len(b), 50, replace=False)
        sample = b.iloc[rows].reset_index(drop=True)
        merged = sample.merge(a, on=key, how="left", suffixes=("", "_new"), indicator=True)
        assert (merged["_merge"] == "both").all(), name
        assert len(merged) == len(sample), name
        for col in set(b.columns) - set(key):
            assert (merged[col] == merged[f"{col}_new"]).all(), (name, col)
    assert int(fresh.ptp_lookup(["29880"], ["29881"], day("2024-08-01"))[0]) == 1
