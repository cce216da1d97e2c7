"""Which configured values the dashboard treats as secrets."""

from __future__ import annotations

from pathlib import Path

from myapp.dashboard.redaction import secret_values
from tests.dashboard.live import write_settings

FERNET_KEY = "kS0k5NnQ0b1xJ9c3wG1oX7QjvWQ2bHq7mQxk8d1xq4E="
OTHER_KEY = "3bK1u2mF9YpQ6wZ0rT5vX8cN4hJ7aL2sD6fG1kP0qRw="


def test_every_configured_secret_and_its_parts(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path,
        "postgresql://app:db-pass-123@db.internal/myapp",
        {
            "ConnectionStrings": {
                "Database": "postgresql://app:db-pass-123@db.internal/myapp",
                "BlobStorage": "AccountName=acc;AccountKey=acct-key-xyz==;BlobEndpoint=http://x",
            },
            "AzureAI": {"ApiKey": "azure-key-456"},
            "Secrets": {"CookieKey": f"{FERNET_KEY},{OTHER_KEY}"},
        },
        Token="the-token-789",
    )
    found = secret_values(settings)
    for secret in ("db-pass-123", "acct-key-xyz==", "azure-key-456", FERNET_KEY, OTHER_KEY):
        assert secret in found
    assert "the-token-789" in found
    assert found == sorted(found, key=len, reverse=True)  # a longer secret is masked whole


def test_nothing_to_hide_in_a_default_sqlite_setup(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/x.db")
    # Only the Azurite development account's well-known key and its connection string.
    assert all(
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2U" in v for v in secret_values(settings)
    )
