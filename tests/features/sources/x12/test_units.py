"""X12 files as store units: one unit per transaction, keys that identify the real-world transaction (stable across
re-reads, copies and 4010/5010 copies of a payment), contract rows without paid fields, raw 835 rows, problems that
name file and segment (never a claim id), skipped lines by reason; every sample of the repository yields units."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.contract import TABLES
from features.sources.x12.units import read_x12, units_from_x12
from features.store.remit import REMITTANCE_COLUMNS
from features.store.unit import STORE_TABLES
from tests.helpers.x12 import (
    CLAIMS_837,
    DATA,
    PAYMENT_835,
    SAMPLES,
    TAKEBACK_835,
    interchange,
    segment_number,
    write,
)


def _units(path: Path) -> list:
    return list(units_from_x12(path))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sample_yields_units(path: Path) -> None:
    units = _units(path)
    assert units
    for u in units:
        assert set(u.tables) <= set(STORE_TABLES)
        assert u.key.startswith(("x12:837:", "x12:835:", "file:"))
        for p in u.problems:
            assert p.startswith(f"{path}: ") and "expected" in p
        if u.ok:
            assert u.tables and u.kind in ("837P", "837I", "835")


def test_the_samples_are_all_good_transactions() -> None:
    """The published samples: no problems; the non-CPT lines of four files are skipped, counted by reason."""
    units = [u for p in SAMPLES for u in _units(p)]
    assert [u.problems for u in units if u.problems] == []
    skipped: dict[str, int] = {}
    for u in units:
        for reason, n in u.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
    assert skipped == {
        "line without a CPT/HCPCS code (SV1)": 7,
        "claim without a CPT/HCPCS line": 8,
        "line with a revenue code only (SV2)": 11,
    }


def test_837_unit(tmp_path: Path) -> None:
    (u,) = _units(write(tmp_path, "claims.837", interchange(CLAIMS_837)))
    assert u.ok and u.kind == "837P" and u.segment == 3
    assert u.key == f"x12:837:SENDER:000000001:1:0001:{u.control['digest'][:16]}"
    assert {k: u.control[k] for k in ("sender", "isa13", "gs06", "st02", "version")} == {
        "sender": "SENDER",
        "isa13": "000000001",
        "gs06": "1",
        "st02": "0001",
        "version": "005010X222A1",
    }
    assert set(u.tables) == {"claims", "claim_lines", "providers"}
    claims, lines = u.tables["claims"], u.tables["claim_lines"]
    assert list(claims.columns) == [c.name for c in TABLES["claims"] if c.name not in ("paid_date", "paid_amount")]
    assert list(lines.columns) == [c.name for c in TABLES["claim_lines"] if c.name != "line_paid"]
    assert list(claims.claim_id) == ["C1", "C2"] and list(claims.diagnosis_codes) == ["J0190;R05", "M545"]
    assert list(lines.diagnosis_pointers) == ["1;2", "1", "1"] and list(u.tables["providers"].npi) == ["1234567893"]


def test_835_unit(tmp_path: Path) -> None:
    (u,) = _units(write(tmp_path, "p.835", interchange(PAYMENT_835, st="835", version="005010X221A1", func="HP")))
    assert u.ok and u.kind == "835" and u.key == "x12:835:1999999999:T1:2024-01-20:180.00"
    assert (u.control["trn02"], u.control["payer"]) == ("T1", "MCR01")
    for name, cols in REMITTANCE_COLUMNS.items():
        assert tuple(u.tables[name].columns) == cols
    r = u.tables["remittances"]
    assert list(r.claim_id) == ["C1", "C2"] and list(r.payer_claim_number) == ["ICN1", "ICN2"]
    assert list(r.paid) == [120.0, 60.0] and set(r.remittance_date) == {"2024-01-20"}
    assert list(r.remittance_id) == [f"{u.key}#1", f"{u.key}#2"]
    svc = u.tables["remittance_lines"]
    assert list(svc.submitted_code) == ["85025", "99213", "97110"] and list(svc.line_seq) == [1, 2, 1]


def test_4010_and_5010_copies_of_a_payment_have_the_same_key(tmp_path: Path) -> None:
    """The same payment (TRN02 and payer, date and total) sent as a 5010 and as a 4010 ERA is one transaction."""
    v5010 = interchange(PAYMENT_835, st="835", version="005010X221A1", func="HP")
    as_4010 = [x for s in PAYMENT_835 for x in (["N1*PR*MEDICARE", "REF*2U*MCR01"] if s.startswith("N1*PR") else [s])]
    as_4010.remove("DTM*405*20240119")
    v4010 = interchange(as_4010, st="835", version="004010X091A1", func="HP", control="000000777")
    (a,) = _units(write(tmp_path, "a.835", v5010))
    (b,) = _units(write(tmp_path, "b.835", v4010))
    assert a.key == b.key and a.control["version"] != b.control["version"]
    assert a.control["digest"] != b.control["digest"]
    pd.testing.assert_frame_equal(
        a.tables["remittances"].drop(columns=["segment"]), b.tables["remittances"].drop(columns=["segment"])
    )
    # another payment of the same payer: another key
    (c,) = _units(write(tmp_path, "c.835", v5010.replace("TRN*1*T1*", "TRN*1*T9*")))
    assert c.key != a.key


def test_4010_and_5010_claims_files_read_the_same_claims(tmp_path: Path) -> None:
    (a,) = _units(write(tmp_path, "a.837", interchange(CLAIMS_837)))
    (b,) = _units(write(tmp_path, "b.837", interchange(CLAIMS_837, version="004010X098A1")))
    assert a.key != b.key  # two submissions (their contents differ), the claims store tells the claims apart
    for name in ("claims", "claim_lines"):
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])


def test_keys_are_stable_across_reads_copies_and_line_breaks(tmp_path: Path) -> None:
    for sample in (DATA / "badx12/X222-ambulance.edi", DATA / "pyx12/embedded_835id.txt"):
        first = [u.key for u in _units(sample)]
        copy = tmp_path / "elsewhere" / ("copy-of-" + sample.name)
        copy.parent.mkdir(exist_ok=True)
        shutil.copy(sample, copy)
        assert [u.key for u in _units(sample)] == first == [u.key for u in _units(copy)]
        crlf = tmp_path / ("crlf-" + sample.name)
        crlf.write_text(sample.read_text().replace("~", "~\r\n"))
        assert [u.key for u in _units(crlf)] == first


def test_same_control_numbers_different_content_are_different_transactions(tmp_path: Path) -> None:
    """Published samples (and some senders) reuse ISA13/GS06/ST02: a digest of the content tells them apart."""
    (a,) = _units(write(tmp_path, "a.837", interchange(CLAIMS_837)))
    (b,) = _units(write(tmp_path, "b.837", interchange([s.replace("CLM*C2*80", "CLM*C3*80") for s in CLAIMS_837])))
    assert a.key.rsplit(":", 1)[0] == b.key.rsplit(":", 1)[0] and a.key != b.key


def test_rejections_are_problems_of_their_unit_without_ids(tmp_path: Path) -> None:
    body = [s.replace("CLM*C2*80*", "CLM*C2*abc*") for s in CLAIMS_837]
    text = interchange(body) + interchange(CLAIMS_837, control="000000002")
    bad, good = _units(write(tmp_path, "mixed.837", text))
    clm = segment_number(body, "CLM*C2")
    assert bad.problems == [
        f"{tmp_path / 'mixed.837'}: segment {clm}: CLM: expected a total charge: "
        "an amount >= 0 and at most 100,000,000 in CLM02"
    ]
    assert list(bad.tables["claims"].claim_id) == ["C1"]  # the rows read stay with the (bad) unit
    assert good.ok and "C2" not in " ".join(bad.problems)


def test_structural_error_rejects_the_transaction(tmp_path: Path) -> None:
    text = interchange(PAYMENT_835[:6] + ["SVC*HC:99213*10*10"], st="835", version="005010X221A1", func="HP")
    (u,) = _units(write(tmp_path, "svc.835", text))
    assert u.problems == [f"{tmp_path / 'svc.835'}: segment 10 (SVC): expected CLP before a service line (SVC)"]
    assert u.tables == {}


def test_file_level_problems_and_warnings(tmp_path: Path) -> None:
    (u,) = _units(write(tmp_path, "junk.837", "hello world"))
    assert u.key.startswith("file:") and u.problems == [
        f"{tmp_path / 'junk.837'}: segment 1: expected an ISA interchange header or ST"
    ]
    (missing,) = _units(tmp_path / "missing.837")
    assert "cannot read the file" in missing.problems[0]
    truncated = interchange(CLAIMS_837) + interchange(CLAIMS_837, control="000000002")[:-40]
    good, file_unit = _units(write(tmp_path, "cut.837", truncated))
    assert good.ok and file_unit.key.startswith("file:")
    assert file_unit.problems and "expected SE" in file_unit.problems[0]
    wrong_count = interchange(CLAIMS_837).replace(f"SE*{len(CLAIMS_837) + 2}*", "SE*99*")
    (w,) = _units(write(tmp_path, "count.837", wrong_count))
    assert w.ok and "SE01 says 99" in w.control["warnings"]


def test_reversal_unit_keeps_its_carc(tmp_path: Path) -> None:
    (u,) = _units(write(tmp_path, "back.835", interchange(TAKEBACK_835, st="835", version="004010X091A1", func="HP")))
    r = u.tables["remittances"]
    assert list(r.status) == ["22"] and list(r.paid) == [-120.0] and list(r.carc) == ["CO-18"]
    o = u.tables["offsets"]
    assert list(o.reason) == ["WO", "WO", "WO", "CS"] and list(o.reference) == ["C2", "C1", "NOPE", ""]


def test_read_x12_frames_hold_every_units_rows_by_key(tmp_path: Path) -> None:
    """The fast path of a store: one frame per table per file, the rows of a unit selected by ``_unit``."""
    text = (
        interchange(CLAIMS_837)
        + interchange([s.replace("CLM*C2*", "CLM*C9*") for s in CLAIMS_837], control="000000002")
        + interchange(PAYMENT_835, st="835", version="005010X221A1", func="HP", control="000000003")
    )
    path = write(tmp_path, "three.x12", text)
    fast = read_x12(path, slices=False)
    assert [u.tables for u in fast.units] == [{}, {}, {}]
    units = _units(path)
    assert [u.key for u in units] == [u.key for u in fast.units]
    for u in units:
        for name, df in u.tables.items():
            rows = fast.tables[name]
            mine = rows[rows["_unit"] == u.key].drop(columns="_unit")
            pd.testing.assert_frame_equal(mine, df)
    assert list(fast.tables["claims"].claim_id) == ["C1", "C2", "C1", "C9"]
