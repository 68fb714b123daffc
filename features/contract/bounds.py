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

# --------------------------------------------------------------------------------------
# counts and lengths: read by the contract's checks (``Column.max_items`` / ``Column.max_chars``, both check
# paths), the X12 importer's per-segment checks and the service's request models (serving/schemas.py)
# --------------------------------------------------------------------------------------

#: diagnosis codes of a claim: HI holds 12 on an 837P (ABK + 11 ABF) and 25 on an 837I (ABK + two HI of
#: 12 ABF); the contract holds both claim types, so the 837I's 25 is the bound of every path
MAX_DIAGNOSIS_CODES = 25
#: procedure modifiers of a line: SV101-3..6 (SV202-3..6), four slots
MAX_MODIFIERS = 4
#: diagnosis pointers of a line: SV107-1..4, four slots (an 837I line has none); each points into the
#: first 12 diagnosis codes (an 837P's HI)
MAX_DIAGNOSIS_POINTERS = 4
MAX_POINTER = 12

#: longest text of each identifier or code, in characters (after trimming spaces): the X12 5010 element's
#: maximum size, so that nothing a valid X12 file carries is refused. The contract then checks the meaning
#: (10-digit NPI, 2-digit place of service, ...); kinds whose pattern fixes the length (NPI, place of
#: service, procedure, modifier, diagnosis code, enums, dates) are bounded by the pattern in the contract
#: and by these sizes in the service's request models (before the pattern is read).
MAX_CHARS: dict[str, int] = {
    "claim_id": 38,  # CLM01 patient control number (CLP01 in an 835)
    "patient_id": 80,  # NM109 of NM1*IL / NM1*QC
    "npi": 80,  # NM109 of NM1*85 / NM1*82
    "payer_id": 80,  # NM109 of NM1*PR (N104 of N1*PR in an 835; the name fallback NM103/N102 is 60)
    "prior_auth_number": 50,  # REF02 of REF*G1
    "taxonomy_code": 50,  # PRV03 (NUCC taxonomy codes are 10)
    "state": 2,  # N402
    "name": 100,  # provider name: NM103 (60) + ", " + NM104 (35) of NM1*85
    "carc": 8,  # CAS01 group (2) + '-' + CAS02 reason (5), e.g. CO-97
    "reviewer": 64,  # reviews: an opaque reviewer id (a workbench user id or a hash; never a person's name)
    "place_of_service": 2,  # CLM05-1
    "frequency_code": 1,  # CLM05-3
    "procedure_code": 48,  # SV101-2
    "modifier": 2,  # SV101-3..6
    "diagnosis_code": 30,  # HI01-2
    "diagnosis_pointer": 2,  # SV107-1..4, as text in the 'a;b' form
    "enum": 32,  # plan_type, claim_type (not X12 elements; their longest level is 18)
    "date": 32,  # a size bound only: the contract alone decides what a date is (YYYY-MM-DD)
}
