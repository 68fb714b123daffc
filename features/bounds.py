"""The bounds of every amount, quantity and date of the data contract, defined once.

Plain Python (no pandas), so that the X12 importer reads the same numbers as the contract's checks
(``features.contract.Column.upper`` / ``Column.years``). Rationale in docs/contract.md ("Bounds").
"""

from __future__ import annotations

#: The plausible maximum of every amount, in dollars (charges, payments, line paid, recoupments). The
#: largest single claims (transplants, CAR-T, long ICU stays) are billed at a few million dollars; a
#: hundred times that is still plausible and keeps a sum over a million claims exact to the cent in a
#: float64 (< 2**53 cents). Anything above is a typo, a unit mix-up or an attack.
MAX_AMOUNT = 100_000_000
#: The plausible maximum of a line's units (SV104 / SV205): drug units of a J-code run into thousands and
#: the largest NCCI MUE of the packaged rulebook allows 90,000 units of one code.
MAX_UNITS = 99_999
#: The largest line number (LX01 is at most 6 digits).
MAX_LINE_NUMBER = 999_999
#: The first and last plausible year of every date (service, submission, payment, recoupment, coverage).
DATE_YEARS: tuple[int, int] = (1900, 2199)
