"""Sealing cookie files, where the key comes from, and `Secrets:CookieKey` in configuration."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from myapp.processing import ConfigurationError
from myapp.scraping.cookie_cipher import (
    COOKIE_KEY_SETTING,
    CookieCipher,
    CookieKeyError,
    parse_cookie_keys,
    sealed_length,
)
from myapp.scraping.cookie_keys import (
    CookieKey,
    find_cookie_key,
    key_file_path,
    load_or_create_key_file,
    open_cookie_cipher,
)
from myapp.settings import load_settings
from tests.scraping.conftest import (
    COOKIE_VALUES,
    OTHER_COOKIE_KEY,
    TEST_CIPHER,
    TEST_COOKIE_KEY,
    cookie_file_text,
)

POSTGRES_URL = "postgresql://app:pw@127.0.0.1/shop"


def test_a_sealed_file_opens_to_the_same_bytes_and_shows_nothing() -> None:
    contents = cookie_file_text().encode()

    token = TEST_CIPHER.seal(contents)

    assert TEST_CIPHER.open(token) == contents
    assert not any(value in token for value in COOKIE_VALUES)
    assert TEST_COOKIE_KEY not in repr(TEST_CIPHER)


@settings(max_examples=60)
@given(st.integers(min_value=0, max_value=5000))
def test_sealed_length_is_exactly_the_tokens_length(size: int) -> None:
    assert len(TEST_CIPHER.seal(b"x" * size)) == sealed_length(size)


def test_another_key_is_refused_naming_the_setting_never_the_key() -> None:
    other = CookieCipher.from_key_text(OTHER_COOKIE_KEY, COOKIE_KEY_SETTING)
    token = other.seal(cookie_file_text().encode())

    with pytest.raises(CookieKeyError) as caught:
        TEST_CIPHER.open(token)

    message = str(caught.value)
    assert "Secrets:CookieKey" in message and "\n" not in message
    assert TEST_COOKIE_KEY not in message and OTHER_COOKIE_KEY not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_rotation_the_first_key_seals_every_key_opens() -> None:
    old_token = TEST_CIPHER.seal(b"sealed before the rotation")
    rotated = CookieCipher.from_key_text(f"{OTHER_COOKIE_KEY}, {TEST_COOKIE_KEY}", "test")

    new_token = rotated.seal(b"sealed after")

    assert rotated.open(old_token) == b"sealed before the rotation"
    assert CookieCipher.from_key_text(OTHER_COOKIE_KEY, "test").open(new_token) == b"sealed after"
    with pytest.raises(CookieKeyError):
        TEST_CIPHER.open(new_token)


@pytest.mark.parametrize(
    "text",
    ["s3cr3t-not-a-key", TEST_COOKIE_KEY[:-2], f"{TEST_COOKIE_KEY},", "é" * 44, " , "],
)
def test_text_that_is_not_keys_is_refused_without_being_repeated(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_cookie_keys(text)

    assert "Fernet keys" in str(caught.value)
    assert not text.strip(" ,") or text.strip(" ,") not in str(caught.value)


def write_settings(tmp_path: Path, secrets: dict[str, str]) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    (config / "appsettings.json").write_text(json.dumps({"Secrets": secrets}))
    return config


def test_the_setting_is_read_as_a_secret(tmp_path: Path) -> None:
    settings = load_settings(config_dir=write_settings(tmp_path, {"CookieKey": TEST_COOKIE_KEY}))

    assert isinstance(settings.secrets.cookie_key, SecretStr)
    assert settings.secrets.cookie_key.get_secret_value() == TEST_COOKIE_KEY
    assert TEST_COOKIE_KEY not in repr(settings) + str(settings.model_dump())


def test_an_invalid_setting_names_the_key_and_hides_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("Secrets__CookieKey", "s3cr3t-but-no-key")

    with pytest.raises(ConfigurationError) as caught:
        load_settings(config_dir=write_settings(tmp_path, {}))

    assert caught.value.key == "Secrets:CookieKey"
    assert str(caught.value).startswith("Secrets:CookieKey = '***' is invalid: expected ")
    assert "s3cr3t" not in str(caught.value)


def test_a_blank_setting_is_unset(tmp_path: Path) -> None:
    settings = load_settings(config_dir=write_settings(tmp_path, {"CookieKey": "  "}))
    assert settings.secrets.cookie_key is None


def test_where_the_key_comes_from() -> None:
    configured = find_cookie_key(SecretStr(TEST_COOKIE_KEY), POSTGRES_URL)
    assert configured is not None and configured.configured is not None
    assert find_cookie_key(None, POSTGRES_URL) is None
    assert find_cookie_key(None, "sqlite+aiosqlite:///./data/myapp.db") == CookieKey(
        key_file=Path("data/myapp.cookie.key")
    )
    assert find_cookie_key(None, "sqlite+aiosqlite:///:memory:") == CookieKey()
    assert key_file_path("file:/srv/shop.db?mode=rwc") == Path("/srv/shop.cookie.key")


def test_postgresql_without_the_setting_is_a_configuration_error_naming_it() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_cookie_cipher(find_cookie_key(None, POSTGRES_URL))

    assert caught.value.key == "Secrets:CookieKey"
    assert "PostgreSQL" in str(caught.value)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_the_key_file_is_created_with_mode_0600_and_reused(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "data" / "myapp.cookie.key"
    previous = os.umask(umask)
    try:
        first = load_or_create_key_file(path)
    finally:
        os.umask(previous)
    second = load_or_create_key_file(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first == second
    Fernet(first)
    assert sorted(p.name for p in path.parent.iterdir()) == ["myapp.cookie.key"]


def test_workers_starting_together_share_one_key(tmp_path: Path) -> None:
    path = tmp_path / "myapp.cookie.key"
    keys: list[str] = []
    start = threading.Barrier(8)

    def create() -> None:
        start.wait()
        keys.append(load_or_create_key_file(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 8 and len(set(keys)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["myapp.cookie.key"]


def test_a_sqlite_cipher_seals_with_its_key_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"

    first = open_cookie_cipher(find_cookie_key(None, url))
    again = open_cookie_cipher(find_cookie_key(None, url))

    assert again.open(first.seal(b"kept across runs")) == b"kept across runs"
    assert "shop.cookie.key" in first.key_source and COOKIE_KEY_SETTING in first.key_source


def test_a_damaged_key_file_names_the_file_not_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "myapp.cookie.key"
    path.write_text("s3cr3t-garbage\n")

    with pytest.raises(ConfigurationError) as caught:
        load_or_create_key_file(path)

    assert caught.value.key == str(path)
    assert "s3cr3t" not in str(caught.value)


def test_a_key_file_others_can_read_is_warned_about(
    tmp_path: Path, captured_logs: list[str]
) -> None:
    path = tmp_path / "myapp.cookie.key"
    path.write_text(TEST_COOKIE_KEY + "\n")
    path.chmod(0o644)

    assert load_or_create_key_file(path) == TEST_COOKIE_KEY

    logged = "\n".join(captured_logs)
    assert "can be read by other users (mode 0644): chmod 600 it" in logged
    assert TEST_COOKIE_KEY not in logged
