"""Sellers' own gateway accounts through the API (issue 15 items 1 and 2).

The app runs with only the two connection gateways of :mod:`tests.payments.fakeconnect`
installed, so no gateway takes payments on a platform account: publishing and checkout
depend on the seller's own connection. Webhooks go through the real inbox with account
routing on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import Ledger, ProcessResult, WebhookInbox
from pixecom_core.payments import PaymentConnections
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import MerchantAccount, PaymentEventKind
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from tests.app.catalog.conftest import create_product, create_sellpage, set_price, unique_slug
from tests.app.conftest import ClientFactory, NewSeller, SignedUpSeller
from tests.app.payments import fakeconnect

CALLBACK = "/payments/connections/callback"


@pytest.fixture(autouse=True)
def fresh_gateways() -> Iterator[None]:
    fakeconnect.CONNECT.reset()
    fakeconnect.CREDS.reset()
    yield


@pytest.fixture
def settings_with_fee(app_settings: Settings) -> Settings:
    return app_settings.model_copy(update={"platform_fee_basis_points": 150})


@pytest.fixture
async def client(
    settings_with_fee: Settings, api_client_for: ClientFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client_for(settings_with_fee, plugins=[fakeconnect]) as http:
        yield http


@pytest.fixture
def inbox(app_engine: AsyncEngine, settings: Settings) -> WebhookInbox:
    registry = ProviderRegistry(
        create_plugin_manager(load_entry_points=False, plugins=[fakeconnect])
    )
    sessions = create_sessionmaker(app_engine)
    ledger = Ledger(sessions, settings)
    connections = PaymentConnections.for_settings(sessions, settings, registry)
    fast = settings.model_copy(update={"webhook_max_attempts": 3})
    return WebhookInbox(sessions, fast, registry, ledger, connections=connections)


async def connect(
    client: httpx.AsyncClient, seller: SignedUpSeller, account: str
) -> dict[str, object]:
    """Connect ``account`` through fakeconnect's consent flow, as the seller's browser."""
    started = await client.post(
        "/payments/connections", json={"gateway": "fakeconnect"}, headers=seller.headers
    )
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["status"] == "PENDING"
    query = parse_qs(urlsplit(body["authorization_url"]).query)
    back = await client.get(
        CALLBACK,
        params={"state": query["state"][0], "code": f"ok-{account}.{uuid.uuid4().hex}"},
        headers={"accept": "text/html"},
    )
    assert back.status_code == 303, back.text
    assert back.headers["location"] == f"/dashboard/payments?connection={body['id']}"
    shown = await client.get(f"/payments/connections/{body['id']}", headers=seller.headers)
    connection: dict[str, object] = shown.json()
    return connection


async def published_page(client: httpx.AsyncClient, seller: SignedUpSeller) -> str:
    product = await create_product(client, seller)
    await set_price(client, seller, product["id"], 2_000)
    slug = unique_slug("shop")
    await create_sellpage(client, seller, slug=slug, product_id=product["id"], status="PUBLISHED")
    return slug


async def checkout(client: httpx.AsyncClient, slug: str) -> httpx.Response:
    return await client.post(
        f"/public/sellpages/{slug}/orders",
        json={
            "gateway": "fakeconnect",
            "customer_email": "shopper@example.com",
            "quantity": 1,
            "return_url": "https://shop.example/thanks",
            "cancel_url": "https://shop.example/cart",
        },
    )


async def test_a_seller_connects_through_the_consent_page_and_is_paid_on_that_account(
    client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str
) -> None:
    seller = await new_seller(client=client)
    product = await create_product(client, seller)
    await set_price(client, seller, product["id"], 2_000)

    refused = await client.post(
        "/sellpages",
        json={
            "slug": unique_slug(),
            "title": "Shop",
            "product_id": product["id"],
            "status": "PUBLISHED",
        },
        headers=seller.headers,
    )
    connection = await connect(client, seller, "acct_alpha")
    slug = await published_page(client, seller)
    placed = await checkout(client, slug)

    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "payment_connection_required"
    assert connection["status"] == "ACTIVE"
    assert connection["account_id"] == "acct_alpha"
    assert connection["display_name"] == "Shop acct_alpha"
    assert placed.status_code == 201, placed.text
    [payment] = fakeconnect.CONNECT.payments
    assert payment.account is not None and payment.account.account_id == "acct_alpha"
    assert payment.application_fee_minor == 30  # 1.5 % of 2,000
    with psycopg.connect(database_owner_dsn) as conn:
        stored = conn.execute(
            "SELECT account_ciphertext, status FROM payment_connections WHERE id = %s",
            (connection["id"],),
        ).fetchone()
        directory = conn.execute(
            "SELECT seller_id FROM payment_account_directory WHERE account_id = 'acct_alpha'"
        ).fetchall()
    assert stored is not None and b"acct_alpha" not in bytes(stored[0])
    assert directory == [(seller.seller_id,)]


async def test_a_used_state_a_foreign_browser_and_a_taken_account_are_refused(
    client: httpx.AsyncClient, new_seller: NewSeller
) -> None:
    seller, other = await new_seller(client=client), await new_seller(client=client)
    await connect(client, seller, "acct_taken")

    started = (
        await client.post(
            "/payments/connections", json={"gateway": "fakeconnect"}, headers=other.headers
        )
    ).json()
    state = parse_qs(urlsplit(started["authorization_url"]).query)["state"][0]
    stranger = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)  # noqa: SLF001
    unbound = await stranger.get(CALLBACK, params={"state": state, "code": "ok-acct_taken.1"})
    wrong_seller = await stranger.get(
        CALLBACK, params={"state": state, "code": "ok-acct_taken.3"}, headers=seller.headers
    )
    taken = await client.get(CALLBACK, params={"state": state, "code": "ok-acct_taken.2"})
    reused = await client.get(CALLBACK, params={"state": state, "code": "ok-acct_other"})
    listed = await client.get("/payments/connections", headers=other.headers)
    await stranger.aclose()

    assert unbound.status_code == 400 and unbound.json()["error"]["code"] == "state_not_bound"
    assert wrong_seller.status_code == 403
    assert wrong_seller.json()["error"]["code"] == "state_of_another_seller"
    assert taken.status_code == 409, taken.text
    assert taken.json()["error"]["code"] == "payment_account_taken"
    assert reused.status_code == 400 and reused.json()["error"]["code"] == "state_used"
    assert [(c["status"], c["account_id"], c["refusal"]) for c in listed.json()] == [
        ("REFUSED", None, "this account is connected to another PixEcom seller")
    ]


async def test_credentials_are_checked_before_anything_is_stored(
    client: httpx.AsyncClient,
    new_seller: NewSeller,
    database_owner_dsn: str,
    settings_with_fee: Settings,
) -> None:
    seller = await new_seller(client=client)
    options = await client.get("/payments/gateways", headers=seller.headers)

    wrong = await client.post(
        "/payments/connections",
        json={"gateway": "fakecreds", "credentials": {"client_id": "c1", "client_secret": "nope"}},
        headers=seller.headers,
    )
    missing = await client.post(
        "/payments/connections",
        json={"gateway": "fakecreds", "credentials": {"client_id": "c1"}},
        headers=seller.headers,
    )
    right = await client.post(
        "/payments/connections",
        json={
            "gateway": "fakecreds",
            "credentials": {"client_id": "c1", "client_secret": "right-secret"},
        },
        headers=seller.headers,
    )

    assert [(o["gateway"], o["kind"]) for o in options.json()] == [
        ("fakeconnect", "oauth"),
        ("fakecreds", "credentials"),
    ]
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "credentials_refused"
    assert "nope" not in wrong.text
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_fields"
    assert right.status_code == 201, right.text
    assert right.json()["status"] == "ACTIVE"
    assert "right-secret" not in right.text
    with psycopg.connect(database_owner_dsn) as conn:
        rows = conn.execute(
            "SELECT status, account_ciphertext FROM payment_connections WHERE seller_id = %s",
            (seller.seller_id,),
        ).fetchall()
    assert [row[0] for row in rows] == ["ACTIVE"]
    assert b"right-secret" not in bytes(rows[0][1])
    # ...and what is stored is usable: the seller's secret itself, not its masked form.
    stored = MerchantAccount.model_validate_json(
        SecretBox(settings_with_fee.token_encryption_keys).decrypt(bytes(rows[0][1]))
    )
    assert stored.credentials is not None
    assert stored.credentials.get_secret_value() == "right-secret"
    assert stored.client_id == "c1"


async def test_webhooks_are_routed_by_account_and_a_foreign_payment_is_refused(
    client: httpx.AsyncClient,
    new_seller: NewSeller,
    inbox: WebhookInbox,
    database_owner_dsn: str,
) -> None:
    alice, bob = await new_seller(client=client), await new_seller(client=client)
    await connect(client, alice, "acct_alice")
    await connect(client, bob, "acct_bob")
    alice_order = (await checkout(client, await published_page(client, alice))).json()
    bob_order = (await checkout(client, await published_page(client, bob))).json()

    async def deliver(account: str, payment: str, reference: str) -> ProcessResult:
        body, headers = fakeconnect.delivery(
            account,
            [fakeconnect.fact(payment, reference, PaymentEventKind.CAPTURED, 2_000)],
        )
        receipt = await inbox.receive("fakeconnect", body=body, headers=headers)
        return await inbox.process(receipt.inbox_id)

    own = await deliver("acct_alice", alice_order["gateway_reference"], "ch_alice")
    foreign = await deliver("acct_alice", bob_order["gateway_reference"], "ch_bob")

    assert own is ProcessResult.PROCESSED
    assert foreign is ProcessResult.FAILED
    with psycopg.connect(database_owner_dsn) as conn:
        facts = conn.execute(
            "SELECT seller_id, gateway_reference FROM payment_events WHERE gateway = 'fakeconnect'"
            " AND seller_id IN (%s, %s)",
            (alice.seller_id, bob.seller_id),
        ).fetchall()
    assert facts == [(alice.seller_id, "ch_alice")]
    alice_sees = await client.get(f"/orders/{alice_order['order_id']}", headers=alice.headers)
    bob_sees = await client.get(f"/orders/{bob_order['order_id']}", headers=bob.headers)
    assert alice_sees.json()["status"] == "PAID"
    assert bob_sees.json()["status"] == "PENDING"


async def test_a_revoked_account_stops_checkout_and_shows_a_problem(
    client: httpx.AsyncClient, new_seller: NewSeller, inbox: WebhookInbox
) -> None:
    seller = await new_seller(client=client)
    await connect(client, seller, "acct_gone")
    slug = await published_page(client, seller)
    assert (await checkout(client, slug)).status_code == 201

    body, headers = fakeconnect.delivery("acct_gone", [], revoked=True)
    receipt = await inbox.receive("fakeconnect", body=body, headers=headers)
    processed = await inbox.process(receipt.inbox_id)
    after = await checkout(client, slug)
    problems = await client.get("/problems", headers=seller.headers)
    listed = await client.get("/payments/connections", headers=seller.headers)
    reconnected = await connect(client, seller, "acct_back")
    problems_after = await client.get("/problems", headers=seller.headers)

    assert processed is ProcessResult.PROCESSED
    assert after.status_code == 409
    assert after.json()["error"]["code"] == "payment_connection_required"
    assert [c["status"] for c in listed.json()] == ["REVOKED"]
    kinds = [p["kind"] for p in problems.json()["items"]]
    assert kinds == ["payment_connection"], problems.text
    assert "Connect the account again" in problems.json()["items"][0]["error"]
    assert reconnected["status"] == "ACTIVE"
    assert [p["kind"] for p in problems_after.json()["items"]] == []
    assert (await checkout(client, slug)).status_code == 201


async def test_disconnecting_stops_payments_and_tells_the_gateway(
    client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str
) -> None:
    seller = await new_seller(client=client)
    connection = await connect(client, seller, "acct_bye")
    slug = await published_page(client, seller)

    ended = await client.delete(f"/payments/connections/{connection['id']}", headers=seller.headers)
    after = await checkout(client, slug)
    foreign = await client.delete(f"/payments/connections/{uuid.uuid4()}", headers=seller.headers)

    assert ended.status_code == 200 and ended.json()["status"] == "DISCONNECTED"
    assert fakeconnect.CONNECT.disconnected == ["acct_bye"]
    assert after.status_code == 409
    assert foreign.status_code == 404
    with psycopg.connect(database_owner_dsn) as conn:
        row = conn.execute(
            "SELECT account_ciphertext FROM payment_connections WHERE id = %s",
            (connection["id"],),
        ).fetchone()
        directory = conn.execute(
            "SELECT 1 FROM payment_account_directory WHERE account_id = 'acct_bye'"
        ).fetchall()
    assert row == (None,) and directory == []


async def test_a_refund_goes_to_the_account_the_payment_was_made_on(
    client: httpx.AsyncClient, new_seller: NewSeller, inbox: WebhookInbox
) -> None:
    seller = await new_seller(client=client)
    await connect(client, seller, "acct_first")
    order = (await checkout(client, await published_page(client, seller))).json()
    body, headers = fakeconnect.delivery(
        "acct_first",
        [
            fakeconnect.fact(
                order["gateway_reference"], "ch_first", PaymentEventKind.CAPTURED, 2_000
            )
        ],
    )
    receipt = await inbox.receive("fakeconnect", body=body, headers=headers)
    assert await inbox.process(receipt.inbox_id) is ProcessResult.PROCESSED

    async def refund(key: str) -> httpx.Response:
        return await client.post(
            f"/orders/{order['order_id']}/refunds",
            json={"amount_minor": 500},
            headers={**seller.headers, "Idempotency-Key": key},
        )

    # The seller moves to another account: the payment's refund must not go there.
    await connect(client, seller, "acct_second")
    elsewhere = await refund("r1")
    await connect(client, seller, "acct_first")
    back = await refund("r2")

    assert elsewhere.status_code == 409
    assert elsewhere.json()["error"]["code"] == "payment_connection_required"
    assert "acct_first" in elsewhere.json()["error"]["message"]
    assert back.status_code == 202 and back.json()["status"] == "SUCCEEDED"
    assert [r.account.account_id for r in fakeconnect.CONNECT.refunds if r.account] == [
        "acct_first"
    ]


async def creds_connect(client: httpx.AsyncClient, seller: SignedUpSeller, client_id: str) -> None:
    connected = await client.post(
        "/payments/connections",
        json={
            "gateway": "fakecreds",
            "credentials": {"client_id": client_id, "client_secret": "right-secret"},
        },
        headers=seller.headers,
    )
    assert connected.status_code == 201, connected.text


async def test_a_sellers_own_app_notifies_its_own_address_and_only_for_its_payments(
    client: httpx.AsyncClient,
    new_seller: NewSeller,
    inbox: WebhookInbox,
    database_owner_dsn: str,
) -> None:
    alice, bob = await new_seller(client=client), await new_seller(client=client)
    await creds_connect(client, alice, "c-alice")
    await creds_connect(client, bob, "c-bob")
    orders = {}
    for seller in (alice, bob):
        slug = await published_page(client, seller)
        placed = await client.post(
            f"/public/sellpages/{slug}/orders",
            json={
                "gateway": "fakecreds",
                "customer_email": "shopper@example.com",
                "quantity": 1,
                "return_url": "https://shop.example/thanks",
                "cancel_url": "https://shop.example/cart",
            },
        )
        assert placed.status_code == 201, placed.text
        orders[seller.seller_id] = placed.json()

    def captured(seller: SignedUpSeller, reference: str) -> list[dict[str, object]]:
        payment = orders[seller.seller_id]["gateway_reference"]
        return [fakeconnect.fact(payment, reference, PaymentEventKind.CAPTURED, 2_000)]

    async def post(account: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await client.post(
            f"/webhooks/fakecreds/accounts/{account}", content=body, headers=headers
        )

    own_body, own_headers = fakeconnect.app_delivery(
        "wh-merchant-c-alice", captured(alice, "cap_a")
    )
    own = await post("merchant-c-alice", own_body, own_headers)
    # Alice's app signs a notice about Bob's payment: addressed to Alice, it is refused
    # when processed; addressed to Bob, its signature is not Bob's app's.
    foreign_body, foreign_headers = fakeconnect.app_delivery(
        "wh-merchant-c-alice", captured(bob, "cap_b")
    )
    foreign = await post("merchant-c-alice", foreign_body, foreign_headers)
    misaddressed = await post("merchant-c-bob", foreign_body, foreign_headers)
    unknown = await post("merchant-nobody", own_body, own_headers)
    results = [await inbox.process(inbox_id) for inbox_id in await inbox.due()]

    assert [c.prepared for c in (fakeconnect.CREDS,)] == [
        [
            (
                "merchant-c-alice",
                "http://pixecom.test/webhooks/fakecreds/accounts/merchant-c-alice",
            ),
            ("merchant-c-bob", "http://pixecom.test/webhooks/fakecreds/accounts/merchant-c-bob"),
        ]
    ]
    assert (own.status_code, foreign.status_code) == (200, 200)
    assert misaddressed.status_code == 400
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_account"
    assert ProcessResult.PROCESSED in results and ProcessResult.FAILED in results
    assert set(fakeconnect.CREDS.parsed_with) == {"merchant-c-alice"}
    with psycopg.connect(database_owner_dsn) as conn:
        facts = conn.execute(
            "SELECT seller_id, gateway_reference FROM payment_events WHERE gateway = 'fakecreds'"
            " AND seller_id IN (%s, %s)",
            (alice.seller_id, bob.seller_id),
        ).fetchall()
        refused = conn.execute(
            "SELECT status, last_error, headers->>'pixecom-account' FROM webhook_inbox"
            " WHERE event_id = %s",
            (json.loads(foreign_body)["id"],),
        ).fetchone()
    assert facts == [(alice.seller_id, "cap_a")]
    assert refused is not None and refused[0] == "FAILED" and refused[2] == "merchant-c-alice"
    assert "never connected that account" in str(refused[1])
    [payment] = [p for p in fakeconnect.CREDS.payments if p.seller_id == alice.seller_id]
    assert payment.account is not None and payment.account.settings == {
        "webhook_id": "wh-merchant-c-alice"
    }
