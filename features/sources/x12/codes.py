"""X12 codes and what they mean in the data contract: the placeholders used when a value is missing, facility
types to places of service, claim filing indicators to plan types, 837 versions to claim types, 835 claim statuses,
and which procedure codes and NPIs are carried (patterns from :mod:`features.contract.schema`). All documented in
docs/x12.md."""

from __future__ import annotations

import re

from features.contract.schema import NPI_PATTERN, PROCEDURE_PATTERN


#: ICD-10-CM R69 "Illness, unspecified": a real, valid code, used when no ICD-10 diagnosis is known.
UNKNOWN_DIAGNOSIS = "R69"
#: 10 digits (as the contract asks) but never a real NPI (NPIs start with 1 or 2, Luhn check fails).
UNKNOWN_NPI = "0000000000"
#: CMS place of service 99 "Other place of service not identified above".
UNKNOWN_POS = "99"
#: Default place of service of an institutional claim: 22, on-campus outpatient hospital.
DEFAULT_INSTITUTIONAL_POS = "22"
UNKNOWN_PAYER = "UNKNOWN"

#: 837I facility type code (first two digits of the type of bill) -> CMS place of service.
FACILITY_TO_POS: dict[str, str] = {
    "11": "21",
    "12": "21",
    "18": "21",  # hospital inpatient (Part A, Part B only), swing bed
    "13": "22",
    "14": "22",
    "85": "22",  # hospital outpatient, other, critical access hospital
    "21": "31",
    "22": "31",
    "23": "31",
    "28": "31",  # skilled nursing facility
    "32": "12",
    "33": "12",
    "34": "12",  # home health -> home
    "65": "54",
    "66": "54",  # intermediate care facility
    "71": "72",
    "72": "65",
    "73": "50",
    "75": "62",
    "76": "53",  # RHC, ESRD, FQHC, CORF, CMHC
    "81": "34",
    "82": "34",  # hospice
    "83": "24",  # ambulatory surgical center
}

MEDICARE_CODES = {"MA", "MB"}
MEDICARE_ADVANTAGE_CODES = {"16"}
MEDICAID_CODES = {"MC"}
MANAGED_CARE_CODES = {"HM", "12", "13", "14", "15", "17"}

PROFESSIONAL_VERSIONS = ("X222", "X098")
INSTITUTIONAL_VERSIONS = ("X223", "X096")
DENTAL_VERSIONS = ("X224", "X097")

#: 835 claim statuses (CLP02) that pay, reverse or deny; the PLB reason of a take-back offset
PAID_STATUSES = {"1", "2", "3", "19", "20", "21"}
REVERSAL_STATUS = "22"
DENIED_STATUS = "4"
OFFSET_REASON = "WO"

#: HI qualifiers of ICD-10-CM (principal, other) and of ICD-9-CM (principal, other) diagnoses
ICD10_QUALIFIERS = ("ABK", "ABF")
ICD9_QUALIFIERS = ("BK", "BF")
ICD9_PATTERN = re.compile(r"^(?:\d{3,5}|V\d{2,4}|E\d{3,4})$")
#: a place of service as CLM05-1 or CLP08 gives it
PLACE_OF_SERVICE_PATTERN = re.compile(r"\d{2}")
#: procedure qualifiers whose code is carried: HCPCS/CPT, ADA dental (HCPCS D-codes), HIPPS-free HCPCS
PROCEDURE_QUALIFIERS = {"HC", "AD", "HP"}


def plan_type(filing_code: str, payer_name: str = "") -> str:
    """Contract plan type from the claim filing indicator (SBR09 / CLP06) and the payer's name."""
    code = filing_code.strip().upper()
    name = payer_name.upper()
    if code in MEDICARE_CODES:
        return "medicare"
    if code in MEDICARE_ADVANTAGE_CODES:
        return "medicare_advantage"
    if code in MEDICAID_CODES:
        return "medicaid"
    if code in MANAGED_CARE_CODES and "MEDICARE" in name:
        return "medicare_advantage"
    if code in MANAGED_CARE_CODES and "MEDICAID" in name:
        return "medicaid"
    return "commercial"


def institutional_pos(facility_code: str) -> str:
    """Place of service of an institutional claim from its facility type code (type of bill)."""
    return FACILITY_TO_POS.get(facility_code.strip()[:2], DEFAULT_INSTITUTIONAL_POS)


def frequency(code: str) -> str:
    """Claim frequency: 7 replacement and 8 void kept; anything else is an original (1)."""
    code = code.strip()
    return code if code in ("7", "8") else "1"


def claim_type_of_version(version: str) -> str:
    """``professional``, ``institutional`` or ``dental`` from an 837 version (GS08, ST03 or REF*87); '' if unknown."""
    v = version.upper()
    if any(x in v for x in PROFESSIONAL_VERSIONS):
        return "professional"
    if any(x in v for x in INSTITUTIONAL_VERSIONS):
        return "institutional"
    if any(x in v for x in DENTAL_VERSIONS):
        return "dental"
    return ""


def valid_procedure(qual: str, code: str) -> bool:
    """Whether a procedure composite's qualifier and code make a CPT/HCPCS code the contract accepts."""
    return qual in PROCEDURE_QUALIFIERS and PROCEDURE_PATTERN.fullmatch(code) is not None


def npi_or_none(qualifier: str, ident: str) -> str | None:
    """The NPI of an NM1/N1 identifier (qualifier ``XX``, ten digits); ``None`` otherwise."""
    ident = ident.strip()
    return ident if qualifier.strip() == "XX" and NPI_PATTERN.fullmatch(ident) else None
