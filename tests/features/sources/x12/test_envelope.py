"""X12 envelope: several interchanges and transactions in a file; a truncated or misplaced segment rejects its
transaction only, naming the file and segment."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.errors import RecoupError
from features.sources.x12.importer import import_x12, parse_x12
from tests.helpers.x12 import (
    CLAIMS_837,
    DATA,
    PAYMENT_835,
    claims_of,
    interchange,
    write,
)


def test_several_interchanges_and_transactions_in_one_file(tmp_path: Path) -> None:
    text = interchange(CLAIMS_837) + "\n" + interchange(PAYMENT_835, st="835", func="HP", version="005010X221A1")
    r = import_x12([write(tmp_path, "mixed.x12", text)])
    assert r.summary.transactions == {"835": 1, "837": 1}
    assert claims_of(r).loc["C1"].paid_amount == 120.0


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
