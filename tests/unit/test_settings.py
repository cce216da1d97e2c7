"""Configuration: appsettings.json, the environment overlay, environment variables, and errors
that name the key, the value and what was expected (never echoing a secret)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from myapp.processing import ConfigurationError
from myapp.settings import AppSettings, LogFormat, LogLevel, load_settings

SECRET = "s3cr3t-Pa55w0rd-do-not-print"


def write(config_dir: Path, document: dict[str, Any] | str, name: str = "appsettings.json") -> None:
    text = document if isinstance(document, str) else json.dumps(document, indent=2)
    (config_dir / name).write_text(text, encoding="utf-8")


def error_for(config_dir: Path, document: dict[str, Any] | str, **kw: Any) -> ConfigurationError:
    write(config_dir, document)
    with pytest.raises(ConfigurationError) as raised:
        load_settings(config_dir=config_dir, **kw)
    return raised.value


def test_defaults_without_any_file(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(config_dir.parent)  # the default ./config: there, and empty

    settings = load_settings()

    assert settings.ingestion_service.poll_interval == timedelta(minutes=5)
    assert settings.background_processing.max_concurrency >= 1
    assert settings.connection_strings.database.startswith("sqlite+aiosqlite:///")
    assert settings.logging.log_level.default is LogLevel.INFORMATION
    assert settings.logging.format is LogFormat.TEXT


def test_the_shipped_appsettings_json_is_valid() -> None:
    settings = load_settings(config_dir=Path(__file__).parents[2] / "config")
    assert settings.ingestion_service.poll_interval == timedelta(minutes=5)


def test_values_in_appsettings_json_are_read(config_dir: Path) -> None:
    write(
        config_dir,
        {
            "IngestionService": {"PollInterval": "00:00:30"},
            "BackgroundProcessing": {"MaxConcurrency": 9},
            "ConnectionStrings": {"Database": "postgresql://app@127.0.0.1/app"},
            "Logging": {"LogLevel": {"Default": "Debug"}, "Format": "json"},
        },
    )

    settings = load_settings(config_dir=config_dir)

    assert settings.ingestion_service.poll_interval == timedelta(seconds=30)
    assert settings.background_processing.max_concurrency == 9
    assert settings.connection_strings.database == "postgresql://app@127.0.0.1/app"
    assert settings.logging.log_level.default is LogLevel.DEBUG
    assert settings.logging.format is LogFormat.JSON


def test_the_environment_overlay_is_merged_over_the_base_file(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        config_dir,
        {
            "IngestionService": {"PollInterval": "00:05:00"},
            "BackgroundProcessing": {"MaxConcurrency": 3},
        },
    )
    write(
        config_dir, {"IngestionService": {"PollInterval": "00:00:10"}}, "appsettings.Staging.json"
    )

    by_argument = load_settings("Staging", config_dir=config_dir)
    monkeypatch.setenv("MYAPP_ENVIRONMENT", "Staging")
    by_variable = load_settings(config_dir=config_dir)
    monkeypatch.delenv("MYAPP_ENVIRONMENT")
    without_overlay = load_settings(config_dir=config_dir)

    for settings in (by_argument, by_variable):
        assert settings.ingestion_service.poll_interval == timedelta(seconds=10)
        assert settings.background_processing.max_concurrency == 3  # kept from the base
    assert without_overlay.ingestion_service.poll_interval == timedelta(minutes=5)


def test_the_overlay_merges_keys_case_insensitively(config_dir: Path) -> None:
    write(config_dir, {"IngestionService": {"PollInterval": "00:05:00"}})
    write(config_dir, {"ingestionservice": {"pollinterval": "00:01:00"}}, "appsettings.Dev.json")

    settings = load_settings("Dev", config_dir=config_dir)

    assert settings.ingestion_service.poll_interval == timedelta(minutes=1)


# --- A directory or environment that was named must exist ------------------------------------


def without_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    monkeypatch.chdir(bare)  # no ./config here


def test_the_default_config_dir_may_be_absent(
    tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_config_dir(tmp_path, monkeypatch)

    settings = load_settings()

    assert settings.ingestion_service.poll_interval == timedelta(minutes=5)


@pytest.mark.parametrize("given", ["argument", "variable"])
def test_a_named_config_dir_that_does_not_exist_is_an_error_naming_it(
    tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    missing = tmp_path / "no-such-dir"
    if given == "variable":
        monkeypatch.setenv("MYAPP_CONFIG_DIR", str(missing))

    with pytest.raises(ConfigurationError) as raised:
        load_settings(config_dir=missing if given == "argument" else None)

    assert raised.value.key == "--config-dir (MYAPP_CONFIG_DIR)"
    assert str(raised.value) == (
        f"--config-dir (MYAPP_CONFIG_DIR) = '{missing}' is invalid: expected an existing directory"
    )


def test_a_named_config_dir_that_is_a_file_is_an_error(config_dir: Path) -> None:
    write(config_dir, {})

    with pytest.raises(ConfigurationError, match="expected an existing directory"):
        load_settings(config_dir=config_dir / "appsettings.json")


def test_a_named_config_dir_without_appsettings_json_is_an_error(config_dir: Path) -> None:
    """`--config-dir .` from the project root: an existing directory, but not the one meant."""
    write(config_dir, {}, "appsettings.Production.json")  # an overlay alone is not enough

    with pytest.raises(ConfigurationError) as raised:
        load_settings("Production", config_dir=config_dir)

    assert "expected a directory holding appsettings.json" in str(raised.value)
    assert str(config_dir) in str(raised.value)


@pytest.mark.parametrize("given", ["argument", "variable"])
def test_an_environment_without_its_overlay_is_an_error_listing_the_overlays_there(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    write(config_dir, {})
    write(config_dir, {}, "appsettings.Production.json")
    write(config_dir, {}, "appsettings.Development.json")
    if given == "variable":
        monkeypatch.setenv("MYAPP_ENVIRONMENT", "Prodution")

    with pytest.raises(ConfigurationError) as raised:
        load_settings("Prodution" if given == "argument" else None, config_dir=config_dir)

    assert str(raised.value) == (
        "--environment (MYAPP_ENVIRONMENT) = 'Prodution' is invalid: expected an overlay file "
        f"{config_dir / 'appsettings.Prodution.json'} ({config_dir} has "
        "appsettings.Development.json, appsettings.Production.json)"
    )


def test_an_environment_with_no_config_dir_at_all_is_an_error(
    tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_config_dir(tmp_path, monkeypatch)

    with pytest.raises(ConfigurationError) as raised:
        load_settings("Staging")

    assert "appsettings.Staging.json (config does not exist)" in str(raised.value)


def test_an_empty_environment_variable_names_no_environment(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(config_dir, {"IngestionService": {"PollInterval": "00:02:00"}})
    monkeypatch.setenv("MYAPP_ENVIRONMENT", "")
    monkeypatch.setenv("MYAPP_CONFIG_DIR", "")
    monkeypatch.chdir(config_dir.parent)  # the default ./config

    assert load_settings().ingestion_service.poll_interval == timedelta(minutes=2)


@pytest.mark.parametrize(
    "variable",
    [
        "IngestionService__PollInterval",
        "INGESTIONSERVICE__POLLINTERVAL",
        "ingestionservice__pollinterval",
    ],
)
def test_environment_variables_override_both_files_case_insensitively(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    write(config_dir, {"IngestionService": {"PollInterval": "00:05:00"}})
    write(config_dir, {"IngestionService": {"PollInterval": "00:01:00"}}, "appsettings.Dev.json")
    monkeypatch.setenv(variable, "00:00:07")

    settings = load_settings("Dev", config_dir=config_dir)

    assert settings.ingestion_service.poll_interval == timedelta(seconds=7)


def test_nested_environment_variables_reach_handler_sections(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(config_dir, {"BackgroundProcessing": {"Shein": {"Enabled": True}}})
    monkeypatch.setenv("BackgroundProcessing__Shein__Enabled", "false")
    monkeypatch.setenv("BackgroundProcessing__MaxConcurrency", "12")
    monkeypatch.setenv("Logging__LogLevel__Default", "Warning")

    settings = load_settings(config_dir=config_dir)

    assert settings.background_processing.max_concurrency == 12
    shein = settings.background_processing.handler_sections()["Shein"]
    assert {key.lower(): value for key, value in shein.items()} == {"enabled": "false"}
    assert settings.logging.log_level.default is LogLevel.WARNING


def test_the_config_dir_comes_from_myapp_config_dir(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(config_dir, {"IngestionService": {"PollInterval": "00:02:00"}})
    monkeypatch.setenv("MYAPP_CONFIG_DIR", str(config_dir))

    assert load_settings().ingestion_service.poll_interval == timedelta(minutes=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:10", timedelta(seconds=10)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("00:00:00.5", timedelta(milliseconds=500)),
        ("PT5M", timedelta(minutes=5)),
        (30, timedelta(seconds=30)),
    ],
)
def test_timespan_forms_are_accepted(config_dir: Path, text: Any, expected: timedelta) -> None:
    write(config_dir, {"IngestionService": {"PollInterval": text}})

    assert load_settings(config_dir=config_dir).ingestion_service.poll_interval == expected


def test_a_poll_interval_that_is_not_a_timespan_names_key_value_and_expectation(
    config_dir: Path,
) -> None:
    error = error_for(config_dir, {"IngestionService": {"PollInterval": "abc"}})

    assert error.key == "IngestionService:PollInterval"
    assert error.value == "abc"
    message = str(error)
    assert "IngestionService:PollInterval" in message and "'abc'" in message
    assert "00:05:00" in message  # what was expected, by example


def test_a_poll_interval_given_in_an_environment_variable_is_named_the_same_way(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IngestionService__PollInterval", "soon")

    error = error_for(config_dir, {})

    assert "PollInterval" in error.key and error.value == "soon"


@pytest.mark.parametrize("value", ["-00:00:10", "00:00:00"])
def test_a_negative_or_zero_poll_interval_is_refused(config_dir: Path, value: str) -> None:
    error = error_for(config_dir, {"IngestionService": {"PollInterval": value}})

    assert error.key == "IngestionService:PollInterval"
    assert error.value == value
    assert "at least 00:00:00.1" in error.expected


def test_max_concurrency_zero_is_refused(config_dir: Path) -> None:
    error = error_for(config_dir, {"BackgroundProcessing": {"MaxConcurrency": 0}})

    assert error.key == "BackgroundProcessing:MaxConcurrency"
    assert error.value == 0
    assert "1" in error.expected


def test_an_unknown_key_in_a_known_section_is_refused(config_dir: Path) -> None:
    error = error_for(config_dir, {"IngestionService": {"PolInterval": "00:01:00"}})

    assert error.key == "IngestionService:PolInterval"
    assert "spelling" in error.expected


def test_malformed_json_names_the_file_and_line(config_dir: Path) -> None:
    text = '{\n  "IngestionService": {\n    "PollInterval": "00:05:00",\n  }\n}\n'

    error = error_for(config_dir, text)

    assert "appsettings.json" in error.key
    assert "line 4" in str(error.value)
    assert "JSON" in error.expected


def test_malformed_json_in_the_overlay_names_the_overlay(config_dir: Path) -> None:
    write(config_dir, {})
    write(config_dir, "{ not json", "appsettings.Broken.json")

    with pytest.raises(ConfigurationError) as raised:
        load_settings("Broken", config_dir=config_dir)

    assert "appsettings.Broken.json" in raised.value.key
    assert "line 1" in str(raised.value.value)


def test_malformed_json_never_echoes_a_secret_on_the_bad_line(config_dir: Path) -> None:
    text = '{\n  "AzureAI": {"ApiKey": "' + SECRET + '" "Endpoint": null}\n}\n'

    error = error_for(config_dir, text)

    assert SECRET not in str(error)
    assert SECRET not in repr(error.value)


@pytest.mark.parametrize(
    ("section", "document"),
    [
        ("AzureAI:ApiKey", {"AzureAI": {"ApiKey": {"nested": SECRET}}}),
        ("ConnectionStrings:Database", {"ConnectionStrings": {"Database": [SECRET]}}),
        ("ConnectionStrings:BlobStorage", {"ConnectionStrings": {"BlobStorage": [SECRET]}}),
    ],
)
def test_a_bad_secret_value_is_never_echoed(
    config_dir: Path, section: str, document: dict[str, Any]
) -> None:
    error = error_for(config_dir, document)

    assert error.key == section
    assert SECRET not in str(error)
    assert SECRET not in repr(error.value)


def test_a_secret_in_an_unknown_connection_string_key_is_never_echoed(config_dir: Path) -> None:
    error = error_for(config_dir, {"ConnectionStrings": {"Analytics": SECRET}})

    assert "ConnectionStrings" in error.key
    assert SECRET not in str(error)


def test_secrets_are_not_shown_in_the_settings_repr(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AzureAI__ApiKey", SECRET)
    write(config_dir, {})

    settings = load_settings(config_dir=config_dir)

    assert isinstance(settings, AppSettings)
    assert settings.azure_ai.api_key is not None
    assert settings.azure_ai.api_key.get_secret_value() == SECRET
    assert SECRET not in repr(settings)


def test_a_byte_order_mark_is_accepted(config_dir: Path) -> None:
    (config_dir / "appsettings.json").write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"IngestionService": {"PollInterval": "00:00:07"}}).encode()
    )

    assert load_settings(config_dir=config_dir).ingestion_service.poll_interval == timedelta(
        seconds=7
    )


def test_a_file_that_is_not_utf8_is_a_configuration_error(config_dir: Path) -> None:
    (config_dir / "appsettings.json").write_bytes(b'{"Logging": "caf\xe9"}')

    with pytest.raises(ConfigurationError) as raised:
        load_settings(config_dir=config_dir)

    assert "UTF-8" in raised.value.expected


@pytest.mark.parametrize("text", ["99999999999999", "9999999999.00:00:00"])
def test_a_duration_too_large_is_a_configuration_error(config_dir: Path, text: str) -> None:
    error = error_for(config_dir, {"IngestionService": {"PollInterval": text}})

    assert error.key == "IngestionService:PollInterval"
    assert "at most 7.00:00:00" in error.expected


def test_a_malformed_json_section_in_the_environment_is_a_configuration_error(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BackgroundProcessing", "{bad")

    with pytest.raises(ConfigurationError):
        load_settings(config_dir=config_dir)


@pytest.mark.parametrize(
    "url", ["Server=db;Database=app;Password=hunter2", "mysql://app:hunter2@db/app"]
)
def test_an_unusable_database_url_is_refused_without_its_password(
    config_dir: Path, url: str
) -> None:
    error = error_for(config_dir, {"ConnectionStrings": {"Database": url}})

    assert error.key == "ConnectionStrings:Database"
    assert "postgresql://" in error.expected
    assert "hunter2" not in str(error)


def test_a_misspelt_key_never_repeats_its_value(config_dir: Path) -> None:
    error = error_for(config_dir, {"AzureAI": {"ApiKye": "sk-live-SECRET123"}})

    assert error.key == "AzureAI:ApiKye"
    assert "SECRET123" not in str(error)
