"""Tokenizer: an X12 text into numbered segments, one chunk per interchange. The delimiters come from each ISA
header (element separator at position 4, ISA16, the segment terminator after it), or are guessed for a bare
``GS``/``ST`` file; segments are numbered from 1 across the whole file, so that every message can name one."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterator

from features.sources.x12.errors import X12Error

#: what a segment identifier looks like (ISA, GS, ST, CLM, N1, ...)
SEGMENT_ID_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{1,2}$")


@dataclass(frozen=True)
class Delimiters:
    """The separators of one interchange."""

    element: str = "*"
    component: str = ":"
    segment: str = "~"
    repetition: str | None = None


Segment = tuple[int, list[str]]  # (segment number in the file, [id, element 1, ...])


def read_isa(text: str, start: int, source: str, segment_no: int) -> tuple[Delimiters, list[str]]:
    """Delimiters from the ISA header at ``start``: element separator at position 4, ISA16, terminator."""
    elem = text[start + 3 : start + 4]
    if not elem or elem.isalnum() or elem.isspace():
        raise X12Error(source, segment_no, "an ISA header with its element separator at position 4", "ISA")
    pos = start
    for _ in range(16):
        pos = text.find(elem, pos + 1)
        if pos < 0:
            raise X12Error(source, segment_no, "an ISA header with 16 elements", "ISA")
    component = text[pos + 1 : pos + 2]
    segment = text[pos + 2 : pos + 3]
    if not component or not segment or component.isalnum() or segment.isalnum() or component == elem:
        raise X12Error(source, segment_no, "ISA16 (component separator) followed by the segment terminator", "ISA")
    fields = text[start : pos + 2].split(elem)
    if len(fields) != 17:
        raise X12Error(source, segment_no, "an ISA header with 16 elements", "ISA")
    rep = fields[11]
    repetition = rep if fields[12].strip() >= "00501" and rep and not rep.isalnum() else None
    return Delimiters(elem, component, segment, repetition), fields


def _bare_delimiters(text: str, start: int) -> Delimiters:
    """Delimiters of a file that starts directly with GS or ST (no ISA): guessed from the text."""
    elem = text[start + 2 : start + 3]
    seg = "~" if "~" in text else "\n"
    return Delimiters(elem or "*", ":", seg, None)


def tokenize(text: str, source: str) -> Iterator[tuple[Delimiters, list[Segment]]]:
    """Yield (delimiters, numbered segments) per interchange; a bare ``GS``/``ST`` file is one chunk."""
    n = 0
    pos = 0
    length = len(text)
    first = True
    while pos < length:
        while pos < length and text[pos] in " \t\r\n\ufeff\x00":
            pos += 1
        if pos >= length:
            return
        if text.startswith("ISA", pos):
            delims, _ = read_isa(text, pos, source, n + 1)
            end = _interchange_end(text, pos, delims)
        elif first and text[pos : pos + 2] in ("GS", "ST") and not text[pos + 2 : pos + 3].isalnum():
            delims, end = _bare_delimiters(text, pos), length
        else:
            head = text[pos : pos + 3]
            raise X12Error(
                source,
                n + 1,
                "an ISA interchange header" + (" or ST" if first else ""),
                head if SEGMENT_ID_PATTERN.match(head) else "",
            )
        first = False
        segments: list[Segment] = []
        chunk = text[pos:end]
        if delims.segment not in "\r\n" and ("\n" in chunk or "\r" in chunk):
            chunk = chunk.replace("\r", "").replace("\n", "")  # line breaks after (or wrapping) segments
        for raw in chunk.split(delims.segment):
            raw = raw.strip()
            if raw:
                n += 1
                segments.append((n, raw.split(delims.element)))
        yield delims, segments
        pos = end


@functools.lru_cache(maxsize=64)
def _iea_pattern(segment: str, element: str) -> re.Pattern:
    return re.compile(
        re.escape(segment) + r"\s*IEA" + re.escape(element) + "[^" + re.escape(segment) + "]*" + re.escape(segment)
    )


def _interchange_end(text: str, start: int, d: Delimiters) -> int:
    """Index just after the IEA segment of the interchange starting at ``start`` (or end of text)."""
    m = _iea_pattern(d.segment, d.element).search(text, start)
    return m.end() if m else len(text)
