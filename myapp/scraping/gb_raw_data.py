"""Finding `var gbRawData = {...};` in a Shein page and decoding that one JSON value.

The pages are about a megabyte of scripts and CSS with the data in one inline script. We find the
assignment and let `json.JSONDecoder.raw_decode` read exactly one value from there: no regex over
the JSON, no HTML parser, and the script after the value is never looked at.
Numbers with a fraction decode as `Decimal`, so money never passes through a float. Numbers no
page sensibly holds (a hundred digits, `1e1000000`) are refused while decoding: turning such a value
into an `int` later would build a million-digit integer and freeze the event loop for minutes.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from myapp.scraping.errors import PageParseError

VARIABLE_NAME = "gbRawData"
# `var gbRawData = {`, `var gbRawData={`, `var  gbRawData =\n {` ... No leading `\b`: it stops
# the regex engine from scanning for the literal "var" and makes the search ~100x slower on a
# 1 MB page; `_find_assignment` checks the word boundary itself.
_ASSIGNMENT = re.compile(r"var\s+" + VARIABLE_NAME + r"\s*=\s*")
# Far beyond any price, quantity, id or unix time in milliseconds, far below a slow number.
MAX_NUMBER_LENGTH = 100
MAX_NUMBER_EXPONENT = 100
SHOWN_NUMBER_LENGTH = 30


class GbRawDataError(PageParseError):
    """The page has no usable `gbRawData`."""


class _AbsurdNumber(ValueError):
    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _bounded_float(literal: str) -> Decimal:
    if len(literal) > MAX_NUMBER_LENGTH:
        raise _AbsurdNumber(literal)
    number = Decimal(literal)
    if abs(number.adjusted()) > MAX_NUMBER_EXPONENT:
        raise _AbsurdNumber(literal)
    return number


def _bounded_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_LENGTH:
        raise _AbsurdNumber(literal)
    return int(literal)


_DECODER = json.JSONDecoder(parse_float=_bounded_float, parse_int=_bounded_int)


def extract_gb_raw_data(page: str) -> dict[str, Any]:
    """The decoded `gbRawData` object of `page`; a `GbRawDataError` says why there is none."""
    match = _find_assignment(page)
    if match is None:
        raise GbRawDataError(
            f"the page has no `var {VARIABLE_NAME} = ...` script "
            "(not an orders page, or the session was signed out)"
        )
    start = match.end()
    try:
        value, _ = _DECODER.raw_decode(page, start)
    except json.JSONDecodeError as error:
        raise _decode_error(page, start, error) from None
    except RecursionError:
        raise GbRawDataError(f"{VARIABLE_NAME} is nested too deeply to decode") from None
    except _AbsurdNumber as error:
        raise _number_error(error.literal) from None
    if not isinstance(value, dict):
        raise GbRawDataError(f"{VARIABLE_NAME} is {_json_type(value)}, expected a JSON object")
    return value


def _find_assignment(page: str) -> re.Match[str] | None:
    position = 0
    while (match := _ASSIGNMENT.search(page, position)) is not None:
        before = page[match.start() - 1] if match.start() else " "
        if not (before.isalnum() or before in "_$"):  # `myvar gbRawData` is not our `var`
            return match
        position = match.end()
    return None


def _decode_error(page: str, start: int, error: json.JSONDecodeError) -> GbRawDataError:
    offset = error.pos - start
    # A string still open at the end of the page reports where it started, not where it ended.
    if error.pos >= len(page.rstrip()) or error.msg.startswith("Unterminated string"):
        return GbRawDataError(
            f"{VARIABLE_NAME} is truncated: the page ends inside its JSON value "
            f"({len(page) - start} characters in; {error.msg.removesuffix(' starting at')})"
        )
    if offset == 0:
        return GbRawDataError(f"{VARIABLE_NAME} is not JSON: {error.msg} at its first character")
    return GbRawDataError(
        f"{VARIABLE_NAME} is not valid JSON (truncated or not JSON): {error.msg}, "
        f"character {offset} of its value (page line {error.lineno}, column {error.colno})"
    )


def _number_error(literal: str) -> GbRawDataError:
    shown = literal
    if len(literal) > SHOWN_NUMBER_LENGTH:
        shown = f"{literal[:SHOWN_NUMBER_LENGTH]}... ({len(literal):,} characters)"
    return GbRawDataError(
        f"{VARIABLE_NAME} holds the number {shown}, beyond any sane value (at most "
        f"{MAX_NUMBER_LENGTH} characters and an exponent of {MAX_NUMBER_EXPONENT}): refused"
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "a number"
