from __future__ import annotations

import re
from decimal import Decimal

import pytest

from myapp.scraping.gb_raw_data import GbRawDataError, extract_gb_raw_data
from tests.scraping.pages import shein_page

DATA = {"order_list": [{"billno": "A1", "note": "}; var x = {"}], "price": 12.5}


@pytest.mark.parametrize(
    "assignment",
    ["var gbRawData = ", "var gbRawData=", "var  gbRawData\t=\n  ", "var gbRawData =\r\n"],
)
def test_finds_the_assignment_with_any_whitespace(assignment: str) -> None:
    page = shein_page(DATA, size=200_000, assignment=assignment)

    data = extract_gb_raw_data(page)

    assert data["order_list"][0]["note"] == "}; var x = {"


def test_decodes_exactly_one_value_and_ignores_the_script_after_it() -> None:
    page = '<script>var gbRawData = {"a": 1}; var gbRawData2 = {broken</script>'

    assert extract_gb_raw_data(page) == {"a": 1}


def test_fractional_numbers_decode_as_decimal() -> None:
    data = extract_gb_raw_data(shein_page(DATA, size=10_000))

    assert data["price"] == Decimal("12.5")
    assert isinstance(data["price"], Decimal)


def test_decoys_of_the_name_are_not_the_assignment() -> None:
    page = (
        "<script>var gbRawDataVersion = '2'; x.gbRawData = 5; // var gbRawData\n</script>"
        '<script>var gbRawData = {"real": true};</script>'
    )

    assert extract_gb_raw_data(page) == {"real": True}


def test_missing() -> None:
    with pytest.raises(GbRawDataError, match=re.escape("no `var gbRawData = ...` script")):
        extract_gb_raw_data(shein_page(None, size=50_000))


def test_truncated_page() -> None:
    page = shein_page(DATA, size=10_000)
    cut = page[: page.index('"note"') + 4]

    with pytest.raises(GbRawDataError, match="gbRawData is truncated"):
        extract_gb_raw_data(cut)


def test_truncated_value_followed_by_more_script() -> None:
    page = '<script>var gbRawData = {"order_list": [{"billno": "A1"</script><div>'

    with pytest.raises(GbRawDataError, match="not valid JSON"):
        extract_gb_raw_data(page)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{order_list: []}", "not valid JSON"),  # a JavaScript literal, not JSON
        ("JSON.parse('{}')", "gbRawData is not JSON"),
        ("null", "gbRawData is null, expected a JSON object"),
        ("[1, 2]", "gbRawData is an array"),
    ],
)
def test_not_json_or_not_an_object(value: str, expected: str) -> None:
    with pytest.raises(GbRawDataError, match=expected):
        extract_gb_raw_data(shein_page(value, size=20_000))


def test_var_must_be_a_whole_word() -> None:
    page = '<script>myvar gbRawData = {"fake": 1}; var gbRawData = {"real": 2};</script>'

    assert extract_gb_raw_data(page) == {"real": 2}


@pytest.mark.timeout(10)  # before the bound, `int()` of one of these froze the loop for minutes
@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("1e1000000", "1e1000000"),
        ("-2.5E-1000000", "-2.5E-1000000"),
        ("1e101", "1e101"),
        ("7" * 5000, "7" * 30 + "... (5,000 characters)"),
        ("0." + "1" * 200, "0." + "1" * 28 + "... (202 characters)"),
    ],
)
def test_absurd_numbers_are_refused_while_decoding(number: str, shown: str) -> None:
    page = f'<script>var gbRawData = {{"orderInfo": {{"unused": {number}, "billno": "A1"}}}};'

    with pytest.raises(GbRawDataError) as caught:
        extract_gb_raw_data(page)

    assert str(caught.value) == (
        f"gbRawData holds the number {shown}, beyond any sane value "
        "(at most 100 characters and an exponent of 100): refused"
    )


@pytest.mark.parametrize("number", ["1e100", "-1E-100", "9" * 100, "12345678901234567890.5"])
def test_large_but_sane_numbers_still_decode(number: str) -> None:
    data = extract_gb_raw_data(f'var gbRawData = {{"n": {number}}};')

    assert Decimal(data["n"]) == Decimal(number)
