"""The contract's rules, each defined once: code patterns (and later columns, bounds and messages).

Every reader of claims (the contract loader, the X12 importer, the service) takes its patterns from here.
"""

from __future__ import annotations

import re

# CPT (4 digits + digit/letter) or HCPCS Level II (letter + 4 digits)
PROCEDURE_PATTERN = re.compile(r"(?:[0-9]{4}[0-9A-Z]|[A-Z][0-9]{4})")
# two characters, digits or capital letters
MODIFIER_PATTERN = re.compile(r"[0-9A-Z]{2}")
# ten digits (the check digit is not verified)
NPI_PATTERN = re.compile(r"[0-9]{10}")
# ICD-10-CM without the dot: letter, digit, digit/letter, then up to 4 more
ICD10_PATTERN = re.compile(r"[A-Z][0-9][0-9A-Z](?:[0-9A-Z]{1,4})?")
