"""Envelope: interchanges cut into transactions (``ST..SE``) with their context (GS08/ST03 version, GS04 or ISA09
date). The envelope is checked as it is read: a stray segment, a missing SE or a wrong SE01 count becomes a
:class:`~features.sources.x12.errors.Rejection` of its transaction (or a warning), and the other transactions of
the file are still read."""

from __future__ import annotations

from dataclasses import dataclass

from features.sources.x12.elements import el, isa_date, x12_date
from features.sources.x12.errors import Rejection, X12Error
from features.sources.x12.tokenizer import SEGMENT_ID_PATTERN, Delimiters, Segment, tokenize


@dataclass
class Transaction:
    """One ``ST..SE`` transaction set with its envelope context."""

    source: str
    code: str  # ST01: 837 or 835
    control: str
    version: str  # GS08 / ST03, e.g. 005010X222A1
    date: str | None  # GS04, else ISA09 (ISO)
    delims: Delimiters
    segments: list[Segment]  # ST .. SE inclusive
    sender: str = ""  # ISA06 (interchange sender id)
    interchange_control: str = ""  # ISA13
    group_control: str = ""  # GS06

    @property
    def start(self) -> int:
        return self.segments[0][0]


def split_transactions(text: str, source: str) -> tuple[list[Transaction], list[Rejection]]:
    """Cut a file into transactions; envelope problems become rejections (bad ISA raises)."""
    txs: list[Transaction] = []
    rejected: list[Rejection] = []
    try:
        for delims, segments in tokenize(text, source):
            _split_interchange(source, delims, segments, txs, rejected)
    except X12Error as exc:
        if not txs and not rejected:
            raise
        rejected.append(Rejection(source, exc.segment, "file", f"rest of file: expected {exc.expected}"))
    return txs, rejected


def _split_interchange(
    source: str, delims: Delimiters, segments: list[Segment], txs: list[Transaction], rejected: list[Rejection]
) -> None:
    isa_day: str | None = None
    gs_day: str | None = None
    version = ""
    envelope = ("", "", "")  # ISA06, ISA13, GS06
    current: list[Segment] | None = None
    for no, seg in segments:
        sid = seg[0]
        if sid not in _SEEN_IDS and not _segment_id_ok(seg):
            if current is not None:
                rejected.append(Rejection(source, no, "transaction", f"expected a segment identifier, got {sid[:3]!r}"))
                current = None
            else:
                rejected.append(Rejection(source, no, "file", f"expected a segment identifier, got {sid[:3]!r}"))
            continue
        if sid == "ST":
            if current is not None:
                rejected.append(
                    Rejection(source, current[0][0], "transaction", f"expected SE before the next ST (segment {no})")
                )
            current = [(no, seg)]
        elif sid == "SE":
            if current is None:
                rejected.append(Rejection(source, no, "file", "expected ST before SE"))
                continue
            current.append((no, seg))
            txs.append(_make_transaction(source, delims, current, version, gs_day or isa_day, envelope, rejected))
            current = None
        elif current is not None:
            if sid in ("GS", "GE", "IEA", "ISA"):
                rejected.append(
                    Rejection(source, current[0][0], "transaction", f"expected SE before {sid} (segment {no})")
                )
                current = None
            else:
                current.append((no, seg))
        elif sid == "ISA":
            isa_day = isa_date(el(seg, 9))
            envelope = (el(seg, 6), el(seg, 13), "")
        elif sid == "GS":
            gs_day = x12_date(el(seg, 4)) or isa_day
            version = el(seg, 8)
            envelope = (envelope[0], envelope[1], el(seg, 6))
        elif sid in ("GE", "IEA"):
            continue
        else:
            rejected.append(Rejection(source, no, "file", f"expected ST, GE or IEA, got {sid}"))
    if current is not None:
        rejected.append(
            Rejection(source, current[0][0], "transaction", "expected SE, reached the end of the file (truncated?)")
        )


_SEEN_IDS: set[str] = set()


def _segment_id_ok(seg: list[str]) -> bool:
    """Whether ``seg[0]`` is a segment identifier (normalised in place; good ids are remembered)."""
    sid = seg[0] = seg[0].strip()
    if SEGMENT_ID_PATTERN.match(sid):
        if len(_SEEN_IDS) < 1000:
            _SEEN_IDS.add(sid)
        return True
    return False


def _make_transaction(
    source: str,
    delims: Delimiters,
    segs: list[Segment],
    version: str,
    day: str | None,
    envelope: tuple[str, str, str],
    rejected: list[Rejection],
) -> Transaction:
    st, se = segs[0][1], segs[-1][1]
    count = el(se, 1)
    if count != str(len(segs)):
        rejected.append(
            Rejection(
                source, segs[-1][0], "warning", f"SE01 says {count or '?'} segments, the transaction has {len(segs)}"
            )
        )
    sender, isa13, gs06 = envelope
    return Transaction(source, el(st, 1), el(st, 2), el(st, 3) or version, day, delims, segs, sender, isa13, gs06)
