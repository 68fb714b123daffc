"""X12 importer: real sample files (tests/data/x12), a golden 835 file, joins, malformed input, round trip."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest

from features.contract.bounds import MAX_CHARS, MAX_DIAGNOSIS_CODES, MAX_DIAGNOSIS_POINTERS
from features.contract import load_history, validate_frames, write_history
from features.errors import RecoupError
from features.sources.x12.parse import (
    UNKNOWN_DIAGNOSIS,
    UNKNOWN_NPI,
    X12Error,
    import_parsed,
    import_x12,
    import_x12_cli,
    read_text,
    institutional_pos,
    parse_x12,
    plan_type,
)
from tests.helpers.paths import shared_path

DATA = Path(__file__).resolve().parents[1] / "data" / "x12"
SAMPLES = sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix not in (".md", ".csv"))


def _claims(result) -> pd.DataFrame:
    return result.history.claims.set_index("claim_id")


def _lines(result, claim_id: str) -> pd.DataFrame:
    lines = result.history.claim_lines
    return lines[lines["claim_id"] == claim_id].sort_values("line_number").reset_index(drop=True)


# --------------------------------------------------------------------------------------
# Building small interchanges by hand
# --------------------------------------------------------------------------------------


def interchange(
    body: list[str],
    *,
    st: str = "837",
    version: str = "005010X222A1",
    func: str = "HC",
    e: str = "*",
    c: str = ":",
    t: str = "~",
    nl: str = "",
    control: str = "000000001",
) -> str:
    """An ISA/GS/ST..SE/GE/IEA envelope around ``body`` (written with '*' and ':'), with correct counts."""
    isa = e.join(
        [
            "ISA",
            "00",
            " " * 10,
            "00",
            " " * 10,
            "ZZ",
            "SENDER".ljust(15),
            "ZZ",
            "RECEIVER".ljust(15),
            "240101",
            "1200",
            "^",
            "00501",
            control,
            "0",
            "P",
            c,
        ]
    )
    segs = [f"ST*{st}*0001*{version}"] + body
    segs.append(f"SE*{len(segs) + 1}*0001")
    segs = [f"GS*{func}*S*R*20240102*1200*1*X*{version}"] + segs + ["GE*1*1", f"IEA*1*{control}"]
    return isa + t + nl + "".join(s.replace("*", e).replace(":", c) + t + nl for s in segs)


CLAIMS_837 = [
    "BHT*0019*00*B1*20240103*1200*CH",
    "NM1*41*2*SUBMITTER*****46*S1",
    "HL*1**20*1",
    "PRV*BI*PXC*207Q00000X",
    "NM1*85*2*CLINIC*****XX*1234567893",
    "N3*1 MAIN",
    "N4*TOWN*NY*10001",
    "HL*2*1*22*0",
    "SBR*P*18*******MB",
    "NM1*IL*1*DOE*JANE****MI*M123",
    "NM1*PR*2*MEDICARE*****PI*MCR01",
    "CLM*C1*150***11:B:1*Y*A*Y*Y",
    "PWK*OZ*BM",
    "REF*G1*PA999",
    "HI*ABK:J01.90*ABF:R05",
    "NM1*82*1*DOC*JOHN****XX*1111111112",
    "SBR*S*18*******CI",
    "NM1*IL*1*DOE*JANE****MI*OTHER-MEMBER",
    "NM1*PR*2*OTHER PAYER*****PI*OTHER",
    "LX*1",
    "SV1*HC:99213:25*100*UN*1***1:2",
    "DTP*472*D8*20231201",
    "REF*6R*L1",
    "LX*2",
    "SV1*HC:85025*50*UN*2***1",
    "DTP*472*RD8*20231201-20231202",
    "CLM*C2*80***22:B:7*Y*A*Y*Y",
    "HI*ABK:M545",
    "LX*1",
    "SV1*HC:97110:GP*80*UN*4***1",
    "DTP*472*D8*20231205",
]

PAYMENT_835 = [
    "BPR*I*180*C*CHK************20240120",
    "TRN*1*T1*1999999999",
    "DTM*405*20240119",
    "N1*PR*MEDICARE*XV*MCR01",
    "N1*PE*CLINIC*XX*1234567893",
    "LX*1",
    "CLP*C1*1*150*120**MB*ICN1*11*1",
    "SVC*HC:85025*50*40**2",
    "DTM*472*20231201",
    "SVC*HC:99213:25*100*80**1",
    "DTM*472*20231201",
    "CAS*CO*45*20",
    "CLP*C2*1*80*60**MB*ICN2*11*7",
    "SVC*HC:97110:GP*80*60**4",
    "CAS*CO*45*20",
]

TAKEBACK_835 = [  # 4010, no BPR16: the date comes from DTM*405
    "BPR*H*0*C*NON",
    "TRN*1*T2*1999999999",
    "DTM*405*20240301",
    "N1*PR*MEDICARE",
    "REF*2U*MCR01",
    "N1*PE*CLINIC*FI*999999999",
    "LX*1",
    "CLP*C1*22*-150*-120**MB*ICN1",
    "CAS*CO*18*-30",
    "SVC*HC:99213:25*-100*-80**1",
    "CAS*CO*45*-20",
    "PLB*1234567893*20241231*WO:C2*60*WO:C1*120*WO:NOPE*10*CS*5",
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------
# Every sample file imports; hand-checked counts
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sample_file_imports(path: Path) -> None:
    result = import_x12([path])
    assert sum(result.summary.transactions.values()) >= 1
    validate_frames({k: result.tables[k] for k in ("claims", "claim_lines", "recoupments", "providers")})


HAND_COUNTED = {
    # file: (transactions, claims, lines, remittances (CLP), remittance lines (SVC), reversals, denials)
    "pyx12/embedded_835id.txt": ({"835": 1}, 2, 2, 3, 3, 2, 0),
    "pyx12/835_mult_loops.txt": ({"835": 1}, 1, 3, 1, 3, 0, 1),
    "pyx12/embedded_simple_837p.txt": ({"837": 1}, 2, 5, 0, 0, 0, 0),
    "badx12/X222-ambulance.edi": ({"837": 1}, 1, 4, 0, 0, 0, 0),
    "badx12/X221-multiple-claims-single-check.edi": ({"835": 1}, 1, 5, 9, 33, 0, 0),
    "linuxforhealth/837_005010X223A3__two-claims-single-provider.837i": ({"837": 1}, 2, 3, 0, 0, 0, 0),
    "linuxforhealth/837_004010X098A1__dependent-commercial-insurance-01.837": ({"837": 1}, 1, 6, 0, 0, 0, 0),
    "edi-835-parser-keironstoddart/emedny_sample.txt": ({"835": 1}, 1, 4, 3, 10, 0, 0),
    "uhin/837.edi": ({"837": 1}, 1, 1, 0, 0, 0, 0),
}


@pytest.mark.parametrize("name", sorted(HAND_COUNTED))
def test_hand_counted_files(name: str) -> None:
    tx, claims, lines, remits, remit_lines, reversals, denials = HAND_COUNTED[name]
    s = import_x12([DATA / name]).summary
    assert (s.transactions, s.claims, s.lines, s.remittances, s.remittance_lines, s.reversals, s.denials) == (
        tx,
        claims,
        lines,
        remits,
        remit_lines,
        reversals,
        denials,
    )


def test_ambulance_claim_fields() -> None:
    r = import_x12([DATA / "badx12/X222-ambulance.edi"])
    c = _claims(r).loc["051068"]
    assert (c.patient_id, c.billing_npi, c.payer_id) == ("012345678A", "2366554859", "123245")
    assert (c.plan_type, c.claim_type, c.place_of_service, c.frequency_code) == ("medicare", "professional", "41", "1")
    assert str(c.submitted_date.date()) == "2005-02-08" and c.total_charge == 766.50
    assert list(c.diagnosis_codes) == [UNKNOWN_DIAGNOSIS]  # ICD-9 (BK/BF) codes are not carried
    lines = _lines(r, "051068")
    assert list(lines.procedure_code) == ["A0427", "A0425", "A0422", "A0382"]
    assert list(lines.units) == [1, 21, 1, 1] and list(lines.line_charge) == [700, 8.2, 46, 12.3]
    assert [list(m) for m in lines.modifiers] == [["RH"]] * 4
    assert list(lines.diagnosis_pointers[0]) == [1, 2, 3, 4]
    providers = r.history.providers.set_index("npi")
    assert providers.loc["2366554859"].tolist() == ["3416L0300X", "CO"]


def test_uhin_icd10_and_ranges() -> None:
    r = import_x12([DATA / "uhin/837.edi"])
    c = _claims(r).loc["1606"]
    assert list(c.diagnosis_codes) == ["R69"] and c.plan_type == "commercial"
    line = _lines(r, "1606").iloc[0]
    assert (line.procedure_code, str(line.service_date.date())) == ("90834", "2024-08-15")  # RD8: first date


def test_institutional_claims() -> None:
    r = import_x12([DATA / "linuxforhealth/837_005010X223A3__two-claims-single-provider.837i"])
    claims = _claims(r)
    assert set(claims.claim_type) == {"institutional"} and set(claims.place_of_service) == {"22"}
    lines = _lines(r, "756048Q")
    assert list(lines.procedure_code) == ["85025", "93005"] and list(lines.units) == [1, 3]
    assert list(lines.line_charge) == [13.39, 76.56]


def test_4010_837p_other_payer_loop_is_not_the_claim() -> None:
    r = import_x12([DATA / "pyx12/embedded_simple_837p.txt"])
    c = _claims(r).loc["3215338"]
    # NM1*IL / NM1*PR / REF*G1 after the claim's SBR belong to the other payer (loops 2320/2330)
    assert (c.patient_id, c.payer_id, c.plan_type) == ("1212121", "8888888", "medicaid")
    assert pd.isna(c.prior_auth_number)
    assert c.billing_npi == UNKNOWN_NPI  # 4010 NM1*85 with an EIN (qualifier 24), no NPI
    assert c.place_of_service == "12" and c.frequency_code == "1"


# --------------------------------------------------------------------------------------
# 835: golden file, reversals, denials
# --------------------------------------------------------------------------------------


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


def test_pyx12_4010_reversals() -> None:
    r = import_x12([DATA / "pyx12/embedded_835id.txt"])
    rec = r.history.recoupments.sort_values("claim_id").reset_index(drop=True)
    assert list(rec.claim_id) == ["123839-24635", "134158-27488"]
    assert list(rec.recouped_amount) == [210.0, 500.25]
    assert list(rec.carc.fillna("")) == ["CR-45", ""] and set(rec.cause) == {"other"}
    assert {str(d.date()) for d in rec.recouped_date} == {"2009-02-20"}  # BPR16
    c = _claims(r)
    # the original payments are not in the file: the reversed amount stands in for them
    assert list(c.paid_amount) == [210.0, 500.25]
    assert (c.paid_date == c.submitted_date).all()


def test_denial_is_counted_and_unpaid() -> None:
    r = import_x12([DATA / "pyx12/835_mult_loops.txt"])
    assert r.summary.denials == 1
    c = _claims(r).loc["2005555A"]
    assert c.paid_amount == 0 and pd.isna(c.paid_date) and c.plan_type == "medicaid"
    assert list(_lines(r, "2005555A").units) == [68, 16, 36]
    adj = r.tables["adjustments"]
    assert ("CO", "16") in set(zip(adj.group, adj.reason))


# --------------------------------------------------------------------------------------
# Joining 837 and 835: payments, reversal CARC, WO offsets
# --------------------------------------------------------------------------------------


def test_join_payments_reversals_and_offsets(tmp_path: Path) -> None:
    f837 = write(tmp_path, "claims.837", interchange(CLAIMS_837, e="|", c=">", nl="\r\n"))
    remits = interchange(PAYMENT_835, st="835", version="005010X221A1", func="HP") + interchange(
        TAKEBACK_835, st="835", version="004010X091A1", func="HP", control="000000002"
    )
    f835 = write(tmp_path, "remits.835", remits)
    r = import_x12([f835, f837])  # order of files does not matter
    c = _claims(r)
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
    lines = _lines(r, "C1")
    assert list(lines.line_paid) == [80.0, 40.0]  # matched by code + order, not by SVC order
    assert [list(p) for p in lines.diagnosis_pointers] == [[1, 2], [1]]
    assert [str(d.date()) for d in lines.service_date] == ["2023-12-01", "2023-12-01"]

    rec = r.history.recoupments.sort_values("claim_id").reset_index(drop=True)
    assert list(rec.claim_id) == ["C1", "C2"]
    assert list(rec.recouped_amount) == [120.0, 60.0]
    assert list(rec.carc.fillna("")) == ["CO-18", ""] and list(rec.cause) == ["duplicate", "other"]
    assert {str(d.date()) for d in rec.recouped_date} == {"2024-03-01"}  # DTM*405 without BPR16
    s = r.summary
    assert (s.reversals, s.offsets, s.recoupments) == (1, 3, 2)
    reasons = " | ".join(str(x) for x in r.rejected)
    assert "not a known claim" in reasons and "not counted twice" in reasons
    assert "M123" not in reasons  # no patient identifiers in messages


def test_delimiters_and_line_breaks_do_not_matter(tmp_path: Path) -> None:
    plain = import_x12([write(tmp_path, "a.837", interchange(CLAIMS_837))]).history
    other = import_x12([write(tmp_path, "b.837", interchange(CLAIMS_837, e="|", c="^", t="\n"))]).history
    crlf = import_x12([write(tmp_path, "c.837", interchange(CLAIMS_837, e="!", c=">", t="'", nl="\r\n"))]).history
    for h in (other, crlf):
        pd.testing.assert_frame_equal(plain.claims, h.claims)
        pd.testing.assert_frame_equal(plain.claim_lines, h.claim_lines)


def test_several_interchanges_and_transactions_in_one_file(tmp_path: Path) -> None:
    text = interchange(CLAIMS_837) + "\n" + interchange(PAYMENT_835, st="835", func="HP", version="005010X221A1")
    r = import_x12([write(tmp_path, "mixed.x12", text)])
    assert r.summary.transactions == {"835": 1, "837": 1}
    assert _claims(r).loc["C1"].paid_amount == 120.0


# --------------------------------------------------------------------------------------
# Malformed input
# --------------------------------------------------------------------------------------


def test_truncated_file_names_file_and_segment(tmp_path: Path) -> None:
    text = (DATA / "uhin/837.edi").read_text()
    path = write(tmp_path, "cut.837", text[: text.index("LX*1")])
    with pytest.raises(RecoupError) as err:
        import_x12([path])
    msg = str(err.value)
    assert "cut.837" in msg and "segment 3" in msg and "expected SE" in msg and "\n" not in msg


def test_truncated_second_transaction_keeps_the_first(tmp_path: Path) -> None:
    good = interchange(CLAIMS_837)
    bad = interchange(PAYMENT_835, st="835", func="HP", version="005010X221A1")
    path = write(tmp_path, "two.x12", good + bad[: bad.index("CLP*C2")])
    r = import_x12([path])
    assert r.summary.claims == 2 and r.summary.transactions == {"837": 1}
    rej = [x for x in r.rejected if x.kind == "transaction"]
    # 37 segments in the first interchange (ISA = segment 1), then ISA 38, GS 39, ST 40
    assert len(rej) == 1 and rej[0].segment == 40 and "two.x12: segment 40" in str(rej[0])


def test_wrong_segment_rejects_only_its_transaction(tmp_path: Path) -> None:
    broken = [s for s in CLAIMS_837]
    broken.insert(broken.index("LX*1"), "SVC*HC:99213*10*10**1")  # harmless noise for an 837 mapper
    broken.insert(broken.index("CLM*C1*150***11:B:1*Y*A*Y*Y"), "LX*1")  # a line before any claim
    text = interchange(broken) + interchange(PAYMENT_835, st="835", func="HP", version="005010X221A1")
    r = import_x12([write(tmp_path, "wrong.x12", text)])
    rej = [x for x in r.rejected if x.kind == "transaction"]
    assert len(rej) == 1
    # ISA, GS, ST, then 11 header segments: the misplaced LX is segment 15
    assert rej[0].segment == 15 and "LX: expected CLM before a service line" in rej[0].reason
    assert r.summary.transactions == {"835": 1}  # the 835 still imported (its claims from the 835 alone)
    svc_first = [s for s in PAYMENT_835]
    svc_first.insert(svc_first.index("LX*1"), "SVC*HC:99213*10*10**1")
    p = parse_x12(interchange(svc_first, st="835", func="HP"), "svc.835")
    assert [str(x) for x in p.rejected] == [
        "svc.835: segment 9: transaction not imported: SVC: expected CLP before a service line (SVC)"
    ]


def test_bad_value_rejects_only_its_claim(tmp_path: Path) -> None:
    body = [s.replace("CLM*C2*80*", "CLM*C2*eighty*") for s in CLAIMS_837]
    r = import_x12([write(tmp_path, "val.837", interchange(body))])
    assert list(_claims(r).index) == ["C1"]
    assert any(
        x.reason == "CLM: expected a total charge: an amount >= 0 and at most 100,000,000 in CLM02"
        and x.kind == "claim"
        for x in r.rejected
    )
    assert "eighty" not in " ".join(str(x) for x in r.rejected)  # no claim values in messages


# --------------------------------------------------------------------------------------
# Bounded amounts, quantities and dates (one parser, the contract's bounds)
# --------------------------------------------------------------------------------------

BAD_NUMBERS = ["1e308", "inf", "-inf", "NaN", "1e20", "１２", "1_000", "0x10", "٣"]


def _segment(body: list[str], prefix: str) -> int:
    """The file's segment number of the first body segment starting with ``prefix`` (ISA, GS, ST first):
    a bad charge or units names the SV1/SV2 segment itself."""
    return next(i for i, s in enumerate(body) if s.startswith(prefix)) + 4


@pytest.mark.parametrize("value", BAD_NUMBERS + ["-5", "100000000.01"])
def test_clm02_out_of_bounds_rejects_the_claim(value: str) -> None:
    body = [s.replace("CLM*C2*80*", f"CLM*C2*{value}*") for s in CLAIMS_837]
    p = parse_x12(interchange(body), "big.837")
    assert [r["claim_id"] for r in p.claims] == ["C1"]
    assert [str(x) for x in p.rejected] == [
        f"big.837: segment {_segment(body, 'CLM*C2')}: claim not imported: "
        "CLM: expected a total charge: an amount >= 0 and at most 100,000,000 in CLM02"
    ]


def test_clm02_at_the_maximum_is_imported() -> None:
    body = [s.replace("CLM*C2*80*", "CLM*C2*100000000*") for s in CLAIMS_837]
    p = parse_x12(interchange(body), "max.837")
    assert [r["total_charge"] for r in p.claims] == [150.0, 1e8] and not p.rejected


@pytest.mark.parametrize("value", BAD_NUMBERS + ["-5", "-0.5", "100000"])
def test_sv104_out_of_bounds_rejects_the_line(value: str) -> None:
    """SV104=-5 was read as 1 (the placeholder of missing units): now the line is rejected."""
    body = [s.replace("SV1*HC:97110:GP*80*UN*4*", f"SV1*HC:97110:GP*80*UN*{value}*") for s in CLAIMS_837]
    p = parse_x12(interchange(body), "units.837")
    assert [r["claim_id"] for r in p.claims] == ["C1"]
    assert [str(x) for x in p.rejected] == [
        f"units.837: segment {_segment(body, 'SV1*HC:97110')}: line not imported: "
        "SV1: expected units > 0 and at most 99,999 in SV104",
        f"units.837: segment {_segment(body, 'CLM*C2')}: claim not imported: "
        "CLM: expected at least one service line with a CPT/HCPCS code",
    ]


@pytest.mark.parametrize("value, units", [("", 1.0), ("0", 1.0), ("99999", 99_999.0), ("2.5", 2.5)])
def test_sv104_missing_zero_and_in_range(value: str, units: float) -> None:
    body = [s.replace("SV1*HC:97110:GP*80*UN*4*", f"SV1*HC:97110:GP*80*UN*{value}*") for s in CLAIMS_837]
    p = parse_x12(interchange(body), "units.837")
    assert [ln["units"] for ln in p.lines if ln["claim_id"] == "C2"] == [units] and not p.rejected


@pytest.mark.parametrize("value", BAD_NUMBERS + ["-1"])
def test_sv102_out_of_bounds_rejects_the_line(value: str) -> None:
    body = [s.replace("SV1*HC:85025*50*", f"SV1*HC:85025*{value}*") for s in CLAIMS_837]
    p = parse_x12(interchange(body), "charge.837")
    assert [ln["procedure_code"] for ln in p.lines if ln["claim_id"] == "C1"] == ["99213"]
    assert [str(x) for x in p.rejected] == [
        f"charge.837: segment {_segment(body, 'SV1*HC:85025')}: line not imported: "
        "SV1: expected a charge: an amount >= 0 and at most 100,000,000 in SV102"
    ]


INSTITUTIONAL_837 = [
    s.replace("SV1*HC:99213:25*100*UN*1***1:2", "SV2*0450*HC:99283*100*UN*1")
    .replace("SV1*HC:85025*50*UN*2***1", "SV2*0300*HC:85025*50*UN*2")
    .replace("SV1*HC:97110:GP*80*UN*4***1", "SV2*0420*HC:97110*80*UN*4")
    .replace("CLM*C1*150***11:B:1", "CLM*C1*150***13:A:1")
    .replace("CLM*C2*80***22:B:7", "CLM*C2*80***13:A:7")
    for s in CLAIMS_837
]


@pytest.mark.parametrize(
    "element, old, new, what",
    [
        (
            "SV203",
            "SV2*0300*HC:85025*50*",
            "SV2*0300*HC:85025*1e308*",
            "a charge: an amount >= 0 and at most 100,000,000",
        ),
        ("SV205", "SV2*0300*HC:85025*50*UN*2", "SV2*0300*HC:85025*50*UN*-5", "units > 0 and at most 99,999"),
    ],
)
def test_sv2_out_of_bounds_rejects_the_line(element: str, old: str, new: str, what: str) -> None:
    body = [s.replace(old, new) for s in INSTITUTIONAL_837]
    p = parse_x12(interchange(body, version="005010X223A2"), "inst.837")
    assert {r["claim_type"] for r in p.claims} == {"institutional"}
    assert [str(x) for x in p.rejected] == [
        f"inst.837: segment {_segment(body, 'SV2*0300')}: line not imported: SV2: expected {what} in {element}"
    ]


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
    assert rej.segment == _segment(body, "PLB") and "PLB06" in rej.reason


def test_reversal_amounts_may_be_negative() -> None:
    p = parse_x12(interchange(TAKEBACK_835, st="835", version="004010X091A1", func="HP"), "back.835")
    assert [r["paid"] for r in p.remittances] == [-120.0] and not [x for x in p.rejected if x.kind != "warning"]


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
    assert list(_lines(r, "C1").line_paid) == [80.0, 0.0] and _claims(r).loc["C2"].paid_amount == 0
    ph = r.summary.placeholders
    assert ph["line_paid 0 (negative SVC03 in a payment)"] == 1
    assert ph["negative CLP04 of a remittance that is not a reversal (not a payment)"] == 1


@pytest.mark.parametrize("value", ["20240230", "２０２３１２０５", "00001205", "2023120"])
def test_service_date_not_a_date_is_counted_not_silent(value: str, tmp_path: Path) -> None:
    """Before: DTP*472 with a value that is not a date was ignored without a trace: the line took the
    submission date."""
    body = [s.replace("DTP*472*D8*20231205", f"DTP*472*D8*{value}") for s in CLAIMS_837]
    r = import_x12([write(tmp_path, "d.837", interchange(body))])
    assert [str(d.date()) for d in _lines(r, "C2").service_date] == ["2024-01-03"]
    assert r.summary.placeholders == {"service_date from the claim or submission date (DTP date not valid)": 1}


def test_x12_dates_ascii_and_in_range() -> None:
    from features.sources.x12.parse import x12_date

    assert x12_date("20240101") == "2024-01-01" and x12_date("19000101") == "1900-01-01"
    assert x12_date("21991231") == "2199-12-31"
    for bad in ("00000101", "18991231", "22000101", "２０２４０１０１", "2024O101", "-2024010"):
        assert x12_date(bad) is None, bad
    # a BHT04 in full-width digits is not a date: the submission date falls back to GS04
    body = [s.replace("BHT*0019*00*B1*20240103", "BHT*0019*00*B1*２０２４０１０３") for s in CLAIMS_837]
    p = parse_x12(interchange(body), "fw.837")
    assert {r["submitted_date"] for r in p.claims} == {"2024-01-02"}


def test_bad_isa_header(tmp_path: Path) -> None:
    text = interchange(CLAIMS_837)
    with pytest.raises(X12Error, match=r"bad\.837: segment 1 \(ISA\): expected an ISA header with 16 elements"):
        parse_x12(text[:60], "bad.837")
    with pytest.raises(X12Error, match=r"segment 1 \(ISA\): expected an ISA header with its element separator"):
        parse_x12("ISA00" + text[5:], "bad.837")
    with pytest.raises(RecoupError, match=r"junk\.txt: segment 1: expected an ISA interchange header"):
        import_x12_cli([write(tmp_path, "junk.txt", "hello world")], tmp_path / "out")


def test_unreadable_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(RecoupError, match="cannot read the file"):
        import_x12([tmp_path / "missing.837"])
    text = interchange(["BHT*0019*00*1*20240101*1200*CH"], st="270", version="005010X279A1", func="HS")
    with pytest.raises(RecoupError, match=r"nothing importable.*expected an 837 or 835 transaction, got 270"):
        import_x12([write(tmp_path, "elig.x12", text)])


# --------------------------------------------------------------------------------------
# Round trip and CLI
# --------------------------------------------------------------------------------------


def test_round_trip_all_samples(tmp_path: Path) -> None:
    result = import_x12(SAMPLES)
    out = write_history(result.history, tmp_path / "hist")
    loaded = load_history(out)
    # many samples reuse the same claim ids (COB variants of one claim): the first occurrence is kept
    assert len(loaded.claims) == result.summary.claims == 39
    assert result.summary.claims_read == 64 and result.summary.claims_from_835_only == 13
    assert len(loaded.claim_lines) == result.summary.lines
    assert len(loaded.recoupments) == result.summary.recoupments >= 2
    pd.testing.assert_series_equal(
        loaded.claims["paid_amount"], result.history.claims["paid_amount"], check_names=False
    )


def test_cli_writes_directory_and_prints_summary(tmp_path: Path, capsys) -> None:
    files = [DATA / "pyx12/embedded_835id.txt", DATA / "badx12/X222-ambulance.edi"]
    import_x12_cli(files, tmp_path / "out")
    printed = capsys.readouterr().out
    assert "2 file(s)" in printed and "recoupments: 2 (2 reversals" in printed
    h = load_history(tmp_path / "out", require_recoupments=True)
    assert len(h.claims) == 3 and len(h.recoupments) == 2


def test_heuristics() -> None:
    assert plan_type("MB") == "medicare" and plan_type("MA") == "medicare"
    assert plan_type("16") == "medicare_advantage"
    assert plan_type("HM", "ACME MEDICARE ADVANTAGE") == "medicare_advantage"
    assert plan_type("HM", "ACME HEALTH PLAN") == "commercial"
    assert plan_type("HM", "STATE MEDICAID HMO") == "medicaid" and plan_type("MC") == "medicaid"
    assert plan_type("CI") == "commercial" and plan_type("") == "commercial"
    assert institutional_pos("11") == "21" and institutional_pos("13") == "22"
    assert institutional_pos("83") == "24" and institutional_pos("99") == "22"


@pytest.mark.slow
def test_imsweb_624_claims() -> None:
    """A large real file (kept in the shared folder beside the repository); its speed is measured in bench/."""
    r = import_x12([shared_path("x12/imsweb-x12-parser/x12_multiple_transactions.txt")])
    s = r.summary
    assert s.transactions == {"837": 312} and s.claims_read == 624
    # the file repeats one interchange 312 times: 2 claim ids, one of them with an invalid code only
    assert s.claims == 1


def test_inputs_that_are_not_regular_files_are_one_line(tmp_path):
    """/dev/zero ended in a MemoryError traceback and a FIFO hung: both are refused, naming the path."""
    fifo = tmp_path / "pipe.edi"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo):
        with pytest.raises(RecoupError, match="not a regular file"):
            read_text(path)


# --------------------------------------------------------------------------------------
# Bounded counts and lengths (features/contract/bounds.py: the contract's and the service's bounds)
# --------------------------------------------------------------------------------------

ID_39 = "C" * (MAX_CHARS["claim_id"] + 1)
DX_CODES = [f"R{50 + i}" for i in range(MAX_DIAGNOSIS_CODES + 5)]  # valid ICD-10-CM shapes


def _hi(n: int) -> str:
    return "HI*" + "*".join(("ABK:" if i == 0 else "ABF:") + DX_CODES[i] for i in range(n))


@pytest.mark.parametrize(
    "old, new, sid, reason",
    [
        (
            "CLM*C2*80*",
            f"CLM*{ID_39}*80*",
            "CLM",
            f"CLM: expected a claim id of at most {MAX_CHARS['claim_id']} characters in CLM01",
        ),
        (
            "HI*ABK:M545",
            _hi(MAX_DIAGNOSIS_CODES + 5),
            "HI",
            f"HI: expected at most {MAX_DIAGNOSIS_CODES} ICD-10 diagnosis codes in the claim's HI segments",
        ),
        (
            "SV1*HC:97110:GP*80*UN*4***1",
            "SV1*HC:97110:GP*80*UN*4***1:1:1:1:1",
            "SV1",
            f"SV1: expected at most {MAX_DIAGNOSIS_POINTERS} diagnosis pointers in SV107",
        ),
        (
            "REF*G1*PA999",
            "REF*G1*" + "A" * (MAX_CHARS["prior_auth_number"] + 1),
            "REF",
            f"REF: expected a valid value (REF02 of at most {MAX_CHARS['prior_auth_number']} characters)",
        ),
    ],
)
def test_837_over_a_count_or_length_rejects_the_claim_naming_the_segment(
    old: str, new: str, sid: str, reason: str
) -> None:
    body = [s.replace(old, new) if s.startswith(old) else s for s in CLAIMS_837]
    i = next(j for j, s in enumerate(body) if s.startswith(new[:12]))
    p = parse_x12(interchange(body), "big.837")
    assert len(p.claims) == 1  # the other claim is imported
    (rej,) = p.rejected
    assert (rej.kind, rej.segment, rej.reason) == ("claim", i + 4, reason)
    assert sid in str(rej) and "C" * 20 not in str(rej)  # no claim values in messages


def test_837_subscriber_id_over_its_length_rejects_the_transaction() -> None:
    body = [s.replace("MI*M123", "MI*" + "M" * (MAX_CHARS["patient_id"] + 1)) for s in CLAIMS_837]
    p = parse_x12(interchange(body), "member.837")
    assert p.claims == []
    (rej,) = p.rejected
    assert rej.kind == "transaction" and rej.segment == _segment(body, "NM1*IL") and "NM109" in rej.reason


def test_837_at_the_bounds_is_imported_and_passes_the_contract() -> None:
    cid = "C" * MAX_CHARS["claim_id"]
    body = [
        s.replace("CLM*C2*80*", f"CLM*{cid}*80*")
        .replace("HI*ABK:M545", _hi(MAX_DIAGNOSIS_CODES))
        .replace("SV1*HC:97110:GP*80*UN*4***1", "SV1*HC:97110:GP*80*UN*4***1:2:3:4")
        for s in CLAIMS_837
    ]
    r = import_parsed([parse_x12(interchange(body), "max.837")])
    claim = _claims(r).loc[cid]
    assert list(claim["diagnosis_codes"]) == DX_CODES[:MAX_DIAGNOSIS_CODES]
    lines = r.history.claim_lines
    assert list(lines.loc[lines["claim_id"] == cid, "diagnosis_pointers"].iloc[0]) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "old, new, element",
    [
        ("CLP*C1*1*", f"CLP*{ID_39}*1*", "CLP01"),
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
