"""The read-time 835 join, rule by rule (docs/x12.md "Store semantics"): payments, waiting remittances, duplicates,
a reversal recouped once, a correction after a reversal, a reversal without its payment, WO offsets, contract
recoupments kept; and the same result for any order of the rows (835 before 837 == 837 before 835)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import validate_frames
from features.sources.x12.units import units_from_x12
from features.store.remit import REMITTANCE_COLUMNS, apply_remittances
from tests.helpers.x12 import CLAIMS_837, PAYMENT_835, TAKEBACK_835, interchange, write


def claim(cid: str, submitted: str = "2024-01-05", **kw) -> dict:
    row = {
        "claim_id": cid,
        "patient_id": "P" + cid,
        "billing_npi": "1234567893",
        "rendering_npi": None,
        "payer_id": "PAY",
        "plan_type": "commercial",
        "claim_type": "professional",
        "place_of_service": "11",
        "frequency_code": "1",
        "submitted_date": submitted,
        "total_charge": 150.0,
        "diagnosis_codes": "R05",
        "prior_auth_number": None,
        "has_attachment": False,
    }
    return {**row, **kw}


def line(cid: str, n: int, code: str, charge: float = 50.0) -> dict:
    return {
        "claim_id": cid,
        "line_number": n,
        "service_date": "2024-01-02",
        "procedure_code": code,
        "modifiers": "",
        "units": 1.0,
        "line_charge": charge,
        "diagnosis_pointers": "1",
    }


def clp(rid: str, cid: str, status: str, paid: float, date: str, icn: str = "ICN1", payer: str = "PAY", **kw) -> dict:
    row = dict.fromkeys(REMITTANCE_COLUMNS["remittances"])
    row.update(remittance_id=rid, claim_id=cid, status=status, paid=paid, remittance_date=date, payer_id=payer)
    row.update(payer_claim_number=icn, charge=150.0 if paid >= 0 else -150.0, trace_number=rid.split("#")[0])
    return {**row, **kw}


def svc(rid: str, cid: str, seq: int, code: str, paid: float) -> dict:
    row = dict.fromkeys(REMITTANCE_COLUMNS["remittance_lines"])
    row.update(remittance_id=rid, claim_id=cid, line_seq=seq, submitted_code=code, procedure_code=code, paid=paid)
    return row


def plb(ref: str, amount: float, date: str, reason: str = "WO", payer: str = "PAY") -> dict:
    row = dict.fromkeys(REMITTANCE_COLUMNS["offsets"])
    row.update(reference=ref, amount=amount, remittance_date=date, reason=reason, payer_id=payer, provider="1234567893")
    return row


def tables(claims=(), lines=(), remits=(), svcs=(), offsets=(), recoupments=None) -> dict:
    def frame(rows, cols):
        rows = list(rows)
        extra = [k for r in rows for k in r if k not in cols]
        return pd.DataFrame.from_records(rows, columns=list(cols) + list(dict.fromkeys(extra)))

    return {
        "claims": frame(claims, claim("x").keys()),
        "claim_lines": frame(lines, line("x", 1, "x").keys()),
        "recoupments": recoupments,
        "remittances": frame(remits, REMITTANCE_COLUMNS["remittances"]),
        "remittance_lines": frame(svcs, REMITTANCE_COLUMNS["remittance_lines"]),
        "adjustments": frame([], REMITTANCE_COLUMNS["adjustments"]),
        "offsets": frame(offsets, REMITTANCE_COLUMNS["offsets"]),
    }


def paid(out: dict, cid: str) -> tuple:
    c = out["claims"].set_index("claim_id").loc[cid]
    return c.paid_date, c.paid_amount


def recoupments(out: dict) -> list[tuple]:
    r = out["recoupments"]
    if r is None:
        return []
    return [(x.claim_id, x.recouped_date, x.recouped_amount, x.carc) for x in r.itertuples()]


BASE_CLAIMS = [claim("A"), claim("B")]
BASE_LINES = [line("A", 1, "99213", 100.0), line("A", 2, "85025"), line("B", 1, "97110", 150.0)]


def test_payments_give_paid_fields_and_line_paid() -> None:
    t = tables(
        BASE_CLAIMS,
        BASE_LINES,
        [clp("T1#1", "A", "1", 120.0, "2024-01-20")],
        [svc("T1#1", "A", 1, "85025", 40.0), svc("T1#1", "A", 2, "99213", 80.0)],
    )
    out, counts = apply_remittances(t)
    assert paid(out, "A") == ("2024-01-20", 120.0)
    assert paid(out, "B")[0] is None and np.isnan(paid(out, "B")[1])  # no remittance yet: unknown, not 0
    lines = out["claim_lines"]
    assert list(lines.line_paid.fillna(-1)) == [80.0, 40.0, -1]  # by code and order, not SVC order
    assert counts["remittances_matched"] == 1 and counts["claims_paid"] == 1 and counts["remittances_waiting"] == 0
    validate_frames({k: out[k] for k in ("claims", "claim_lines")})


def test_a_remittance_of_a_never_seen_claim_waits_and_joins_later() -> None:
    remits = [clp("T1#1", "Z", "1", 90.0, "2024-01-20"), clp("T1#2", "Z", "22", -90.0, "2024-02-01")]
    out, counts = apply_remittances(tables(BASE_CLAIMS, BASE_LINES, remits))
    assert list(out["claims"].claim_id) == ["A", "B"]  # no placeholder claim
    assert recoupments(out) == [] and counts["remittances_waiting"] == 2 and counts["remittances_matched"] == 0
    later, counts = apply_remittances(tables(BASE_CLAIMS + [claim("Z")], BASE_LINES, remits))
    assert paid(later, "Z") == ("2024-01-20", 90.0) and counts["remittances_waiting"] == 0
    assert recoupments(later) == [("Z", "2024-02-01", 90.0, None)]


def test_a_resent_remittance_counts_once() -> None:
    """The same CLP (payer, claim, CLP07, status, amounts, date) in another transaction is a duplicate."""
    remits = [clp("T1#1", "A", "1", 120.0, "2024-01-20"), clp("T7#3", "A", "1", 120.0, "2024-01-20")]
    svcs = [svc(rid, "A", 1, "99213", 120.0) for rid in ("T1#1", "T7#3")]
    out, counts = apply_remittances(tables(BASE_CLAIMS, BASE_LINES, remits, svcs))
    assert paid(out, "A") == ("2024-01-20", 120.0) and counts["duplicates_skipped"] == 1
    assert out["claim_lines"].line_paid.iloc[0] == 120.0
    # a second payment that differs (another CLP07, e.g. a secondary payer) is not a duplicate
    other = remits[:1] + [clp("T8#1", "A", "2", 30.0, "2024-01-25", icn="ICN9", payer="SEC")]
    out, counts = apply_remittances(tables(BASE_CLAIMS, BASE_LINES, other))
    assert paid(out, "A") == ("2024-01-20", 150.0) and counts["duplicates_skipped"] == 0


def test_a_reversal_recoups_once_even_when_resent() -> None:
    remits = [
        clp("T1#1", "A", "1", 120.0, "2024-01-20"),
        clp("T2#1", "A", "22", -120.0, "2024-03-01", carc="CO-18"),
        clp("T3#5", "A", "22", -120.0, "2024-03-15", carc="CO-18"),  # the same reversal re-sent two weeks later
    ]
    out, counts = apply_remittances(tables(BASE_CLAIMS, BASE_LINES, remits))
    assert recoupments(out) == [("A", "2024-03-01", 120.0, "CO-18")]
    assert paid(out, "A") == ("2024-01-20", 120.0)  # the original payment (then recouped)
    assert counts["reversals"] == 1 and counts["duplicates_skipped"] == 1 and counts["recoupments_added"] == 1
    h = validate_frames({k: out[k] for k in ("claims", "claim_lines", "recoupments")})
    assert list(h.recoupments.cause) == ["duplicate"]


@pytest.mark.parametrize(
    "corrected, paid_amount, recouped",
    [(60.0, 60.0, [60.0]), (100.0, 100.0, [20.0]), (120.0, 120.0, []), (150.0, 150.0, []), (0.0, 120.0, [120.0])],
    ids=["half", "lower", "same", "higher", "denied-after"],
)
def test_a_correction_after_a_reversal(corrected: float, paid_amount: float, recouped: list[float]) -> None:
    """Reversal (22) then correction (1) in one 835, as the guide intends: the claim is paid the corrected amount;
    what was taken back is the original minus the correction (when positive)."""
    remits = [
        clp("T1#1", "A", "1", 120.0, "2024-01-20"),
        clp("T2#2", "A", "1", corrected, "2024-03-01", icn="ICN2"),  # same date: the reversal comes first
        clp("T2#1", "A", "22", -120.0, "2024-03-01", carc="CO-45"),
    ]
    svcs = [
        svc("T1#1", "A", 1, "99213", 80.0),
        svc("T1#1", "A", 2, "85025", 40.0),
        svc("T2#1", "A", 1, "99213", -80.0),
        svc("T2#1", "A", 2, "85025", -40.0),
        svc("T2#2", "A", 1, "99213", corrected),
    ]
    out, counts = apply_remittances(tables(BASE_CLAIMS, BASE_LINES, remits, svcs))
    assert paid(out, "A") == ("2024-01-20", paid_amount)
    assert recoupments(out) == [("A", "2024-03-01", x, "CO-45") for x in recouped]
    assert counts["corrections"] == (1 if corrected > 0 else 0)
    lines = out["claim_lines"].set_index(["claim_id", "line_number"]).line_paid
    expected = [corrected, 0.0] if corrected > 0 else [80.0, 40.0]
    assert [lines["A", 1], lines["A", 2]] == expected


def test_reversal_and_correction_twice() -> None:
    """Paid 100, reversed, corrected 80, reversed, corrected 50: paid 50, 50 taken back in all."""
    remits = [
        clp("T1#1", "A", "1", 100.0, "2024-01-20", icn="I1"),
        clp("T2#1", "A", "22", -100.0, "2024-02-01", icn="I1"),
        clp("T2#2", "A", "1", 80.0, "2024-02-01", icn="I2"),
        clp("T3#1", "A", "22", -80.0, "2024-03-01", icn="I2"),
        clp("T3#2", "A", "1", 50.0, "2024-03-01", icn="I3"),
    ]
    out, _ = apply_remittances(tables(BASE_CLAIMS, BASE_LINES, remits))
    assert paid(out, "A") == ("2024-01-20", 50.0) and recoupments(out) == [("A", "2024-02-01", 50.0, None)]


def test_a_reversal_without_its_payment_in_the_store() -> None:
    """The reversed amount stands in for the original payment; paid on the submission date."""
    remits = [clp("T2#1", "A", "22", -120.0, "2024-03-01")]
    svcs = [svc("T2#1", "A", 1, "99213", -120.0)]
    out, counts = apply_remittances(tables(BASE_CLAIMS, BASE_LINES, remits, svcs))
    assert paid(out, "A") == ("2024-01-05", 120.0) and recoupments(out) == [("A", "2024-03-01", 120.0, None)]
    assert out["claim_lines"].line_paid.iloc[0] == 120.0


def test_denials_and_negative_payments_pay_nothing() -> None:
    remits = [clp("T1#1", "A", "4", 0.0, "2024-01-20"), clp("T1#2", "B", "1", -10.0, "2024-01-20")]
    out, counts = apply_remittances(tables(BASE_CLAIMS, BASE_LINES, remits))
    assert paid(out, "A") == (None, 0.0) and paid(out, "B") == (None, 0.0)
    assert list(out["claim_lines"].line_paid) == [0.0, 0.0, 0.0] and counts["negative_payments"] == 1


def test_a_payment_dated_before_the_claim_is_raised_to_its_submission() -> None:
    out, _ = apply_remittances(tables(BASE_CLAIMS, BASE_LINES, [clp("T1#1", "A", "1", 10.0, "2023-12-01")]))
    assert paid(out, "A") == ("2024-01-05", 10.0)


def test_wo_offsets() -> None:
    remits = [
        clp("T1#1", "A", "1", 120.0, "2024-01-20", icn="ICN-A"),
        clp("T1#2", "B", "1", 60.0, "2024-01-20", icn="ICN-B"),
        clp("T2#1", "B", "22", -60.0, "2024-03-01", icn="ICN-B"),
    ]
    offsets = [
        plb("A", 30.0, "2024-04-01"),  # by claim id
        plb("A", 30.0, "2024-04-01"),  # the same offset re-sent: once
        plb("ICN-A", 5.0, "2024-04-02"),  # by the payer's claim number (CLP07)
        plb("B", 60.0, "2024-03-01"),  # settles the reversal of B: not twice
        plb("NOPE", 10.0, "2024-04-01"),  # no such claim: waits
        plb("A", 7.0, "2024-04-01", reason="CS"),  # not an overpayment recovery
        plb("A", -8.0, "2024-04-01"),  # money returned, not taken back
    ]
    out, counts = apply_remittances(tables(BASE_CLAIMS, BASE_LINES, remits, offsets=offsets))
    assert sorted(recoupments(out)) == [
        ("A", "2024-04-01", 30.0, None),
        ("A", "2024-04-02", 5.0, None),
        ("B", "2024-03-01", 60.0, None),
    ]
    assert (counts["offsets"], counts["offsets_waiting"], counts["offsets_settling_reversal"]) == (2, 1, 1)
    assert counts["duplicates_skipped"] == 1


def test_contract_recoupments_and_paid_fields_are_kept() -> None:
    given = pd.DataFrame(
        [{"claim_id": "B", "recouped_date": "2024-05-01", "recouped_amount": 10.0, "carc": None, "cause": "other"}]
    )
    claims = [claim("A"), claim("B", paid_date="2024-01-30", paid_amount=75.0)]
    t = tables(claims, BASE_LINES, [clp("T1#1", "A", "1", 120.0, "2024-01-20")], recoupments=given)
    out, _ = apply_remittances(t)
    assert paid(out, "B") == ("2024-01-30", 75.0) and paid(out, "A") == ("2024-01-20", 120.0)
    assert recoupments(out) == [("B", "2024-05-01", 10.0, None)]
    no_remittances, counts = apply_remittances({"claims": pd.DataFrame([claim("A")]), "recoupments": given})
    assert no_remittances["recoupments"] is given and counts["remittances"] == 0


def test_typed_frames_keep_their_types() -> None:
    """Frames read back typed (datetime columns, as from Parquet) get datetime paid dates and recoupment dates."""
    t = tables(
        BASE_CLAIMS, BASE_LINES, [clp("T1#1", "A", "1", 9.0, "2024-01-20"), clp("T2#1", "A", "22", -9.0, "2024-02-01")]
    )
    t["claims"]["submitted_date"] = pd.to_datetime(t["claims"]["submitted_date"])
    out, _ = apply_remittances(t)
    assert out["claims"].paid_date.iloc[0] == pd.Timestamp("2024-01-20")
    assert pd.api.types.is_datetime64_any_dtype(out["claims"].paid_date)
    assert pd.api.types.is_datetime64_any_dtype(out["recoupments"].recouped_date)


def _shuffled(t: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        k: (v.sample(frac=1.0, random_state=rng.integers(1 << 31)) if v is not None else None) for k, v in t.items()
    }


def _canonical(out: dict) -> dict:
    return {
        "claims": out["claims"].sort_values("claim_id").reset_index(drop=True),
        "claim_lines": out["claim_lines"].sort_values(["claim_id", "line_number"]).reset_index(drop=True),
        "recoupments": out["recoupments"].reset_index(drop=True),
    }


def test_any_row_order_gives_the_same_result() -> None:
    remits = [
        clp("T1#1", "A", "1", 120.0, "2024-01-20"),
        clp("T9#1", "A", "1", 120.0, "2024-01-20"),
        clp("T2#1", "A", "22", -120.0, "2024-03-01"),
        clp("T2#2", "A", "1", 70.0, "2024-03-01", icn="ICN2"),
        clp("T3#1", "A", "22", -120.0, "2024-03-02"),
        clp("T1#2", "B", "1", 60.0, "2024-01-20", icn="ICN-B"),
        clp("T4#1", "B", "22", -60.0, "2024-02-01", icn="ICN-B"),
        clp("T4#2", "Z", "1", 10.0, "2024-02-01"),
    ]
    svcs = [svc("T1#1", "A", 1, "99213", 80.0), svc("T9#1", "A", 1, "99213", 80.0), svc("T2#2", "A", 1, "85025", 70.0)]
    offsets = [plb("B", 60.0, "2024-02-01"), plb("ICN-B", 5.0, "2024-02-03"), plb("A", 1.0, "2024-05-01")]
    t = tables(BASE_CLAIMS, BASE_LINES, remits, svcs, offsets)
    reference, ref_counts = apply_remittances(t)
    c = ref_counts
    assert c["remittances"] == 8 == c["remittances_matched"] + c["remittances_waiting"] + c["remittances_duplicate"]
    assert (c["remittances_waiting"], c["remittances_duplicate"], c["corrections"]) == (1, 2, 1)
    assert c["recoupments_added"] == c["recoupments_from_reversals"] + c["offsets"] == 2 + 2
    for seed in range(5):
        out, counts = apply_remittances(_shuffled(t, seed))
        assert counts == ref_counts
        for name, frame in _canonical(out).items():
            pd.testing.assert_frame_equal(frame, _canonical(reference)[name])


def _x12_tables(paths: list[Path]) -> dict:
    units = [u for p in paths for u in units_from_x12(p)]
    frames: dict[str, list] = {}
    for u in units:
        for name, df in u.tables.items():
            frames.setdefault(name, []).append(df)
    return {name: pd.concat(dfs, ignore_index=True) for name, dfs in frames.items()}


def test_835_then_837_equals_837_then_835(tmp_path: Path) -> None:
    f837 = write(tmp_path, "c.837", interchange(CLAIMS_837))
    f835 = write(
        tmp_path,
        "r.835",
        interchange(PAYMENT_835, st="835", version="005010X221A1", func="HP")
        + interchange(TAKEBACK_835, st="835", version="004010X091A1", func="HP", control="000000002"),
    )
    first, c1 = apply_remittances(_x12_tables([f837, f835]))
    second, c2 = apply_remittances(_x12_tables([f835, f837]))
    assert c1 == c2 and c1["reversals"] == 1 and c1["offsets"] == 1 and c1["offsets_waiting"] == 1
    for name, frame in _canonical(first).items():
        pd.testing.assert_frame_equal(frame, _canonical(second)[name])
    h = validate_frames({k: first[k] for k in ("claims", "claim_lines", "recoupments", "providers")})
    assert list(h.claims.paid_amount) == [120.0, 60.0]
    assert sorted(h.recoupments.recouped_amount) == [60.0, 120.0]
