"""835 mapper: a golden file of service lines and adjustments; bad or out-of-bounds amounts and lengths reject the
transaction."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features.contract.bounds import MAX_CHARS
from features.sources.x12.importer import import_x12, parse_x12
from tests.helpers.x12 import (
    DATA,
    ID_TOO_LONG,
    PAYMENT_835,
    TAKEBACK_835,
    interchange,
    segment_number,
)


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else float(v)


def test_keironstoddart_golden_service_lines() -> None:
    folder = DATA / "edi-835-parser-keironstoddart"
    files = ["blue_cross_nc_sample.txt", "emedny_sample.txt", "united_healthcare_legacy_sample.txt"]
    r = import_x12([folder / f for f in files])
    ours = r.tables["remittance_lines"]
    payer = r.tables["remittances"].set_index("seq")["payer_name"]
    adjs = r.tables["adjustments"]
    golden = pd.read_csv(folder / "all_samples.csv", dtype=str, keep_default_na=False)
    assert len(ours) == len(golden) == 18
    for (_, g), (_, o) in zip(golden.iterrows(), ours.iterrows()):
        assert o.claim_id == g.marker and o.procedure_code == g.code and o.qualifier == g.qualifier
        assert (o.modifiers[0] if o.modifiers else "") == g.modifier
        assert payer[o.remittance_seq] == g.payer and o.remittance_date == g.transaction_date
        for mine, theirs in (
            (o.charge, g.charge_amount),
            (o.paid, g.paid_amount),
            (o.allowed, g.allowed_amount),
            (o.units_paid, g.allowed_units),
            (o.units_paid if _num(o.units_billed) is None else o.units_billed, g.billed_units),
        ):
            assert _num(mine) == _num(theirs)
        assert (o.start_date, o.end_date) == (g.start_date, g.end_date)
        assert o.control_number == (g.ref_0_value if g.ref_0_qual == "6R" else "")
        assert (o.remark_codes[0] if o.remark_codes else "") == g.rem_0_code
        line_adj = adjs[(adjs.remittance_seq == o.remittance_seq) & (adjs.line_seq == o.line_seq)]
        expected = [
            (g[f"adj_{i}_group"], g[f"adj_{i}_code"], float(g[f"adj_{i}_amount"])) for i in (0, 1) if g[f"adj_{i}_code"]
        ]
        mine = list(zip(line_adj.group, line_adj.reason, line_adj.amount))
        # the golden parser keeps only the first reason of a CAS segment (CAS*PR*2*5.13**1*110 -> PR-2):
        # ours keeps every triplet, so the golden adjustments must be an ordered subsequence of ours
        it = iter(mine)
        assert all(any(adj == m for m in it) for adj in expected), (mine, expected)
        assert len(mine) == len(expected) + (o.claim_id == "001-18604-358" and o.line_seq == 3)


@pytest.mark.parametrize(
    "old, new, element",
    [
        ("CLP*C1*1*150*120*", "CLP*C1*1*150*1e308*", "CLP04"),
        ("CLP*C1*1*150*", "CLP*C1*1*inf*", "CLP03"),
        ("SVC*HC:85025*50*40**2", "SVC*HC:85025*50*NaN**2", "SVC03"),
        ("SVC*HC:85025*50*40**2", "SVC*HC:85025*-1e9*40**2", "SVC02"),
        ("SVC*HC:85025*50*40**2", "SVC*HC:85025*50*40**１", "SVC05"),
        ("SVC*HC:85025*50*40**2", "SVC*HC:85025*50*40**-100000", "SVC05"),
        ("CAS*CO*45*20", "CAS*CO*45*1e20", "CAS03"),
        ("CAS*CO*45*20", "CAS*CO*45*20*inf", "CAS04"),
    ],
)
def test_835_amount_out_of_bounds_rejects_the_transaction(old: str, new: str, element: str) -> None:
    """835 amounts are signed (reversals are negative) but bounded either way; a bad one is a malformed
    remittance: its transaction is rejected, naming the segment and element."""
    body = list(PAYMENT_835)
    i = next(j for j, s in enumerate(body) if s.startswith(old))
    body[i] = body[i].replace(old, new)
    p = parse_x12(interchange(body, st="835", version="005010X221A1", func="HP"), "pay.835")
    assert p.remittances == []
    (rej,) = p.rejected
    assert rej.kind == "transaction" and rej.segment == i + 4
    assert element in rej.reason and "at most" in rej.reason


def test_plb_amount_out_of_bounds_rejects_the_transaction() -> None:
    body = [s.replace("WO:C1*120", "WO:C1*1e20") for s in TAKEBACK_835]
    p = parse_x12(interchange(body, st="835", version="004010X091A1", func="HP"), "plb.835")
    (rej,) = p.rejected
    assert rej.segment == segment_number(body, "PLB") and "PLB06" in rej.reason


def test_reversal_amounts_may_be_negative() -> None:
    p = parse_x12(interchange(TAKEBACK_835, st="835", version="004010X091A1", func="HP"), "back.835")
    assert [r["paid"] for r in p.remittances] == [-120.0] and not [x for x in p.rejected if x.kind != "warning"]


@pytest.mark.parametrize(
    "old, new, element",
    [
        ("CLP*C1*1*", f"CLP*{ID_TOO_LONG}*1*", "CLP01"),
        ("CAS*CO*45*20", "CAS*CO*123456*20", "CAS01-CAS02"),
        ("N1*PR*MEDICARE*XV*MCR01", "N1*PR*MEDICARE*XV*" + "P" * (MAX_CHARS["payer_id"] + 1), "N104"),
    ],
)
def test_835_over_a_length_rejects_the_transaction(old: str, new: str, element: str) -> None:
    body = list(PAYMENT_835)
    i = next(j for j, s in enumerate(body) if s.startswith(old))
    body[i] = body[i].replace(old, new)
    p = parse_x12(interchange(body, st="835", version="005010X221A1", func="HP"), "pay.835")
    assert p.remittances == []
    (rej,) = p.rejected
    assert rej.kind == "transaction" and rej.segment == i + 4
    assert element in rej.reason and "at most" in rej.reason
