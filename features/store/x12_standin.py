"""STAND-IN until ``features.sources.x12.units_from_x12`` (one unit per ST..SE transaction, 835 stored raw) lands:
one unit per X12 FILE, keyed by the file's SHA-256, holding the contract rows the existing importer joins from that
file alone (claims with their lines and providers; recoupments of its reversals and offsets). Delete this module
when the real adapter is merged (features.store.sources prefers it)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from features.errors import RecoupError
from features.store.unit import Unit


def units_from_x12(path: Path) -> Iterator[Unit]:
    from features.sources.x12.importer import import_x12
    from features.store.sources import sha256_of

    path = Path(path)
    unit = Unit(key=f"x12file:{sha256_of(path)}", kind="x12", source=str(path))
    try:
        result = import_x12([path])
    except RecoupError as exc:
        unit.problems.append(str(exc) if str(path) in str(exc) else f"{path}: {exc}")
        yield unit
        return
    for r in result.rejected:
        if r.kind == "warning":
            continue
        unit.skipped[r.reason] = unit.skipped.get(r.reason, 0) + 1
    h = result.history
    for name in ("claims", "claim_lines", "providers", "recoupments"):
        df = getattr(h, name)
        if df is not None and len(df):
            unit.tables[name] = df.reset_index(drop=True)
    yield unit
