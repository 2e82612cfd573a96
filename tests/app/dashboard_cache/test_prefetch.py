"""A repeated dashboard read gets its cache entry in the round trip that admits it
(issue 18 item 1): one Redis script, no SQL; a stale or another seller's entry is never
served from it, and a revoked login is still refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.app.catalog.conftest import InstrumentedApi
from tests.app.dashboard_cache.conftest import NewTenant

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ORDERS = "/orders?limit=50"


async def test_a_repeated_read_is_one_redis_script_and_no_sql(
    api: InstrumentedApi, new_tenant: NewTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await new_tenant()
    tenant.rows.orders(3, newest=NOW, step=timedelta(hours=1))
    first = await api.client.get(ORDERS, headers=tenant.headers)

    with api.redis_commands(monkeypatch) as sent, api.sql_statements() as statements:
        again = await api.client.get(ORDERS, headers=tenant.headers)

    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert len(again.json()["items"]) == 3
    assert sent == ["EVALSHA"], sent
    assert statements == []


async def test_a_prefetched_entry_is_served_only_while_current_and_only_to_its_seller(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant, other = await new_tenant(), await new_tenant()
    tenant.rows.orders(2, newest=NOW, step=timedelta(hours=1))
    for _ in range(2):  # the key is guessed from here on
        assert len((await api.client.get(ORDERS, headers=tenant.headers)).json()["items"]) == 2

    tenant.rows.orders(1, newest=NOW + timedelta(hours=1), step=timedelta(hours=1))
    await api.resources.dashboards.sellers_changed({tenant.api.seller_id})
    with api.sql_statements() as statements:
        fresh = await api.client.get(ORDERS, headers=tenant.headers)
    others = await api.client.get(ORDERS, headers=other.headers)

    assert statements, "a stale prefetched entry is recomputed"
    assert len(fresh.json()["items"]) == 3
    assert others.status_code == 200 and others.json()["items"] == []


async def test_a_revoked_login_is_refused_when_its_read_is_guessed(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    for _ in range(2):
        assert (await api.client.get(ORDERS, headers=tenant.headers)).status_code == 200
    claims = api.resources.accounts.verify_signature(tenant.api.access_token)
    assert claims.family_id is not None
    await api.resources.accounts.revocations.revoke(claims.family_id)

    refused = await api.client.get(ORDERS, headers=tenant.headers)

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "session_revoked"
