"""What the tests of ``pixecom dev``'s demo seller share: a plugin's sandbox served as the
dev deployment serves it, and a demo seller of the test's own.

The demo seller's email and sellpage slug are module settings of
:mod:`reference_app.demo_activity`; each test gets its own (the real ones may belong to
another test's demo seller in this run's database, and the slug is unique across sellers).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.accounts.service import SignUp, create_seller_account, find_login
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.plugins import PLUGIN_MODULES_ENV, ProviderRegistry, create_plugin_manager
from pixecom_core.providers import Sandbox
from pixecom_core.settings import Mode, Settings
from pixecom_core.testing.loopback import LoopbackServer
from reference_app import demo_activity

#: The API is not serving yet when the demo connects its accounts.
API_URL = "http://127.0.0.1:9"


@contextmanager
def served_sandbox(
    monkeypatch: pytest.MonkeyPatch, plugin_module: str, name: str
) -> Iterator[tuple[str, Sandbox]]:
    """The installed plugin's sandbox ``name`` on loopback, the plugin pointed at it as
    ``pixecom dev`` points it (the demo finds the plugin through the plugin manager)."""
    monkeypatch.setenv(PLUGIN_MODULES_ENV, plugin_module)
    sandbox = ProviderRegistry(create_plugin_manager()).sandbox(name)
    assert sandbox.environment is not None
    server = LoopbackServer(sandbox.create_app())
    for variable, value in sandbox.environment(server.url, API_URL).items():
        monkeypatch.setenv(variable, value)
    with server:
        yield server.url, sandbox


async def demo_seller(
    app_settings: Settings, app_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> tuple[Settings, uuid.UUID]:
    """Dev-mode settings and a new demo seller of this test's own (its id)."""
    dev = app_settings.model_copy(update={"mode": Mode.DEV})
    email = f"demo-{uuid.uuid4().hex[:12]}@example.com"
    monkeypatch.setattr(demo_activity, "DEMO_EMAIL", email)
    monkeypatch.setattr(demo_activity, "DEMO_SLUG", f"demo-{uuid.uuid4().hex[:12]}")
    sessions = create_sessionmaker(app_engine)
    await create_seller_account(
        sessions,
        dev,
        SignUp(
            seller_name="Demo Store",
            reporting_currency="USD",
            timezone="UTC",
            email=email,
            password="a demo password of this test",
            display_name="Demo Owner",
        ),
    )
    found = await find_login(sessions, email)
    assert found is not None
    return dev, found[0]
