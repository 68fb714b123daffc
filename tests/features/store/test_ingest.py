"""features/store/ingest.py: contract table files into a store, idempotent, versioned, strict or quarantining."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from features.contract import load_history
from features.errors import RecoupError
from features.store.ingest import ingest
from features.store.layout import writer_lock
from features.store.read import read_parts, read_store
from tests.features.store.conftest import assert_same_history
from tests.helpers.contract_tables import good_tables, write_dir


def _files(store: Path) -> dict[str, tuple[int, str]]:
    """Every Parquet part of a store: (mtime_ns, sha256 of its bytes) by path."""
    return {
        str(p.relative_to(store)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in store.rglob("*.parquet")
    }


def _raw_tables(store: Path) -> dict[str, pd.DataFrame]:
    """Every stored row of every table, private columns included, in a canonical order."""
    out = {}
    for name, tbl in read_parts(store).tables.items():
        if tbl is not None:
            df = tbl.to_pandas()
            out[name] = df.sort_values(list(df.columns[:3]), kind="stable").reset_index(drop=True)
    return out


def test_a_generated_history_reads_back_equal_to_its_folder(history_dir, tmp_path):
    summary = ingest([history_dir], tmp_path / "store")
    assert summary.units == summary.units_ingested == 5 and summary.units_already == summary.units_rejected == 0
    expected = load_history(history_dir)
    assert summary.claims_added == len(expected.claims) and summary.lines_stored == len(expected.claim_lines)
    assert_same_history(read_store(tmp_path / "store"), expected)
    assert_same_history(load_history(tmp_path / "store"), expected)  # every --data command takes a store


def test_ingesting_twice_equals_ingesting_once(history_dir, tmp_path):
    store = tmp_path / "store"
    ingest([history_dir], store)
    once, files = _raw_tables(store), _files(store)
    again = ingest([history_dir, history_dir / "claims.csv"], store)
    assert again.units_already == again.units == 5 and again.units_ingested == 0
    assert again.claims_added == 0 and again.rows == {}
    assert _files(store) == files
    twice = _raw_tables(store)
    assert once.keys() == twice.keys()
    for name in once:
        pd.testing.assert_frame_equal(once[name], twice[name], obj=name)


def test_the_same_rows_in_other_files_are_already_present_or_duplicates(tmp_path):
    """Same claims in a file with other bytes (Parquet, not CSV): claims already present, their lines skipped,
    recoupments deduplicated on (claim_id, date, amount, carc)."""
    t = good_tables()
    store = tmp_path / "store"
    ingest([write_dir(tmp_path / "csv", t)], store)
    before = _raw_tables(store)
    s = ingest([write_dir(tmp_path / "pq", t, fmt="parquet")], store)
    assert s.units_ingested == 5 and s.units_already == 0
    assert (s.claims_present, s.claims_added, s.lines_skipped, s.lines_stored) == (3, 0, 4, 0)
    assert (s.recoupments_added, s.recoupments_duplicate) == (0, 4)
    after = _raw_tables(store)
    for name in ("claims", "claim_lines", "recoupments"):
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    h = read_store(store)
    assert len(h.providers) == 2 and len(h.coverage) == 2  # latest per NPI; coverage deduplicated by row


def _claim_files(tmp_path: Path, name: str, claims: pd.DataFrame, lines: pd.DataFrame) -> Path:
    return write_dir(tmp_path / name, {"claims": claims, "claim_lines": lines})


def test_replacement_void_and_reused_claim_id(tmp_path):
    t = good_tables()
    store = tmp_path / "store"
    ingest([write_dir(tmp_path / "day1", t)], store)

    c1 = t["claims"].iloc[[0]].assign(frequency_code="7", total_charge="150")
    l1 = t["claim_lines"].iloc[[0]].assign(line_charge="150", procedure_code="99215")
    s = ingest([_claim_files(tmp_path, "replace", c1, l1)], store)
    assert (s.claims_replaced, s.claims_added, s.lines_stored) == (1, 0, 1)
    h = read_store(store)
    assert h.claims.set_index("claim_id").loc["C1", "total_charge"] == 150
    lines = h.claim_lines[h.claim_lines["claim_id"] == "C1"]
    assert lines["procedure_code"].tolist() == ["99215"]  # the replacement's lines only

    c2 = t["claims"].iloc[[1]].assign(frequency_code="8")
    s = ingest([_claim_files(tmp_path, "void", c2, t["claim_lines"].iloc[[2]])], store)
    assert s.claims_voided == 1
    h = read_store(store)
    assert "C2" not in set(h.claims["claim_id"]) and "C2" not in set(h.claim_lines["claim_id"])
    assert "C2" not in set(h.recoupments["claim_id"])
    assert len(read_parts(store).tables["claims"]) == 5  # nothing deleted: versions stay in the store

    # an original arriving after its replacement (C3 was stored as a frequency 7): superseded, the view unchanged
    c3 = t["claims"].iloc[[2]].assign(frequency_code="1", total_charge="999")
    s = ingest([_claim_files(tmp_path, "late-original", c3, t["claim_lines"].iloc[[3]])], store)
    assert (s.claims_superseded, s.claims_added, s.lines_stored) == (1, 0, 0)
    assert_same_history(read_store(store), h)

    c4 = t["claims"].iloc[[0]].assign(claim_id="C4", frequency_code="1")
    ingest([_claim_files(tmp_path, "new", c4, t["claim_lines"].iloc[[0]].assign(claim_id="C4"))], store)
    h = read_store(store)
    with pytest.raises(RecoupError) as err:
        ingest(
            [
                _claim_files(
                    tmp_path, "reuse", c4.assign(total_charge="999"), t["claim_lines"].iloc[[0]].assign(claim_id="C4")
                )
            ],
            store,
        )
    msg = str(err.value)
    assert "reuse/claims.csv row 1: column 'claim_id': expected a claim_id not used by another claim" in msg
    assert "C4" not in msg  # no claim ids in messages
    assert_same_history(read_store(store), h)


def test_an_original_arriving_after_its_replacement_or_void_is_superseded(tmp_path):
    """A replacement (7) ingested before its original gives the same view as after it; an original after its void
    is superseded too (not refused), the void staying as sent (docs/store.md, "Claim versions")."""
    t = good_tables()
    orig, lines = t["claims"].iloc[[0]], t["claim_lines"].iloc[[0]]
    later_lines = lines.assign(line_charge="150")
    for kind, later in (("replacement", orig.assign(frequency_code="7", total_charge="150")), ("void", None)):
        later = orig.assign(frequency_code="8") if later is None else later
        first, second = tmp_path / f"{kind}-a", tmp_path / f"{kind}-b"
        ingest([_claim_files(tmp_path, f"{kind}-o1", orig, lines)], first)
        ingest([_claim_files(tmp_path, f"{kind}-r1", later, later_lines)], first)
        ingest([_claim_files(tmp_path, f"{kind}-r2", later, later_lines)], second)
        s = ingest([_claim_files(tmp_path, f"{kind}-o2", orig, lines)], second)  # not refused
        assert (s.claims_superseded, s.claims_added, s.lines_stored) == (1, 0, 0), kind
        if kind == "replacement":
            a, b = read_store(first), read_store(second)
            pd.testing.assert_frame_equal(a.claims, b.claims, obj="claims")
            pd.testing.assert_frame_equal(a.claim_lines, b.claim_lines, obj="lines")
        else:  # the void of a claim the store had not seen stays as sent (a history folder's frequency-8 row)
            assert _view(first).empty and _view(second)["frequency_code"].astype(str).tolist() == ["8"]


def _view(store: Path) -> pd.DataFrame:
    """The contract view's claims (or an empty frame when every claim was voided)."""
    try:
        return read_store(store).claims
    except RecoupError:
        return pd.DataFrame()


def test_claims_without_their_lines_are_refused(tmp_path):
    t = good_tables()
    with pytest.raises(RecoupError, match=r"claims.csv: 3 claim\(s\): expected claim_lines rows in the same ingest"):
        ingest([write_dir(tmp_path / "h", {"claims": t["claims"]})], tmp_path / "store")
    with pytest.raises(RecoupError, match=r"rows 1, 2, 3, 4: column 'claim_id': expected a claim_id present in claims"):
        ingest([write_dir(tmp_path / "l", {"claim_lines": t["claim_lines"]})], tmp_path / "store")


def test_append_of_a_later_month_writes_only_new_parts(history_small, tmp_path):
    from features.contract import write_history

    h = history_small
    cut = pd.Timestamp("2025-06-01")
    early = h.claims["submitted_date"] < cut
    ids = set(h.claims.loc[early, "claim_id"])

    def part(keep_early: bool) -> dict:
        sel = ids if keep_early else set(h.claims["claim_id"]) - ids
        out = {
            "claims": h.claims[h.claims["claim_id"].isin(sel)],
            "claim_lines": h.claim_lines[h.claim_lines["claim_id"].isin(sel)],
            "recoupments": h.recoupments[h.recoupments["claim_id"].isin(sel)],
        }
        if keep_early:
            out.update(coverage=h.coverage, providers=h.providers)
        return out

    store = tmp_path / "store"
    write_history(part(True), tmp_path / "a")
    write_history(part(False), tmp_path / "b")
    ingest([tmp_path / "a"], store)
    old = _files(store)
    s = ingest([tmp_path / "b"], store)
    assert s.claims_added == len(h.claims) - len(ids)
    new = _files(store)
    assert {k: new[k] for k in old} == old  # old parts untouched (bytes and mtimes)
    assert all("part-000002-" in k for k in set(new) - set(old)) and len(new) > len(old)
    write_history(h, tmp_path / "whole")
    assert_same_history(read_store(store), load_history(tmp_path / "whole"))
    ranged = read_store(store, since="2025-06", until="2025-12")
    assert set(ranged.claims["claim_id"]) == set(h.claims["claim_id"]) - ids


def test_strict_writes_nothing_and_skip_invalid_quarantines(tmp_path):
    t = good_tables()
    good = write_dir(tmp_path / "good", t)
    bad_claims = t["claims"].assign(claim_id=["D1", "D2", "D3"], billing_npi=["123", "1234567893", "x"])
    bad = write_dir(tmp_path / "bad", {"claims": bad_claims, "claim_lines": t["claim_lines"].assign(claim_id="D1")})
    store = tmp_path / "store"
    with pytest.raises(RecoupError) as err:
        ingest([good, bad], store)
    lines = str(err.value).splitlines()
    assert "nothing was written" in lines[0]
    assert any("bad/claims.csv rows 1, 3: column 'billing_npi': expected a 10-digit NPI" in x for x in lines)
    assert not list(store.rglob("*.parquet")) and not list(store.rglob("*.tmp"))

    s = ingest([good, bad], store, skip_invalid=True)
    assert s.units == 7 and s.units_ingested == 5 and s.units_rejected == 2 and s.claims_added == 3
    q = Path(s.quarantine or "")
    assert q == store / "quarantine" / str(s.ingest) and q.is_dir()
    reasons = (q / "reasons.txt").read_text()
    assert "column 'billing_npi': expected a 10-digit NPI" in reasons
    assert "claim_lines.csv" in reasons  # the lines of the bad claims: their claims are not in the store
    assert sorted(p.name for p in q.iterdir() if p.name != "reasons.txt") == ["0001-claims.csv", "0002-claim_lines.csv"]
    assert set(read_store(store).claims["claim_id"]) == {"C1", "C2", "C3"}
    assert "billing_npi" in str(s) and "rejected units by reason" in str(s)


def test_an_ingest_waits_for_the_lock_then_fails_clearly(tmp_path, history_dir):
    store = tmp_path / "store"
    store.mkdir()
    with writer_lock(store, wait=0):
        with pytest.raises(RecoupError, match=r"another ingest is writing to .*store \(pid \d+\); waited 0.3 s"):
            ingest([history_dir], store, wait=0.3)
    assert ingest([history_dir], store, wait=0.3).units_ingested == 5


def test_missing_paths_and_unknown_files_are_problems(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RecoupError) as err:
        ingest([tmp_path / "nope", str(tmp_path / "*.x12"), tmp_path / "notes.txt"], tmp_path / "store")
    msg = str(err.value)
    assert "nope: no such file or folder" in msg and "*.x12: no file matches this pattern" in msg
    assert "notes.txt: expected an X12 837/835 file" in msg
    assert not (tmp_path / "store").exists()


def test_a_folder_that_is_not_a_store_is_refused(tmp_path, history_dir):
    with pytest.raises(RecoupError, match="not a claims store and not empty"):
        ingest([history_dir], history_dir)


def test_claims_without_lines_are_quarantined_with_their_reason(tmp_path):
    t = good_tables()
    more = t["claims"].assign(claim_id=["E1", "E2", "E3"])
    lone = write_dir(tmp_path / "lone", {"claims": more})
    s = ingest([write_dir(tmp_path / "h", t), lone], tmp_path / "store", skip_invalid=True)
    assert (s.units, s.units_ingested, s.units_rejected, s.claims_added) == (6, 5, 1, 3)
    assert s.rejected == {
        "3 claim(s): expected claim_lines rows in the same ingest for a claim added or replaced "
        "(claim without lines)": 1
    }
    reasons = (Path(s.quarantine or "") / "reasons.txt").read_text()
    assert "0001-claims.csv: " in reasons and "claim without lines" in reasons
    assert set(read_store(tmp_path / "store").claims["claim_id"]) == {"C1", "C2", "C3"}


# ------------------------------------------------------------------------------------------- hostile inputs
def test_a_lock_planted_as_a_link_is_refused_and_its_target_untouched(tmp_path):
    t = good_tables()
    store = tmp_path / "store"
    ingest([write_dir(tmp_path / "h", t)], store)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (store / ".lock").unlink()
    (store / ".lock").symlink_to(victim)
    with pytest.raises(RecoupError, match=r"\.lock: cannot open the store's lock .*must be a regular file"):
        ingest([write_dir(tmp_path / "h2", t)], store)
    assert victim.read_text() == "precious"


def test_a_fifo_in_an_input_folder_is_skipped_not_read(tmp_path):
    import os

    t = good_tables()
    folder = write_dir(tmp_path / "in", t)
    os.mkfifo(folder / "pipe.837")
    s = ingest([folder], tmp_path / "store")  # would block forever reading the FIFO
    assert s.files_skipped.get("not regular files in folders") == 1 and s.claims_added == 3


def test_a_store_inside_its_inbox_never_reads_itself(tmp_path):
    t = good_tables()
    inbox = write_dir(tmp_path / "inbox", t)
    (inbox / "bad.837").write_text("ISA*garbage~")
    for i in range(3):
        s = ingest([inbox], inbox / "store", skip_invalid=True)
        assert s.files == 6, s  # the five tables and bad.837, never the store's own parts or quarantine copies
        assert (s.files_skipped.get("files inside the store", 0) > 0) == (i > 0)
        assert sorted(p.name for p in Path(s.quarantine or "").iterdir()) == ["0001-bad.837", "reasons.txt"]


def test_table_problems_name_rows_never_values(tmp_path):
    t = good_tables()
    t["claims"] = t["claims"].assign(billing_npi=t["claims"]["patient_id"])  # patient ids where NPIs go
    with pytest.raises(RecoupError) as err:
        ingest([write_dir(tmp_path / "h", t)], tmp_path / "store")
    msg = str(err.value)
    assert "column 'billing_npi'" in msg and "rows 1, 2, 3" in msg
    assert not any(p in msg for p in t["claims"]["patient_id"].astype(str))


def test_a_damaged_manifest_is_one_line(tmp_path):
    t = good_tables()
    store = tmp_path / "store"
    ingest([write_dir(tmp_path / "h", t)], store)
    for extra in store.glob("manifest.sqlite-*"):
        extra.unlink()
    data = bytearray((store / "manifest.sqlite").read_bytes())
    data[4096:] = b"\xff" * (len(data) - 4096)  # every page but the header's
    (store / "manifest.sqlite").write_bytes(bytes(data))
    for call in (lambda: read_store(store), lambda: ingest([write_dir(tmp_path / "h2", t)], store)):
        with pytest.raises(RecoupError, match=r"manifest.sqlite: cannot read the store manifest \(database disk"):
            call()


def test_a_bad_file_with_a_long_name_is_quarantined(tmp_path):
    t = good_tables()
    inbox = write_dir(tmp_path / "inbox", t)
    (inbox / ("L" * 240 + ".837")).write_text("ISA*garbage~")
    s = ingest([inbox], tmp_path / "store", skip_invalid=True)
    assert s.units_rejected == 1 and s.quarantine is not None
    names = [p.name for p in Path(s.quarantine).iterdir()]
    assert "reasons.txt" in names and all(len(n.encode()) <= 255 for n in names)


def test_a_full_disk_is_one_line_and_leaves_the_store_as_it_was(tmp_path):
    """RLIMIT_FSIZE (writes past it fail with EFBIG, like a full disk) in a real `recoup ingest` process."""
    import os
    import subprocess
    import sys
    import textwrap

    from features.contract import write_history
    from features.sources.synthetic.generate import GeneratorConfig, generate_history

    store = tmp_path / "store"
    ingest([write_dir(tmp_path / "h", good_tables())], store)
    before = {
        p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file() and "manifest" not in p.name
    }
    big = write_history(generate_history(GeneratorConfig(n_claims=3000, seed=4))[0], tmp_path / "big", fmt="parquet")
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
        from recoup.cli import app
        sys.argv = ["recoup", "ingest", {str(big)!r}, "--into", {str(store)!r}]
        app()
    """)
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and ("File too large" in errors[0] or "cannot write the store manifest" in errors[0])
    after = {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file() and "manifest" not in p.name}
    assert after.keys() == before.keys()  # nothing staged left, no part added
    assert len(read_store(store).claims) == 3
