from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from myapp.scraping.cookies import CookieFile
from myapp.scraping.errors import CookieFileError, CookiesExpiredError
from tests.scraping.conftest import (
    CAPTURED_AT,
    COOKIE_VALUES,
    SESSION_COOKIE_VALUE,
    cookie_file_data,
    cookie_file_text,
)


def test_loads_the_collectors_camel_case_json() -> None:
    cookies = CookieFile.from_json(cookie_file_text(domain="shein.com"))

    assert cookies.domain == "shein.com"
    assert cookies.captured_at == CAPTURED_AT
    session = cookies.cookies["sessionID_shein"]
    assert session.value.get_secret_value() == SESSION_COOKIE_VALUE
    assert session.http_only is True
    assert session.domain is None and session.path is None
    assert cookies.cookies["token"].same_site == "Lax"
    assert cookies.metadata["browser"] == "Chrome 131"
    assert cookies.default_cookie_domain == ".shein.com"


def test_save_and_load_round_trip_keeps_the_values(tmp_path: Path) -> None:
    original = CookieFile.from_json(cookie_file_text())
    path = tmp_path / "cookies.json"

    original.save(path)
    reloaded = CookieFile.load(path)

    assert reloaded == original
    saved = json.loads(path.read_text())
    assert saved["cookies"]["sessionID_shein"]["value"] == SESSION_COOKIE_VALUE
    assert "capturedAt" in saved and "httpOnly" in saved["cookies"]["sessionID_shein"]


def test_values_are_masked_in_repr_and_ordinary_dumps() -> None:
    cookies = CookieFile.from_json(cookie_file_text())

    shown = repr(cookies) + str(cookies) + cookies.model_dump_json() + str(cookies.model_dump())

    for value in COOKIE_VALUES:
        assert value not in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "cookie file is not valid JSON"),
        ('{"domain": "x", "cookies": {', "cookie file is not valid JSON"),
        ("[]", "cookie file is invalid"),
        ('{"domain": "shein.com"}', "capturedAt: Field required"),
    ],
)
def test_malformed_files_get_readable_errors(text: str, expected: str) -> None:
    with pytest.raises(CookieFileError, match=expected):
        CookieFile.from_json(text)


def test_an_invalid_cookie_names_the_field_but_never_shows_a_value() -> None:
    data = cookie_file_data()
    data["cookies"]["sessionID_shein"]["secure"] = SESSION_COOKIE_VALUE  # not a boolean
    data["cookies"]["token"]["value"] = ["not", "a", "string", SESSION_COOKIE_VALUE]
    data["capturedAt"] = "yesterday-" + SESSION_COOKIE_VALUE

    with pytest.raises(CookieFileError) as caught:
        CookieFile.from_json(json.dumps(data))

    message = str(caught.value)
    assert "cookies.sessionID_shein.secure" in message
    assert "cookies.token.value" in message
    assert "capturedAt" in message
    assert SESSION_COOKIE_VALUE not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_invalid_json_error_does_not_quote_the_text() -> None:
    text = cookie_file_text()[:-40]  # cut inside the cookies

    with pytest.raises(CookieFileError) as caught:
        CookieFile.from_json(text)

    assert "line" in str(caught.value)
    for value in COOKIE_VALUES:
        assert value not in str(caught.value)


def test_expired_cookies_say_when() -> None:
    expires_at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    cookies = CookieFile.from_json(cookie_file_text(expires_at=expires_at))

    cookies.ensure_not_expired(expires_at - timedelta(seconds=1))
    with pytest.raises(CookiesExpiredError, match="cookies expired at 2026-11-20T12:00:00"):
        cookies.ensure_not_expired(expires_at + timedelta(seconds=1))


def test_a_file_without_expiry_never_expires() -> None:
    data = cookie_file_data()
    del data["expiresAt"]
    cookies = CookieFile.from_json(json.dumps(data))

    assert not cookies.is_expired(datetime(2100, 1, 1, tzinfo=UTC))


def test_missing_file_is_a_readable_error(tmp_path: Path) -> None:
    with pytest.raises(CookieFileError, match="cannot read cookie file"):
        CookieFile.load(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "value",
    [
        "s3cr3t-é-value",
        "s3cr3t\r\nX-Evil: 1",
        "s3cr3t value",
        "s3cr3t\x7fvalue",
        "s3cr3t\tvalue",
        "s3cr3t,value",
        "s3cr3t;value",
        "s3cr3t\\value",
        's3cr3t"value',
        '"s3cr3t',
    ],
)
def test_a_value_a_cookie_header_cannot_carry_is_refused_without_showing_it(value: str) -> None:
    data = cookie_file_data(session_value=value)

    with pytest.raises(CookieFileError) as caught:
        CookieFile.from_json(json.dumps(data))

    message = str(caught.value)
    assert message.startswith("cookie file is invalid: cookies.sessionID_shein.value: ")
    assert "RFC 6265 cookie-octets" in message
    assert "s3cr3t" not in message and "position" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    "value", ["", '""', '"quoted-s3cr3t"', "a=b|c:d/e%2F+x!#$&'()*-.<>?@[]^_`{}~"]
)
def test_every_rfc_6265_cookie_value_is_accepted(value: str) -> None:
    cookies = CookieFile.from_json(cookie_file_text(session_value=value))

    assert cookies.cookies["sessionID_shein"].value.get_secret_value() == value


@pytest.mark.parametrize("name", ["sessión", "bad name", "a=b", "a;b", "x\r\ny", "", "(x)"])
def test_a_cookie_name_that_is_not_a_token_is_refused(name: str) -> None:
    data = cookie_file_data()
    data["cookies"]["token"]["name"] = name

    with pytest.raises(CookieFileError, match=r"cookies\.token\.name: .*a cookie name must be"):
        CookieFile.from_json(json.dumps(data))


def test_a_key_with_a_line_break_is_shown_escaped_in_the_error() -> None:
    data = cookie_file_data()
    data["cookies"]["bad\r\nkey"] = {"name": "bad key", "value": "x"}

    with pytest.raises(CookieFileError) as caught:
        CookieFile.from_json(json.dumps(data))

    assert "cookies.'bad\\r\\nkey'.name" in str(caught.value)
    assert "\n" not in str(caught.value)
