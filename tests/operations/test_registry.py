"""Every registered handler is found with its table: ours, a user's, and disabled ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from myapp.bootstrap import build_container, registrations
from myapp.operations.registry import UnknownHandlerError, find_handler, registered_handlers
from myapp.settings import load_settings

USER_APP = "tests.operations.user_app:UserApp"


async def test_ours_and_a_users_handler_are_found_with_their_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "appsettings.json").write_text("{}")
    monkeypatch.setenv("ConnectionStrings__Database", f"sqlite+aiosqlite:///{tmp_path}/ops.db")
    container = build_container(load_settings(config_dir=tmp_path), USER_APP)
    try:
        handlers = await registered_handlers(registrations(container))
    finally:
        await container.core.lifetime().aclose()

    tables = {h.name: h.table for h in handlers}
    assert tables == {
        "Shein": "staging_batches",
        # Disabled (no Azure AI configured) and not buildable as it is: its table is still found.
        "ImageVectorization": "product_photos",
        "BlobCleanup": None,  # not a claiming handler
        "PriceCheck": "ops_price_checks",
    }
    vectorization = find_handler(handlers, "imagevectorization")
    assert not vectorization.enabled and vectorization.disabled_reason
    with pytest.raises(UnknownHandlerError, match="registered: Shein, ImageVectorization"):
        find_handler(handlers, "Nope")
