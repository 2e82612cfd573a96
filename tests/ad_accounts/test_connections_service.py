"""The connect service on a fixed clock (state lifetime), the seller-facing account state,
and key rotation over connection grants — core's API, no HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.ad_accounts import rotate_ad_account_tokens
from pixecom_core.ad_accounts.connections import (
    AccountState,
    AdConnections,
    ConnectionRefused,
    account_state,
    binding_cookie_name,
)
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.models.ads import AdAccount, AdAccountStatus
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.tenancy import SellerContext
from tests.ad_accounts.conftest import Owner, stored
from tests.ad_accounts.consentads import IDENTIFIER, ConsentAdNetwork, ConsentAdsPlugin
from tests.db.tenant_rows import insert_seller

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CALLBACK = "https://shop.example/ad-accounts/connections/callback"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def seller(app_engine: AsyncEngine, settings: Settings, owner_conn: Owner) -> SellerContext:
    seller_id = uuid.uuid4()
    insert_seller(owner_conn, seller_id)
    return SellerContext(
        seller_id=seller_id, sessions=create_sessionmaker(app_engine), settings=settings
    )


@pytest.fixture
async def service(
    seller: SellerContext, network: ConsentAdNetwork, clock: Clock
) -> AsyncIterator[AdConnections]:
    registry = ProviderRegistry(
        create_plugin_manager(load_entry_points=False, plugins=[ConsentAdsPlugin(network)])
    )
    yield AdConnections.for_settings(seller.sessions, seller.settings, registry, clock=clock)


async def begin(service: AdConnections, seller: SellerContext) -> str:
    started = await service.start(seller, IDENTIFIER, redirect_uri=CALLBACK)
    assert started.authorization_url is not None
    return parse_qs(urlsplit(started.authorization_url).query)["state"][0]


async def test_a_state_works_for_ten_minutes_only(
    service: AdConnections, seller: SellerContext, network: ConsentAdNetwork, clock: Clock
) -> None:
    state = await begin(service, seller)
    clock.now = T0 + timedelta(minutes=10, seconds=1)
    with pytest.raises(ConnectionRefused) as expired:
        await service.complete(
            state=state, code=network.consent(CALLBACK), acting_seller_id=seller.seller_id
        )
    assert expired.value.code == "state_expired"

    clock.now = T0
    state = await begin(service, seller)
    clock.now = T0 + timedelta(minutes=9, seconds=59)
    completed = await service.complete(
        state=state, code=network.consent(CALLBACK), acting_seller_id=seller.seller_id
    )
    assert completed.seller_id == seller.seller_id


def account(**values: object) -> AdAccount:
    defaults: dict[str, object] = {
        "seller_id": uuid.uuid4(),
        "network": IDENTIFIER,
        "external_id": "1",
        "name": "A",
        "timezone": "UTC",
        "currency": "USD",
    }
    return AdAccount.model_validate(defaults | values)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, (AccountState.ACTIVE, None)),
        (
            {"status": AdAccountStatus.DISCONNECTED, "needs_reconnect": True},
            (
                AccountState.DISCONNECTED,
                None,
            ),
        ),
        ({"needs_reconnect": True}, (AccountState.NEEDS_RECONNECT, None)),
        ({"token_expires_at": T0 + timedelta(days=6)}, (AccountState.TOKEN_EXPIRING, None)),
        ({"token_expires_at": T0 + timedelta(days=8)}, (AccountState.ACTIVE, None)),
        (
            {"backfill_since": date(2026, 2, 1), "backfill_until": date(2026, 2, 10)},
            (AccountState.BACKFILLING, 0.0),
        ),
        (
            {
                "backfill_since": date(2026, 2, 1),
                "backfill_until": date(2026, 2, 10),
                "backfill_done_through": date(2026, 2, 3),
            },
            (AccountState.BACKFILLING, 0.3),
        ),
        (
            {
                "backfill_since": date(2026, 2, 1),
                "backfill_until": date(2026, 2, 10),
                "backfill_done_through": date(2026, 2, 10),
            },
            (AccountState.ACTIVE, None),
        ),
    ],
)
def test_account_state(
    values: dict[str, object], expected: tuple[AccountState, float | None]
) -> None:
    assert account_state(account(**values), now=T0) == expected


async def test_key_rotation_reencrypts_connection_grants(
    service: AdConnections,
    seller: SellerContext,
    network: ConsentAdNetwork,
    owner_conn: Owner,
    settings: Settings,
) -> None:
    await service.complete(
        state=await begin(service, seller),
        code=network.consent(CALLBACK),
        acting_seller_id=seller.seller_id,
    )
    new_key = SecretStr("n" * 44)
    box = SecretBox([new_key, *settings.token_encryption_keys])
    report = await rotate_ad_account_tokens(seller.sessions, settings, box)
    assert report.tokens_reencrypted >= 1
    row = owner_conn.execute(
        "SELECT token_key_version, token_ciphertext FROM ad_connections"
        " WHERE seller_id = %s AND token_ciphertext IS NOT NULL",
        (seller.seller_id,),
    ).fetchone()
    assert row is not None
    assert row[0] == box.primary_version
    assert SecretBox([new_key]).decrypt(bytes(row[1])) in network.grants


async def test_a_flow_finishes_only_in_the_browser_that_started_it(
    service: AdConnections, seller: SellerContext, network: ConsentAdNetwork, owner_conn: Owner
) -> None:
    """OAuth login CSRF (RFC 6749 section 10.12): someone starts a flow and has another
    person approve it; that person's browser has neither the starter's credentials nor the
    binding cookie, so their grant never lands in the starter's account — and the state
    is not used up, so the starter's own browser can still finish."""
    started = await service.start(seller, IDENTIFIER, redirect_uri=CALLBACK)
    assert started.authorization_url is not None
    state = parse_qs(urlsplit(started.authorization_url).query)["state"][0]
    cookie = binding_cookie_name(started.id)

    for bindings in ({}, {cookie: "0" * 64}, {cookie: service.browser_binding(uuid.uuid4())}):
        with pytest.raises(ConnectionRefused) as refused:
            await service.complete(
                state=state, code=network.consent(CALLBACK), browser_bindings=bindings
            )
        assert refused.value.code == "state_not_bound"
    assert stored(owner_conn, seller.seller_id)["grants"] == 0

    completed = await service.complete(
        state=state,
        code=network.consent(CALLBACK),
        browser_bindings={cookie: service.browser_binding(started.id)},
    )
    assert completed.connection_id == started.id
    assert stored(owner_conn, seller.seller_id)["grants"] == 1
