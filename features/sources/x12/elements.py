"""Reading the elements of a segment into values: :func:`el` (an element, stripped), :func:`bounded_el` (within a
contract column's length), :func:`number` (an X12 decimal within the contract's bounds), :func:`x12_date` and
:func:`isa_date` (ISO dates in the contract's years), :func:`components` and :func:`procedure` (composites). A value
that does not fit raises ``ValueError`` naming the element and what it expects, never the value."""

from __future__ import annotations

import datetime as dt
import re

from features.contract.bounds import DATE_YEARS, MAX_AMOUNT, MAX_CHARS, MAX_UNITS

_DATE_CACHE: dict[str, str | None] = {}


def x12_date(value: str) -> str | None:
    """``CCYYMMDD`` (or the start of ``RD8``/``DT`` values) -> ISO date; ``None`` when not a date (ASCII
    digits only, a year in the contract's range :data:`~features.contract.bounds.DATE_YEARS`)."""
    key = value[:8]
    if key in _DATE_CACHE:
        return _DATE_CACHE[key]
    out: str | None = None
    if len(key) == 8 and key.isascii() and key.isdigit() and DATE_YEARS[0] <= int(key[:4]) <= DATE_YEARS[1]:
        try:
            out = dt.date(int(key[:4]), int(key[4:6]), int(key[6:8])).isoformat()
        except ValueError:
            out = None
    if len(_DATE_CACHE) < 100_000:
        _DATE_CACHE[key] = out
    return out


def isa_date(value: str) -> str | None:
    """ISA09 ``YYMMDD`` -> ISO date (years 00-69 are 20xx, 70-99 are 19xx)."""
    value = value.strip()
    if len(value) != 6 or not (value.isascii() and value.isdigit()):
        return None
    century = "20" if int(value[:2]) < 70 else "19"
    return x12_date(century + value)


def el(seg: list[str], i: int) -> str:
    """Element ``i`` of a segment (``seg[0]`` is the segment id), stripped; '' when absent."""
    return seg[i].strip() if i < len(seg) else ""


def bounded(value: str, element: str, column: str) -> str:
    """``value`` (an element's text) if it fits the contract column's length (``features.contract.bounds.MAX_CHARS``);
    else ``ValueError`` naming the element (the mappers reject its claim or transaction, naming the segment)."""
    n = MAX_CHARS[column]
    if len(value) > n:
        raise ValueError(f"{element} of at most {n} characters")
    return value


def bounded_el(seg: list[str], i: int, column: str) -> str:
    """:func:`el` within the length of a contract column (:func:`bounded`)."""
    return bounded(el(seg, i), f"{seg[0]}{i:02d}", column)


#: an X12 decimal (data type R): ASCII digits, an optional leading minus (or plus) and decimal point,
#: an optional exponent; not ``inf``, ``nan``, ``1_000`` or other digits that Python's float() reads
DECIMAL_PATTERN = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
#: what each bounded kind of number is (the messages) and its bounds: (maximum, signed)
NUMBER_KINDS: dict[str, tuple[str, float, bool]] = {
    "amount": ("an amount >= 0 and at most {maximum:,}", MAX_AMOUNT, False),
    "signed_amount": ("an amount of at most {maximum:,} either way", MAX_AMOUNT, True),
    "units": ("units > 0 and at most {maximum:,}", MAX_UNITS, False),
    "signed_units": ("a quantity of at most {maximum:,} either way", MAX_UNITS, True),
}


def expected_number(kind: str, element: str) -> str:
    """What element ``element`` of kind ``kind`` must hold, e.g. ``an amount >= 0 ... in CLM02``."""
    text, maximum, _ = NUMBER_KINDS[kind]
    return f"{text.format(maximum=maximum)} in {element}"


def number(text: str, element: str, kind: str = "signed_amount") -> float | None:
    """An X12 decimal of element ``element`` (e.g. ``CLM02``) within the contract's bounds of ``kind``
    (``amount``, ``signed_amount``, ``units``, ``signed_units``: :data:`NUMBER_KINDS`, bounds from
    :mod:`features.contract.bounds`); ``None`` when empty. Raises ``ValueError`` naming the element and what it
    expects (never the value: it may be patient data) when it is not a plain finite decimal in range.
    ``units`` accepts 0 (a placeholder is used for missing or zero units)."""
    text = text.strip()
    if not text:
        return None
    _, maximum, signed = NUMBER_KINDS[kind]
    x = float(text) if DECIMAL_PATTERN.fullmatch(text) else float("nan")
    if not (abs(x) <= maximum and (signed or x >= 0)):  # NaN, inf, too large, or negative
        raise ValueError(expected_number(kind, element))
    return x


def components(value: str, component: str) -> list[str]:
    """Split a composite; when ISA16 does not occur in it, tolerate the other common separator (':' / '>')."""
    if component not in value:
        for alt in (":", ">"):
            if alt != component and alt in value:
                return value.split(alt)
    return value.split(component)


def procedure(composite: str, component: str) -> tuple[str, str, list[str]]:
    """(qualifier, code, modifiers) of an SV1-1 / SV2-2 / SVC-1 composite."""
    parts = components(composite, component)
    qual = parts[0].strip().upper()
    code = parts[1].strip().upper() if len(parts) > 1 else ""
    mods = [p.strip().upper() for p in parts[2:6] if p.strip()]
    return qual, code, mods
