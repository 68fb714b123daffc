"""837P/837I mapper: claim and line fields of real sample files; bad or out-of-bounds values reject their claim or
line, naming the segment and element."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.contract.bounds import MAX_CHARS, MAX_DIAGNOSIS_CODES, MAX_DIAGNOSIS_POINTERS
from features.sources.x12.codes import UNKNOWN_DIAGNOSIS, UNKNOWN_NPI
from features.sources.x12.importer import import_parsed, import_x12, parse_x12
from tests.helpers.x12 import (
    BAD_NUMBERS,
    CLAIMS_837,
    DATA,
    ID_TOO_LONG,
    INSTITUTIONAL_837,
    claims_of,
    interchange,
    lines_of,
    segment_number,
    write,
)


def test_ambulance_claim_fields() -> None:
    r = import_x12([DATA / "badx12/X222-ambulance.edi"])
    c = claims_of(r).loc["051068"]
    assert (c.patient_id, c.billing_npi, c.payer_id) == ("012345678A", "2366554859", "123245")
    assert (c.plan_type, c.claim_type, c.place_of_service, c.frequency_code) == ("medicare", "professional", "41", "1")
    assert str(c.submitted_date.date()) == "2005-02-08" and c.total_charge == 766.50
    assert list(c.diagnosis_codes) == [UNKNOWN_DIAGNOSIS]  # ICD-9 (BK/BF) codes are not carried
    lines = lines_of(r, "051068")
    assert list(lines.procedure_code) == ["A0427", "A0425", "A0422", "A0382"]
    assert list(lines.units) == [1, 21, 1, 1] and list(lines.line_charge) == [700, 8.2, 46, 12.3]
    assert [list(m) for m in lines.modifiers] == [["RH"]] * 4
    assert list(lines.diagnosis_pointers[0]) == [1, 2, 3, 4]
    providers = r.history.providers.set_index("npi")
    assert providers.loc["2366554859"].tolist() == ["3416L0300X", "CO", "AAA AMBULANCE SERVICE"]


@pytest.mark.parametrize(
    "nm1, name",
    [
        ("NM1*85*2*CLINIC*****XX*1234567893", "CLINIC"),  # an organisation: NM103
        ("NM1*85*1*SMITH*ANNA****XX*1234567893", "SMITH, ANNA"),  # a person: NM103, NM104
        ("NM1*85*1*SMITH*****XX*1234567893", "SMITH"),
    ],
)
def test_billing_provider_name(nm1: str, name: str) -> None:
    """The providers table's optional name (the audit report shows it) is NM1*85's NM103/NM104."""
    body = [nm1 if s.startswith("NM1*85*") else s for s in CLAIMS_837]
    p = parse_x12(interchange(body), "name.837")
    assert [r["name"] for r in p.providers] == [name] * len(p.providers) and p.providers


def test_billing_provider_name_over_its_length_rejects_the_claims() -> None:
    body = [f"NM1*85*1*{'S' * 60}*{'A' * 40}****XX*1234567893" if s.startswith("NM1*85*") else s for s in CLAIMS_837]
    p = parse_x12(interchange(body), "long.837")
    assert not p.claims and any(f"NM103 of at most {MAX_CHARS['name']} characters" in str(r) for r in p.rejected)


def test_uhin_icd10_and_ranges() -> None:
    r = import_x12([DATA / "uhin/837.edi"])
    c = claims_of(r).loc["1606"]
    assert list(c.diagnosis_codes) == ["R69"] and c.plan_type == "commercial"
    line = lines_of(r, "1606").iloc[0]
    assert (line.procedure_code, str(line.service_date.date())) == ("90834", "2024-08-15")  # RD8: first date


def test_institutional_claims() -> None:
    r = import_x12([DATA / "linuxforhealth/837_005010X223A3__two-claims-single-provider.837i"])
    claims = claims_of(r)
    assert set(claims.claim_type) == {"institutional"} and set(claims.place_of_service) == {"22"}
    lines = lines_of(r, "756048Q")
    assert list(lines.procedure_code) == ["85025", "93005"] and list(lines.units) == [1, 3]
    assert list(lines.line_charge) == [13.39, 76.56]


def test_4010_837p_other_payer_loop_is_not_the_claim() -> None:
    r = import_x12([DATA / "pyx12/embedded_simple_837p.txt"])
    c = claims_of(r).loc["3215338"]
    # NM1*IL / NM1*PR / REF*G1 after the claim's SBR belong to the other payer (loops 2320/2330)
    assert (c.patient_id, c.payer_id, c.plan_type) == ("1212121", "8888888", "medicaid")
    assert pd.isna(c.prior_auth_number)
    assert c.billing_npi == UNKNOWN_NPI  # 4010 NM1*85 with an EIN (qualifier 24), no NPI
    assert c.place_of_service == "12" and c.frequency_code == "1"


def test_bad_value_rejects_only_its_claim(tmp_path: Path) -> None:
    body = [s.replace("CLM*C2*80*", "CLM*C2*eighty*") for s in CLAIMS_837]
    r = import_x12([write(tmp_path, "val.837", interchange(body))])
    assert list(claims_of(r).index) == ["C1"]
    assert any(
        x.reason == "CLM: expected a total charge: an amount >= 0 and at most 100,000,000 in CLM02"
        and x.kind == "claim"
        for x in r.rejected
    )
    assert "eighty" not in " ".join(str(x) for x in r.rejected)  # no claim values in messages


@pytest.mark.parametrize("value", BAD_NUMBERS + ["-5", "100000000.01"])
def test_clm02_out_of_bounds_rejects_the_claim(value: str) -> None:
    body = [s.replace("CLM*C2*80*", f"CLM*C2*{value}*") for s in CLAIMS_837]
    p = parse_x12(interchange(body), "big.837")
    assert [r["claim_id"] for r in p.claims] == ["C1"]
    assert [str(x) for x in p.rejected] == [
        f"big.837: segment {segment_number(body, 'CLM*C2')}: claim not imported: "
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
        f"units.837: segment {segment_number(body, 'SV1*HC:97110')}: line not imported: "
        "SV1: expected units > 0 and at most 99,999 in SV104",
        f"units.837: segment {segment_number(body, 'CLM*C2')}: claim not imported: "
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
        f"charge.837: segment {segment_number(body, 'SV1*HC:85025')}: line not imported: "
        "SV1: expected a charge: an amount >= 0 and at most 100,000,000 in SV102"
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
        f"inst.837: segment {segment_number(body, 'SV2*0300')}: line not imported: SV2: expected {what} in {element}"
    ]


@pytest.mark.parametrize("value", ["20240230", "２０２３１２０５", "00001205", "2023120"])
def test_service_date_not_a_date_is_counted_not_silent(value: str, tmp_path: Path) -> None:
    """Before: DTP*472 with a value that is not a date was ignored without a trace: the line took the
    submission date."""
    body = [s.replace("DTP*472*D8*20231205", f"DTP*472*D8*{value}") for s in CLAIMS_837]
    r = import_x12([write(tmp_path, "d.837", interchange(body))])
    assert [str(d.date()) for d in lines_of(r, "C2").service_date] == ["2024-01-03"]
    assert r.summary.placeholders == {"service_date from the claim or submission date (DTP date not valid)": 1}


DX_CODES = [f"R{50 + i}" for i in range(MAX_DIAGNOSIS_CODES + 5)]  # valid ICD-10-CM shapes


def _hi(n: int) -> str:
    return "HI*" + "*".join(("ABK:" if i == 0 else "ABF:") + DX_CODES[i] for i in range(n))


@pytest.mark.parametrize(
    "old, new, sid, reason",
    [
        (
            "CLM*C2*80*",
            f"CLM*{ID_TOO_LONG}*80*",
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
    assert rej.kind == "transaction" and rej.segment == segment_number(body, "NM1*IL") and "NM109" in rej.reason


def test_837_at_the_bounds_is_imported_and_passes_the_contract() -> None:
    cid = "C" * MAX_CHARS["claim_id"]
    body = [
        s.replace("CLM*C2*80*", f"CLM*{cid}*80*")
        .replace("HI*ABK:M545", _hi(MAX_DIAGNOSIS_CODES))
        .replace("SV1*HC:97110:GP*80*UN*4***1", "SV1*HC:97110:GP*80*UN*4***1:2:3:4")
        for s in CLAIMS_837
    ]
    r = import_parsed([parse_x12(interchange(body), "max.837")])
    claim = claims_of(r).loc[cid]
    assert list(claim["diagnosis_codes"]) == DX_CODES[:MAX_DIAGNOSIS_CODES]
    lines = r.history.claim_lines
    assert list(lines.loc[lines["claim_id"] == cid, "diagnosis_pointers"].iloc[0]) == [1, 2, 3, 4]


def test_codes_read_with_the_contracts_patterns_ascii_digits_only() -> None:
    """NPI and procedure codes are matched with features.contract.schema's patterns: Arabic-Indic digits are not
    digits there (the old importer's ``\\d`` let them through to the history)."""
    body = [s.replace("XX*1234567893", "XX*١٢٣٤٥٦٧٨٩٣").replace("SV1*HC:85025*", "SV1*HC:٨٥٠٢5*") for s in CLAIMS_837]
    p = parse_x12(interchange(body), "digits.837")
    assert {c["billing_npi"] for c in p.claims} == {UNKNOWN_NPI}
    assert [ln["procedure_code"] for ln in p.lines] == ["99213", "97110"]
    assert [str(x) for x in p.rejected] == [
        f"digits.837: segment {segment_number(body, 'LX*2')}: line not imported: SV1: procedure not a CPT/HCPCS code"
    ]
