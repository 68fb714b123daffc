"""X12 import end to end: every sample file, hand-counted files, round trip through the contract, the CLI, unreadable
inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from features.contract import load_history, validate_frames, write_history
from features.errors import RecoupError
from features.sources.x12.importer import import_x12, import_x12_cli, read_text
from tests.helpers.paths import shared_path
from tests.helpers.x12 import (
    DATA,
    SAMPLES,
    interchange,
    write,
)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sample_file_imports(path: Path) -> None:
    result = import_x12([path])
    assert sum(result.summary.transactions.values()) >= 1
    validate_frames({k: result.tables[k] for k in ("claims", "claim_lines", "recoupments", "providers")})


HAND_COUNTED = {
    # file: (transactions, claims, lines, remittances (CLP), remittance lines (SVC), reversals, denials);
    # an 835 alone makes no claims (its remittances wait for their 837; before #14 it made placeholder claims)
    "pyx12/embedded_835id.txt": ({"835": 1}, 0, 0, 3, 3, 0, 0),
    "pyx12/835_mult_loops.txt": ({"835": 1}, 0, 0, 1, 3, 0, 1),
    "pyx12/embedded_simple_837p.txt": ({"837": 1}, 2, 5, 0, 0, 0, 0),
    "badx12/X222-ambulance.edi": ({"837": 1}, 1, 4, 0, 0, 0, 0),
    "badx12/X221-multiple-claims-single-check.edi": ({"835": 1}, 0, 0, 9, 33, 0, 0),
    "linuxforhealth/837_005010X223A3__two-claims-single-provider.837i": ({"837": 1}, 2, 3, 0, 0, 0, 0),
    "linuxforhealth/837_004010X098A1__dependent-commercial-insurance-01.837": ({"837": 1}, 1, 6, 0, 0, 0, 0),
    "edi-835-parser-keironstoddart/emedny_sample.txt": ({"835": 1}, 0, 0, 3, 10, 0, 0),
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


def test_round_trip_all_samples(tmp_path: Path) -> None:
    result = import_x12(SAMPLES)
    out = write_history(result.history, tmp_path / "hist")
    loaded = load_history(out)
    # many samples reuse the same claim ids (COB variants of one claim): the first occurrence is kept
    s = result.summary
    assert len(loaded.claims) == s.claims == 26
    assert s.claims_read == 64 == s.claims + s.duplicate_claims + s.rejected_claims
    assert (s.duplicate_claims, s.rejected_claims) == (30, 8)
    assert s.remittances == s.remittances_matched + s.remittances_waiting + s.remittances_duplicate
    assert s.remittances_waiting > 0  # kept as remittances: no claims made up from 835s
    assert len(loaded.claim_lines) == s.lines
    assert len(loaded.recoupments) == s.recoupments == s.recoupments_from_reversals + s.offsets
    pd.testing.assert_series_equal(
        loaded.claims["paid_amount"], result.history.claims["paid_amount"], check_names=False
    )


def test_import_x12_cli_is_an_alias_of_ingest(tmp_path: Path, capsys) -> None:
    files = [DATA / "pyx12/embedded_835id.txt", DATA / "badx12/X222-ambulance.edi"]
    import_x12_cli(files, tmp_path / "out")
    printed = capsys.readouterr().out
    assert "2 file(s)" in printed
    h = load_history(tmp_path / "out")  # a store: the same rules as import_x12 (no claims made up from 835s)
    assert len(h.claims) == 1 and (h.recoupments is None or len(h.recoupments) == 0)
    assert (tmp_path / "out" / "manifest.sqlite").is_file()


def test_unreadable_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(RecoupError, match="missing.837: no such file or folder"):
        import_x12([tmp_path / "missing.837"])
    text = interchange(["BHT*0019*00*1*20240101*1200*CH"], st="270", version="005010X279A1", func="HS")
    with pytest.raises(RecoupError, match=r"nothing importable.*expected an 837 or 835 transaction, got 270"):
        import_x12([write(tmp_path, "elig.x12", text)])


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
