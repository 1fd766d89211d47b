"""Two instances sharing Redis and a state store: an admin's change on one is live on the other."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from starlette.testclient import TestClient

from screenpop.app import create_app
from screenpop.config import parse_config
from screenpop.settings import Settings
from tests.api.test_admin_api import CONFIG, SECRET_CONNECTOR


def test_change_on_one_instance_reaches_the_other(redis_url: str, tmp_path: Path) -> None:
    """PUT on A: B reloads from the store (told over the bus) and runs the new connector, no restart."""
    settings = Settings(webhook_secret="w", session_secret="s" * 32, bus_url=redis_url,
                        bus_prefix=f"t{uuid.uuid4().hex[:8]}", state_url=f"sqlite:///{tmp_path / 'st.db'}")
    with TestClient(create_app(settings, config=parse_config(CONFIG))) as a, \
            TestClient(create_app(settings, config=parse_config(CONFIG))) as b:
        a.post("/api/login", json={"username": "ada", "password": "pw"})
        assert a.put("/api/admin/connectors/loyalty", json=SECRET_CONNECTOR).status_code == 201
        services_b = b.app.state.services  # type: ignore[attr-defined]
        for _ in range(200):  # bounded: 10 s
            if any(s.name == "loyalty" for s in services_b.lookup.sources):
                break
            time.sleep(0.05)
        live = next(s for s in services_b.lookup.sources if s.name == "loyalty")
        assert live.config.options["headers"]["X-Api-Key"] == "key-123"
        assert a.delete("/api/admin/connectors/balance").status_code == 204
        for _ in range(200):
            if all(s.name != "balance" for s in services_b.lookup.sources):
                break
            time.sleep(0.05)
        assert [s.name for s in services_b.lookup.sources] == ["loyalty"]
