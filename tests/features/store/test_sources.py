"""features/store/sources.py with the real X12 units (features.sources.x12.units): 837s and 835s into a store,
end to end. Idempotent (twice = once; a 4010 and a 5010 copy of one payment), order-free (835 then 837 = 837 then
835), safe (kill -9), every encoding through `recoup ingest`, the repo's samples, claim versions and the 835 cases
(replacement, void, reversal once, correction after a reversal)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features.errors import RecoupError
from features.store.info import store_info
from features.store.ingest import ingest
from features.store.layout import staged_files
from features.store.read import read_parts, read_store
from tests.features.store.conftest import assert_same_history
from tests.features.store.test_layout import _ingests, _kill, _start, _until
from tests.helpers.paths import shared_path
from tests.helpers.x12 import CLAIMS_837, DATA, PAYMENT_835, TAKEBACK_835, interchange, write

ROOT = Path(__file__).resolve().parents[3]
V835 = {"st": "835", "version": "005010X221A1", "func": "HP"}
V835_4010 = {"st": "835", "version": "004010X091A1", "func": "HP"}
#: the reversal of C1's payment, without the PLB offsets of TAKEBACK_835
REVERSAL_835 = [s for s in TAKEBACK_835 if not s.startswith("PLB")]


def _files(tmp_path: Path) -> tuple[Path, Path]:
    f837 = write(tmp_path, "claims.837", interchange(CLAIMS_837))
    f835 = write(tmp_path, "paid.835", interchange(PAYMENT_835, **V835))
    return f837, f835


def _raw(store: Path) -> dict[str, pd.DataFrame]:
    return {k: v.to_pandas() for k, v in read_parts(store).tables.items() if v is not None}


def _recouped(store: Path, claim_id: str) -> list[float]:
    rec = read_store(store).recoupments
    if rec is None:
        return []
    return sorted(rec.loc[rec["claim_id"] == claim_id, "recouped_amount"].tolist())


def test_x12_ingested_twice_equals_once(tmp_path):
    f837, f835 = _files(tmp_path)
    store = tmp_path / "store"
    first = ingest([f837, f835], store)
    assert (first.units, first.units_ingested, first.claims_added, first.lines_stored) == (2, 2, 2, 3)
    assert first.rows["remittances"] == 2 and first.rows["remittance_lines"] == 3
    once, history = _raw(store), read_store(store)
    again = ingest([f837, f835], store)  # the same files: skipped unread, "already ingested"
    assert (again.files_already, again.units, again.units_already, again.units_ingested) == (2, 2, 2, 0)
    copy = write(tmp_path, "copy.837", "\n".join(interchange(CLAIMS_837).split("~")))  # other bytes, same transaction
    third = ingest([copy], store)
    assert (third.files_already, third.units_already, third.claims_added, third.rows) == (0, 1, 0, {})
    twice = _raw(store)
    assert (
        once.keys()
        == twice.keys()
        == {"claims", "claim_lines", "providers", "remittances", "remittance_lines", "adjustments"}
    )
    for name in once:
        pd.testing.assert_frame_equal(once[name], twice[name], obj=name)
    assert_same_history(read_store(store), history)
    assert history.claims.set_index("claim_id")["paid_amount"].to_dict() == {"C1": 120.0, "C2": 60.0}


def test_835_then_837_equals_837_then_835(tmp_path):
    f837, f835 = _files(tmp_path)
    ingest([f837], tmp_path / "a")
    ingest([f835], tmp_path / "a")
    s = ingest([f835], tmp_path / "b")
    assert (s.rows["remittances"], s.remittances_waiting) == (2, 2)
    assert "2 claim payments = 0 of claims in the store + 2 waiting for their claim" in str(s)
    with pytest.raises(RecoupError, match="has no claims"):  # a remittance alone makes no claim
        read_store(tmp_path / "b")
    assert store_info(tmp_path / "b").waiting["remittances_waiting"] == 2
    ingest([f837], tmp_path / "b")
    a, b = read_store(tmp_path / "a"), read_store(tmp_path / "b")
    assert_same_history(a, b)
    assert a.claims["paid_amount"].notna().all()


def test_a_4010_and_a_5010_copy_of_one_payment_are_one_transaction(tmp_path):
    f837, f835 = _files(tmp_path)
    old = write(tmp_path, "paid-4010.835", interchange(PAYMENT_835, **V835_4010, control="000000077"))
    store = tmp_path / "store"
    ingest([f837, f835], store)
    before = read_store(store)
    s = ingest([old], store)
    assert (s.units, s.units_already, s.units_ingested, s.rows) == (1, 1, 0, {})
    assert_same_history(read_store(store), before)


def test_a_kill_during_an_x12_ingest_leaves_the_store_as_before(tmp_path):
    f837, f835 = _files(tmp_path)
    store = tmp_path / "store"
    ingest([f837], store)
    before, raw = read_store(store), _raw(store)
    proc = _start([f835], store, pause="staged:120")
    _until(lambda: any(staged_files(store)), proc)
    _kill(proc)
    assert _ingests(store) == 1
    assert_same_history(read_store(store), before)
    for name, frame in _raw(store).items():
        pd.testing.assert_frame_equal(frame, raw[name], obj=name)
    assert ingest([f835], store, wait=5).units_ingested == 1 and not any(staged_files(store))
    assert read_store(store).claims["paid_amount"].notna().all()


#: each encoding an X12 file comes in: (file name, codec, byte order mark)
ENCODINGS = [
    ("utf8", "utf-8", b""),
    ("utf8-bom", "utf-8", b"\xef\xbb\xbf"),
    ("utf16le", "utf-16-le", b""),
    ("utf16le-bom", "utf-16-le", b"\xff\xfe"),
    ("utf16be", "utf-16-be", b""),
    ("utf16be-bom", "utf-16-be", b"\xfe\xff"),
    ("latin1", "latin-1", b""),
]


def test_every_encoding_through_recoup_ingest(tmp_path):
    """The same 837 and 835 (a patient name with an accent) in seven encodings: the first pair is ingested, the other
    six are the same transactions ("already ingested"): each decodes to the same text."""
    claims = [s.replace("NM1*IL*1*DOE*JANE", "NM1*IL*1*MÜLLER*JOSÉ") for s in CLAIMS_837]
    texts = {"837": interchange(claims), "835": interchange(PAYMENT_835, **V835)}
    paths = []
    for name, codec, bom in ENCODINGS:
        for kind, text in texts.items():
            path = tmp_path / "in" / f"{name}.{kind}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(bom + text.encode(codec))
            paths.append(path)
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "recoup.cli", "ingest", str(tmp_path / "in"), "--into", str(store)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "units: 14 (7 x 835, 7 x 837P) = 2 ingested + 12 already ingested + 0 rejected" in out.stdout
    alone = tmp_path / "alone"
    for name, _, _ in ENCODINGS:  # each pair alone gives the same store
        ingest([tmp_path / "in" / f"{name}.837", tmp_path / "in" / f"{name}.835"], alone / name)
        assert_same_history(read_store(alone / name), read_store(store))


def test_replacement_and_void_of_x12_claims(tmp_path):
    store = tmp_path / "store"
    ingest([write(tmp_path, "day1.837", interchange(CLAIMS_837))], store)
    c1_only = CLAIMS_837[: next(i for i, seg in enumerate(CLAIMS_837) if seg.startswith("CLM*C2"))]
    replacement = [
        seg.replace("CLM*C1*150***11:B:1", "CLM*C1*175***11:B:7").replace("SV1*HC:85025*50*", "SV1*HC:85025*75*")
        for seg in c1_only
    ]
    s = ingest([write(tmp_path, "day2.837", interchange(replacement, control="000000002"))], store)
    assert (s.claims_replaced, s.claims_added, s.lines_stored) == (1, 0, 2)
    h = read_store(store)
    assert h.claims.set_index("claim_id").loc["C1", "total_charge"] == 175
    lines = h.claim_lines[h.claim_lines["claim_id"] == "C1"].sort_values("line_number")
    assert lines["line_charge"].tolist() == [100, 75]
    at = {seg[:6]: i for i, seg in enumerate(CLAIMS_837) if seg.startswith("CLM*")}
    void = [seg.replace("CLM*C2*80***22:B:7", "CLM*C2*80***22:B:8") for seg in CLAIMS_837[at["CLM*C2"] :]]
    s = ingest(
        [write(tmp_path, "day3.837", interchange(CLAIMS_837[: at["CLM*C1"]] + void, control="000000003"))], store
    )
    assert (s.claims_voided, s.claims_added, s.units_ingested) == (1, 0, 1)
    h = read_store(store)
    assert set(h.claims["claim_id"]) == {"C1"} and set(h.claim_lines["claim_id"]) == {"C1"}
    assert h.claims.set_index("claim_id").loc["C1", "total_charge"] == 175  # still the replacement (latest version)
    # an original of C1 arriving after its replacement: superseded (order of arrival does not matter), not refused
    late = [s.replace("CLM*C1*150***11:B:1", "CLM*C1*999***11:B:1") for s in c1_only]
    s = ingest([write(tmp_path, "day4.837", interchange(late, control="000000004"))], store)
    assert (s.claims_superseded, s.claims_added, s.lines_stored) == (1, 0, 0)
    assert read_store(store).claims.set_index("claim_id").loc["C1", "total_charge"] == 175


def test_payment_reversal_once_then_correction(tmp_path):
    """835s through the store: paid 120; reversed (recouped 120); the same reversal re-sent in another transaction
    recoups once; a correction paying 100 after it: paid 100, recouped 20 (docs/x12.md "Store semantics")."""
    f837, f835 = _files(tmp_path)
    store = tmp_path / "store"
    ingest([f837, f835], store)
    assert _recouped(store, "C1") == []
    ingest([write(tmp_path, "rev.835", interchange(REVERSAL_835, **V835_4010, control="000000002"))], store)
    assert _recouped(store, "C1") == [120.0]
    resent = [s.replace("TRN*1*T2*", "TRN*1*T9*").replace("DTM*405*20240301", "DTM*405*20240302") for s in REVERSAL_835]
    s = ingest([write(tmp_path, "rev-again.835", interchange(resent, **V835_4010, control="000000003"))], store)
    assert s.units_ingested == 1 and s.rows["remittances"] == 1  # another transaction, stored raw ...
    assert _recouped(store, "C1") == [120.0]  # ... recouping once
    info = store_info(store)
    assert info.waiting["remittances_duplicate"] == 1
    correction = [
        "BPR*I*100*C*CHK************20240310",
        "TRN*1*T4*1999999999",
        "N1*PR*MEDICARE*XV*MCR01",
        "LX*1",
        "CLP*C1*1*150*100**MB*ICN1*11*1",
        "SVC*HC:99213:25*100*60**1",
        "SVC*HC:85025*50*40**2",
    ]
    ingest([write(tmp_path, "fix.835", interchange(correction, **V835, control="000000004"))], store)
    h = read_store(store)
    assert h.claims.set_index("claim_id").loc["C1", "paid_amount"] == 100
    assert _recouped(store, "C1") == [20.0]


def _check_sums(s) -> None:
    assert s.units == s.units_ingested + s.units_already + s.units_rejected
    assert s.units == sum(s.by_kind.values())
    assert s.units_rejected == sum(s.rejected.values())


def test_the_repo_samples_strictly_and_with_skip_invalid(tmp_path):
    store = tmp_path / "store"
    with pytest.raises(RecoupError) as err:
        ingest([DATA], store)
    lines = str(err.value).splitlines()
    n = int(lines[0].split()[0])
    assert n == len(lines) - 1 > 0 and "nothing was written" in lines[0]
    for line in lines[1:]:  # one line per problem, naming the file and the transaction's segment
        assert line.startswith(f"  - {DATA}/") and ": segment " in line, line
    assert not list(store.rglob("*.parquet"))
    s = ingest([DATA], store, skip_invalid=True)
    _check_sums(s)
    assert s.units_rejected == n and s.units_ingested > 40 and s.claims_added > 20
    reasons = (store / "quarantine" / str(s.ingest) / "reasons.txt").read_text().splitlines()
    assert len(reasons) == n and all(": segment " in r for r in reasons)
    info = store_info(store)
    w = info.waiting
    assert w["remittances"] == w["remittances_matched"] + w["remittances_waiting"] + w["remittances_duplicate"]
    assert w["remittances"] == s.rows["remittances"] > 0 and w["remittances_waiting"] > 0
    assert s.remittances_waiting == w["remittances_waiting"] + w["remittances_duplicate"]  # (no claim: no join)
    assert info.recoupments["recoupments_added"] == (
        info.recoupments["recoupments_from_reversals"] + info.recoupments["offsets"]
    )
    assert info.claims == s.claims_added and "remittances:" in str(info)
    again = ingest([DATA], store, skip_invalid=True)  # files with a quarantined unit are read again, the rest not
    _check_sums(again)
    assert again.units_ingested == 0 and again.units_rejected == n and 0 < again.files_already < again.files


@pytest.mark.slow
def test_the_shared_samples_with_skip_invalid(tmp_path):
    folder = shared_path("x12")
    s = ingest([folder], tmp_path / "store", skip_invalid=True)
    _check_sums(s)
    assert s.units_ingested > 40
    assert len(read_store(tmp_path / "store").claims) == s.claims_added


def test_files_parsed_in_worker_processes_give_the_same_store(tmp_path, monkeypatch):
    import features.store.sources as sources

    f837, f835 = _files(tmp_path)
    rev = write(tmp_path, "rev.835", interchange(REVERSAL_835, **V835_4010, control="000000002"))
    ingest([f837, f835, rev], tmp_path / "one", workers=1)
    monkeypatch.setattr(sources, "PARALLEL_MIN_BYTES", 0)  # small files: parsed in 2 spawned processes all the same
    s = ingest([f837, f835, rev], tmp_path / "two", workers=2)
    assert (s.units_ingested, s.claims_added) == (3, 2)
    one, two = _raw(tmp_path / "one"), _raw(tmp_path / "two")
    assert one.keys() == two.keys()
    for name in one:
        pd.testing.assert_frame_equal(one[name], two[name], obj=name)
    assert_same_history(read_store(tmp_path / "two"), read_store(tmp_path / "one"))
