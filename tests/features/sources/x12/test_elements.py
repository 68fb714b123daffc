"""X12 element values: dates (ASCII digits, the contract's years), bounded numbers and lengths, composites."""

from __future__ import annotations

import pytest

from features.contract.bounds import MAX_CHARS
from features.sources.x12.elements import bounded_el, components, number, procedure, x12_date
from features.sources.x12.importer import parse_x12
from tests.helpers.x12 import CLAIMS_837, interchange


def test_x12_dates_ascii_and_in_range() -> None:
    assert x12_date("20240101") == "2024-01-01" and x12_date("19000101") == "1900-01-01"
    assert x12_date("21991231") == "2199-12-31"
    for bad in ("00000101", "18991231", "22000101", "２０２４０１０１", "2024O101", "-2024010"):
        assert x12_date(bad) is None, bad
    # a BHT04 in full-width digits is not a date: the submission date falls back to GS04
    body = [s.replace("BHT*0019*00*B1*20240103", "BHT*0019*00*B1*２０２４０１０３") for s in CLAIMS_837]
    p = parse_x12(interchange(body), "fw.837")
    assert {r["submitted_date"] for r in p.claims} == {"2024-01-02"}


@pytest.mark.parametrize(
    "text, kind, value",
    [(" 12.5 ", "amount", 12.5), ("", "amount", None), ("-3", "signed_amount", -3.0), ("0", "units", 0.0)],
)
def test_number_reads_plain_decimals(text: str, kind: str, value: float | None) -> None:
    assert number(text, "X01", kind) == value


@pytest.mark.parametrize(
    "text, kind", [("-3", "amount"), ("1e9", "amount"), ("nan", "signed_amount"), ("100000", "units")]
)
def test_number_out_of_bounds_names_the_element_not_the_value(text: str, kind: str) -> None:
    with pytest.raises(ValueError, match=r"at most .* in SV102$") as err:
        number(text, "SV102", kind)
    assert text not in str(err.value)


def test_bounded_el_names_the_element_and_its_length() -> None:
    n = MAX_CHARS["payer_id"]
    assert bounded_el(["N1", "PR", "P" * n], 2, "payer_id") == "P" * n
    with pytest.raises(ValueError, match=f"^N102 of at most {n} characters$"):
        bounded_el(["N1", "PR", "P" * (n + 1)], 2, "payer_id")


def test_composites_tolerate_the_other_separator() -> None:
    assert components("HC>99213>25", ":") == ["HC", "99213", "25"]
    assert procedure(" hc:99213:25:: 59 :", ":") == ("HC", "99213", ["25", "59"])
