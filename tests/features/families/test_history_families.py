"""The history families (provider, patient, specialty, procedure, duplicate, NCCI across claims) on a tiny
hand-built history: point in time (earlier claims and known recoupments only), windows, smoothing toward
peers, the main procedure, same-day NCCI pairs across claims."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.engine.lines import main_procedures
from features.pipeline import build_feature_table
from features.engine.state import HistoryState
from tests.helpers.handmade import NPI, OTHER_NPI, claim_rows, features_of, score, tiny_history


@pytest.fixture(scope="module")
def table(codes, rb) -> pd.DataFrame:
    """Features of the tiny history's own claims (H0..H14, one a week from 2024-02-01; H0-H9 of NPI, the
    rest of OTHER_NPI; patients P1..P5 in turn; H3 recouped on 2024-07-01), each as of its submission."""
    res, _ = build_feature_table(tiny_history(codes, recouped=["H3"]), rb)
    return res.X.loc[[f"H{i}" for i in range(15)]]


def test_counts_see_only_earlier_claims(table):
    assert table["provider_n_claims"].tolist() == list(range(10)) + list(range(5))
    assert table["patient_n_claims"].tolist() == [i // 5 for i in range(15)]


def test_a_recoupment_counts_from_its_date_on(table):
    # H3's patient is P4 (claims H3, H8, H13); H8 is submitted 2024-03-28, H13 2024-05-02: both before
    # the recoupment (2024-07-01), so neither knows of it
    assert (table["patient_n_recouped"] == 0).all()


def test_a_known_recoupment_counts_for_the_patient(codes, rb):
    st = HistoryState.from_history(tiny_history(codes, recouped=["H3"]), rb)
    x, _ = score(st, rb, codes, [(codes["plain"], 1, [])], patient="P4")  # submitted 2024-08-10
    y, _ = score(st, rb, codes, [(codes["plain"], 1, [])], patient="P1")
    assert x["patient_n_recouped"] == 1 and y["patient_n_recouped"] == 0


def test_windows_count_the_last_days(codes, rb):
    st = HistoryState.from_history(tiny_history(codes), rb)
    # NPI's claims are dated 2024-02-01 + 7 i days, i < 10 (the last on 2024-04-04)
    days = [pd.Timestamp("2024-02-01") + pd.Timedelta(days=7 * i) for i in range(10)]
    for when in ("2024-04-20", "2024-06-20"):
        x, _ = score(st, rb, codes, [(codes["plain"], 1, [])], service=when, submitted=when)
        start = pd.Timestamp(when) - pd.Timedelta(days=90)
        assert x["provider_claims_90d"] == sum(d >= start for d in days), when
    assert 0 < x["provider_claims_90d"] < 10  # on 06-20 the window holds some of them, not all
    # P1's claims: H0 (02-01), H5 (03-07), H10 (04-11): within 30 days of 04-20 only H10
    x, _ = score(st, rb, codes, [(codes["plain"], 1, [])], service="2024-04-20", submitted="2024-04-20")
    assert x["patient_claims_30d"] == 1 and x["patient_claims_365d"] == 3


def test_a_provider_without_history_gets_its_specialtys_rate(codes, rb):
    st = HistoryState.from_history(tiny_history(codes, recouped=["H3", "H12"]), rb)
    new, _ = score(st, rb, codes, [(codes["plain"], 1, [])], npi="1000000099")  # no claims, no specialty
    assert new["provider_n_claims"] == 0
    assert new["provider_recoup_rate"] == pytest.approx(new["specialty_recoup_rate"])
    known, _ = score(st, rb, codes, [(codes["plain"], 1, [])], npi=NPI)
    assert known["provider_n_claims"] == 10 and known["specialty_recoup_rate"] > 0
    # shrunk toward the specialty: strictly between the provider's raw rate (1/10) and its specialty's
    raw, prior = 0.1, known["specialty_recoup_rate"]
    assert min(raw, prior) < known["provider_recoup_rate"] < max(raw, prior) and raw != prior


def test_charge_against_the_providers_average(codes, rb):
    st = HistoryState.from_history(tiny_history(codes), rb)
    x, _ = score(st, rb, codes, [(codes["plain"], 1, []), (codes["plain"], 1, []), (codes["plain"], 1, [])])
    assert x["charge_vs_provider_avg"] == pytest.approx(3.0)  # 300 against an average of 100


def test_same_day_ncci_pair_across_two_claims(codes, rb):
    col1, col2 = codes["ptp_never"]
    st = HistoryState.from_history(tiny_history(codes), rb)
    first, rows = claim_rows("FIRST", [(col1, 1, [])], codes=codes)
    features_of(st, rb, first, rows, record=True)
    x, hits = score(st, rb, codes, [(col2, 1, [])], cid="SECOND")
    assert x["sameday_prior_lines"] == 1 and x["ptp_cross_claim"] == 1
    ptp = hits[hits["rule"] == "ncci_ptp"]
    assert list(ptp["ref"]) == ["FIRST"] and (ptp["code"].iloc[0], ptp["other_code"].iloc[0]) == (col1, col2)
    # another provider's claim on that day is no such pair
    x, hits = score(st, rb, codes, [(col2, 1, [])], cid="THIRD", npi=OTHER_NPI)
    assert x["ptp_cross_claim"] == 0 and len(hits) == 0


def test_main_procedure_is_the_highest_charge_line():
    la = {
        "ci": np.array([0, 0, 0, 2, 2]),
        "line_number": np.array([1, 2, 3, 1, 2]),
        "charge": np.array([50.0, 80.0, 80.0, 10.0, 5.0]),
        "code": np.array(["A", "B", "C", "D", "E"], dtype=object),
    }
    assert main_procedures(la, 3).tolist() == ["B", None, "D"]  # ties: the first line; no lines: None
