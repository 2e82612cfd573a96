"""Fixtures for the connect-your-ad-accounts tests: the API over ASGI with an in-memory
network that has a consent flow, sellers signed up through the API, rows inspected as the
schema owner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from pixecom_core.settings import Settings
from tests.ad_accounts.consentads import ConsentAdNetwork, ConsentAdsPlugin, reachable
from tests.app.conftest import (  # noqa: F401 (pytest finds fixtures by name)
    ClientFactory,
    admin_key,
    api_client_for,
    app_settings,
)
from tests.app.conftest import new_seller as new_seller  # noqa: F401

Owner = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture
def network() -> ConsentAdNetwork:
    return ConsentAdNetwork([reachable("1001", "Shop US"), reachable("1002", "Shop EU")])


@pytest.fixture
async def api_client(
    app_settings: Settings,  # noqa: F811 (the fixture imported above)
    api_client_for: ClientFactory,  # noqa: F811
    network: ConsentAdNetwork,
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the consent network installed (and nothing else)."""
    async with api_client_for(app_settings, plugins=[ConsentAdsPlugin(network)]) as client:
        yield client


def stored(owner: Owner, seller_id: object) -> dict[str, int]:
    """What the seller has stored: grants, connected accounts, tokens on accounts."""
    row = owner.execute(
        "SELECT (SELECT count(*) FROM ad_connections"
        "        WHERE seller_id = %(s)s AND token_ciphertext IS NOT NULL),"
        "       (SELECT count(*) FROM ad_accounts WHERE seller_id = %(s)s),"
        "       (SELECT count(*) FROM ad_accounts"
        "        WHERE seller_id = %(s)s AND token_ciphertext IS NOT NULL)",
        {"s": seller_id},
    ).fetchone()
    assert row is not None
    return {"grants": row[0], "accounts": row[1], "account_tokens": row[2]}
