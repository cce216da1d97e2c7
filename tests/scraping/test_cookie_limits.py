"""A cookie file's size is checked before it is read, its nesting before it is parsed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from myapp.scraping.cookie_limits import (
    MAX_COOKIE_FILE_DEPTH,
    CookieFileTooDeepError,
    CookieFileTooLargeError,
    check_depth,
    read_cookie_file,
)
from myapp.scraping.cookies import CookieFile
from myapp.scraping.errors import CookieFileError
from tests.scraping.conftest import cookie_file_data, cookie_file_text

CAP = 4096
# Strings full of what a naive bracket counter would trip on.
tricky_text = st.text(alphabet='[]{}"\\ab\n', max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3)
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


@given(json_values, st.integers(min_value=0, max_value=6))
def test_depth_is_counted_as_json_nests_whatever_the_strings_hold(value: Any, limit: int) -> None:
    text = json.dumps(value)
    if depth(value) > limit:
        with pytest.raises(CookieFileTooDeepError):
            check_depth(text, limit)
    else:
        check_depth(text, limit)


def test_a_file_200000_levels_deep_is_one_readable_error_at_once() -> None:
    text = '{"domain": "x", "metadata": ' + "[" * 200_000 + "]" * 200_000 + "}"
    started = time.perf_counter()

    with pytest.raises(CookieFileError) as caught:
        CookieFile.from_json(text)

    assert time.perf_counter() - started < 1
    assert str(caught.value) == "cookie file nests objects or arrays more than 32 levels deep"
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_32_levels_are_read_33_are_refused() -> None:
    def nested(levels: int) -> str:
        data = cookie_file_data()
        text = json.dumps({**data, "metadata": {}})  # the file itself is 1 level deep
        inner = "[" * (levels - 2) + "]" * (levels - 2)
        return text[: text.rindex("{}")] + "{" + f'"deep": {inner}' + "}}"

    assert CookieFile.from_json(nested(MAX_COOKIE_FILE_DEPTH)).domain == "127.0.0.1"
    with pytest.raises(CookieFileTooDeepError):
        CookieFile.from_json(nested(MAX_COOKIE_FILE_DEPTH + 1))


def test_an_unterminated_string_full_of_escapes_is_scanned_in_linear_time() -> None:
    text = '{"a": "' + '\\"' * 400_000
    started = time.perf_counter()

    check_depth(text)  # malformed: left for the decoder to describe

    assert time.perf_counter() - started < 2
    with pytest.raises(CookieFileError, match="not valid JSON"):
        CookieFile.from_json(text)


def test_a_number_too_long_for_python_is_not_json_not_a_crash() -> None:
    text = cookie_file_text().replace('"metadata": {', '"metadata": {"n": ' + "9" * 5000 + ", ")

    with pytest.raises(
        CookieFileError, match="cookie file is not valid JSON: a number is too long"
    ):
        CookieFile.from_json(text)


def test_a_file_over_the_cap_is_refused_by_its_size_without_being_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as file:
        file.truncate(200 * 1024 * 1024)  # sparse: 200 MB that takes no disk

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", never)
    with pytest.raises(CookieFileTooLargeError) as caught:
        read_cookie_file(path, CAP)

    assert str(caught.value) == (
        f"cookie file {path} is 209,715,200 bytes, over the limit of 4,096 bytes "
        "(BackgroundProcessing:Shein:MaxCookieFileBytes)"
    )


def test_a_file_whose_size_says_nothing_is_read_no_further_than_the_cap() -> None:
    # /dev/zero reports size 0 and never ends: only the capped read stops it.
    with pytest.raises(CookieFileTooLargeError, match="is over the limit of 4,096 bytes"):
        read_cookie_file(Path("/dev/zero"), CAP)


def test_exactly_the_cap_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "cookies.json"
    path.write_bytes(b"x" * CAP)
    assert len(read_cookie_file(path, CAP)) == CAP
    path.write_bytes(b"x" * (CAP + 1))
    with pytest.raises(CookieFileTooLargeError, match="is 4,097 bytes"):
        read_cookie_file(path, CAP)
