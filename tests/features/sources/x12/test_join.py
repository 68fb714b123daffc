"""Joining 837 claims and 835 remittances: payments, reversal CARC, WO offsets, denials, negative payments counted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources.x12.importer import import_x12
from tests.helpers.x12 import (
    CLAIMS_837,
    DATA,
    PAYMENT_835,
    TAKEBACK_835,
    claims_of,
    interchange,
    lines_of,
    write,
)


def test_join_payments_reversals_and_offsets(tmp_path: Path) -> None:
    f837 = write(tmp_path, "claims.837", interchange(CLAIMS_837, e="|", c=">", nl="\r\n"))
    remits = interchange(PAYMENT_835, st="835", version="005010X221A1", func="HP") + interchange(
        TAKEBACK_835, st="835", version="004010X091A1", func="HP", control="000000002"
    )
    f835 = write(tmp_path, "remits.835", remits)
    r = import_x12([f835, f837])  # order of files does not matter
    c = claims_of(r)
    assert list(c.index) == ["C1", "C2"]
    c1, c2 = c.loc["C1"], c.loc["C2"]
    assert (c1.patient_id, c1.payer_id, c1.billing_npi, c1.rendering_npi) == (
        "M123",
        "MCR01",
        "1234567893",
        "1111111112",
    )
    assert (c1.prior_auth_number, c1.has_attachment, list(c1.diagnosis_codes)) == ("PA999", True, ["J0190", "R05"])
    assert (c1.plan_type, c1.place_of_service, c2.place_of_service, c2.frequency_code) == ("medicare", "11", "22", "7")
    assert str(c1.submitted_date.date()) == "2024-01-03" and str(c1.paid_date.date()) == "2024-01-20"
    assert (c1.paid_amount, c2.paid_amount) == (120.0, 60.0)
    lines = lines_of(r, "C1")
    assert list(lines.line_paid) == [80.0, 40.0]  # matched by code + order, not by SVC order
    assert [list(p) for p in lines.diagnosis_pointers] == [[1, 2], [1]]
    assert [str(d.date()) for d in lines.service_date] == ["2023-12-01", "2023-12-01"]

    rec = r.history.recoupments.sort_values("claim_id").reset_index(drop=True)
    assert list(rec.claim_id) == ["C1", "C2"]
    assert list(rec.recouped_amount) == [120.0, 60.0]
    assert list(rec.carc.fillna("")) == ["CO-18", ""] and list(rec.cause) == ["duplicate", "other"]
    assert {str(d.date()) for d in rec.recouped_date} == {"2024-03-01"}  # DTM*405 without BPR16
    s = r.summary
    # 3 WO offsets: C1's settles its reversal, C2's is a recoupment, NOPE names no claim (counted, not a rejection)
    assert (s.reversals, s.offsets, s.offsets_settling_reversal, s.offsets_waiting, s.recoupments) == (1, 1, 1, 1, 2)
    assert "1 PLB WO offsets (1 naming no imported claim, 1 settling a reversal)" in str(s)
    assert "M123" not in str(s) + " | ".join(str(x) for x in r.rejected)  # no patient identifiers in messages


def test_the_same_835_twice_recoups_once(tmp_path: Path) -> None:
    """Before #14, importing an 835 twice doubled every reversal recoupment."""
    f837 = write(tmp_path, "claims.837", interchange(CLAIMS_837))
    back = write(tmp_path, "back.835", interchange(TAKEBACK_835, st="835", version="004010X091A1", func="HP"))
    copy = write(tmp_path, "copy.835", back.read_text())
    once = import_x12([f837, back])
    twice = import_x12([f837, back, copy])
    pd.testing.assert_frame_equal(once.history.recoupments, twice.history.recoupments)
    assert twice.summary.remittances_duplicate == 1 and len(twice.history.recoupments) == 2


def test_pyx12_4010_reversals(tmp_path: Path) -> None:
    """A 4010 835 of two reversals whose original payments are not in the files. Alone it makes no claim (its
    remittances wait for their 837: before #14 it made up two claims); with the claims, the reversed amounts stand in
    for the original payments. The first claim is reversed (-210) and corrected (200) in the same 835: paid 200,
    recouped 10 (docs/x12.md "Store semantics")."""
    alone = import_x12([DATA / "pyx12/embedded_835id.txt"])
    assert len(alone.history.claims) == 0 and alone.summary.remittances_waiting == 3
    body = [
        s.replace("CLM*C1*", "CLM*123839-24635*")
        .replace("CLM*C2*", "CLM*134158-27488*")
        .replace("BHT*0019*00*B1*20240103", "BHT*0019*00*B1*20090105")
        for s in CLAIMS_837
    ]
    r = import_x12([DATA / "pyx12/embedded_835id.txt", write(tmp_path, "c.837", interchange(body))])
    rec = r.history.recoupments.sort_values("claim_id").reset_index(drop=True)
    assert list(rec.claim_id) == ["123839-24635", "134158-27488"]
    assert list(rec.recouped_amount) == [10.0, 500.25]
    assert list(rec.carc.fillna("")) == ["CR-45", ""] and set(rec.cause) == {"other"}
    assert {str(d.date()) for d in rec.recouped_date} == {"2009-02-20"}  # BPR16
    c = claims_of(r)
    assert list(c.paid_amount) == [200.0, 500.25] and r.summary.corrections == 1
    assert (c.paid_date == c.submitted_date).all()
    assert r.summary.placeholders["paid_date = submitted_date (original payment not in the files, reversal only)"] == 2


def test_denial_is_counted_and_unpaid(tmp_path: Path) -> None:
    r = import_x12([DATA / "pyx12/835_mult_loops.txt"])
    assert r.summary.denials == 1 and r.summary.remittances_waiting == 1 and len(r.history.claims) == 0
    adj = r.tables["adjustments"]
    assert ("CO", "16") in set(zip(adj.group, adj.reason))
    body = [s.replace("CLM*C1*", "CLM*2005555A*") for s in CLAIMS_837]
    r = import_x12([DATA / "pyx12/835_mult_loops.txt", write(tmp_path, "c.837", interchange(body))])
    c = claims_of(r).loc["2005555A"]
    assert c.paid_amount == 0 and pd.isna(c.paid_date)
    assert list(lines_of(r, "2005555A").line_paid) == [0.0, 0.0]


def test_negative_payments_are_counted_not_silent(tmp_path: Path) -> None:
    """Before: SVC03 = -40 in a payment became line_paid 0, and CLP04 = -120 outside a reversal paid 0,
    both without a trace in the summary."""
    f837 = write(tmp_path, "c.837", interchange(CLAIMS_837))
    body = [
        s.replace("SVC*HC:85025*50*40**2", "SVC*HC:85025*50*-40**2").replace("CLP*C2*1*80*60*", "CLP*C2*1*80*-60*")
        for s in PAYMENT_835
    ]
    f835 = write(tmp_path, "p.835", interchange(body, st="835", version="005010X221A1", func="HP"))
    r = import_x12([f837, f835])
    assert list(lines_of(r, "C1").line_paid) == [80.0, 0.0] and claims_of(r).loc["C2"].paid_amount == 0
    ph = r.summary.placeholders
    assert ph["line_paid 0 (negative SVC03 in a payment)"] == 1
    assert ph["negative CLP04 of a remittance that is not a reversal (not a payment)"] == 1
