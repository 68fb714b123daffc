"""What the two transaction mappers (:mod:`~features.sources.x12.claims837`, :mod:`~features.sources.x12.remit835`)
share: :class:`Parsed`, the rows read from one or more texts before they are joined, and
:func:`segment_handlers`, the table from segment id to a mapper's ``on_XXX`` method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from features.sources.x12.errors import Rejection


@dataclass
class Parsed:
    """Rows parsed from one text (one or more files when merged), before joining."""

    claims: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    providers: list[dict] = field(default_factory=list)
    remittances: list[dict] = field(default_factory=list)
    remittance_lines: list[dict] = field(default_factory=list)
    adjustments: list[dict] = field(default_factory=list)
    offsets: list[dict] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    transactions: dict[str, int] = field(default_factory=dict)
    clm_segments: int = 0

    def extend(self, other: "Parsed") -> None:
        self.clm_segments += other.clm_segments
        for name in (
            "claims",
            "lines",
            "providers",
            "remittances",
            "remittance_lines",
            "adjustments",
            "offsets",
            "rejected",
        ):
            getattr(self, name).extend(getattr(other, name))
        for code, n in other.transactions.items():
            self.transactions[code] = self.transactions.get(code, 0) + n


def segment_handlers(cls: type) -> dict[str, Any]:
    """Segment id -> handler function of a mapper class (its ``on_XXX`` methods)."""
    return {name[3:]: fn for name, fn in vars(cls).items() if name.startswith("on_")}
