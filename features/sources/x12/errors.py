"""What goes wrong in an X12 import, and where: :class:`X12Error` (malformed X12, raised by the tokenizer and the
mappers) and :class:`Rejection` (one thing not imported, or imported with a caveat, as the summary counts it).
Both name the file and the segment number, never a value (it may be patient data)."""

from __future__ import annotations

from dataclasses import dataclass

from features.errors import RecoupError


class X12Error(RecoupError, ValueError):
    """Malformed X12: names the file, the segment number (1-based in the file) and what was expected."""

    def __init__(self, source: str, segment: int | None, expected: str, segment_id: str = ""):
        self.source, self.segment, self.expected, self.segment_id = source, segment, expected, segment_id
        where = f"segment {segment}" + (f" ({segment_id})" if segment_id else "") if segment else "start of file"
        super().__init__(f"{source}: {where}: expected {expected}")


@dataclass(frozen=True)
class Rejection:
    """Something not imported (or imported with a caveat): where, what kind, why. Never holds patient data."""

    source: str
    segment: int | None
    kind: str  # file | transaction | claim | line | remittance | recoupment | warning
    reason: str

    def __str__(self) -> str:
        where = f"segment {self.segment}" if self.segment else "file"
        what = "warning" if self.kind == "warning" else f"{self.kind} not imported"
        return f"{self.source}: {where}: {what}: {self.reason}"
