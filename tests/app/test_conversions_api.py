"""/conversions/destinations: where a seller's purchases are reported (issue 17 item 4);
the token is stored encrypted and never shown, another seller reaches nothing."""

from __future__ import annotations

import psycopg

from pixecom_core import hookimpl
from pixecom_core.providers import AdNetwork
from pixecom_core.settings import Settings
from tests.app.catalog.conftest import create_product, create_sellpage, set_price
from tests.app.conftest import ClientFactory, NewSeller
from tests.db.tenant_rows import seller_scope
from tests.ledger import fakepay
from tests.ledger.test_conversions import FakeConversions, Plugin
from tests.stats.fakeads import FakeAdNetwork

TOKEN = "EAAG-capi-token-never-shown"


async def test_a_destination_is_set_listed_replaced_and_removed(
    app_settings: Settings,
    api_client_for: ClientFactory,
    new_seller: NewSeller,
    database_owner_dsn: str,
) -> None:
    seller = await new_seller()
    other = await new_seller()
    plugins = [fakepay, Plugin(FakeConversions())]
    async with api_client_for(app_settings, plugins=plugins) as client:
        body = {"destination_id": "1000000000001000", "access_token": TOKEN}
        created = await client.put(
            "/conversions/destinations/fakeconv", json=body, headers=seller.headers
        )
        replaced = await client.put(
            "/conversions/destinations/fakeconv",
            json={**body, "destination_id": "2000", "test_event_code": "TEST123"},
            headers=seller.headers,
        )
        listed = await client.get("/conversions/destinations", headers=seller.headers)
        theirs = await client.get("/conversions/destinations", headers=other.headers)
        foreign = await client.delete("/conversions/destinations/fakeconv", headers=other.headers)
        removed = await client.delete("/conversions/destinations/fakeconv", headers=seller.headers)
        again = await client.delete("/conversions/destinations/fakeconv", headers=seller.headers)

    assert created.status_code == 200, created.text
    assert replaced.json()["destination_id"] == "2000"
    assert [(d["network"], d["destination_id"], d["test_event_code"]) for d in listed.json()] == [
        ("fakeconv", "2000", "TEST123")
    ]
    for answer in (created, replaced, listed):
        assert TOKEN not in answer.text
    assert theirs.json() == [] and foreign.status_code == 404
    assert (removed.status_code, again.status_code) == (204, 404)
    # Stored encrypted: the token's bytes are nowhere in the row.
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller.seller_id):
        assert conn.execute(
            "SELECT count(*) FROM conversion_destinations WHERE seller_id = %s",
            (seller.seller_id,),
        ).fetchone() == (0,)


async def test_a_network_that_cannot_receive_events_is_refused(
    app_settings: Settings,
    api_client_for: ClientFactory,
    new_seller: NewSeller,
    database_owner_dsn: str,
) -> None:
    seller = await new_seller()
    plugins = [fakepay, Plugin(FakeConversions()), _Plain(FakeAdNetwork())]
    async with api_client_for(app_settings, plugins=plugins) as client:
        body = {"destination_id": "1000", "access_token": TOKEN}
        plain = await client.put(
            "/conversions/destinations/fakeads", json=body, headers=seller.headers
        )
        unknown = await client.put(
            "/conversions/destinations/nosuchnet", json=body, headers=seller.headers
        )
        bad_id = await client.put(
            "/conversions/destinations/fakeconv",
            json={**body, "destination_id": "px 1"},
            headers=seller.headers,
        )
        stored = await client.put(
            "/conversions/destinations/fakeconv", json=body, headers=seller.headers
        )

    assert plain.status_code == 422
    assert plain.json()["error"]["code"] == "conversions_not_supported"
    assert unknown.json()["error"]["code"] == "unknown_network"
    assert bad_id.status_code == 422
    assert stored.status_code == 200
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller.seller_id):
        row = conn.execute(
            "SELECT token_ciphertext FROM conversion_destinations WHERE seller_id = %s",
            (seller.seller_id,),
        ).fetchone()
    assert row is not None and TOKEN.encode() not in bytes(row[0])


class _Plain:
    """A plugin whose ad network cannot receive conversion events."""

    def __init__(self, network: FakeAdNetwork) -> None:
        self.network = network

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return [self.network]


async def test_the_sellpage_shows_the_pixel_of_a_destination_once_set(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    """The storefront document names the seller's destination per network (for the
    network's browser tag) as soon as it is set or removed: the cached page is re-rendered."""
    seller = await new_seller()
    plugins = [fakepay, Plugin(FakeConversions())]
    async with api_client_for(app_settings, plugins=plugins) as client:
        product = await create_product(client, seller, name="Hat")
        await set_price(client, seller, product["id"], 1500)
        sellpage = await create_sellpage(
            client, seller, product_id=product["id"], status="PUBLISHED"
        )
        slug = sellpage["slug"]
        before = (await client.get(f"/public/sellpages/{slug}")).json()
        await client.put(
            "/conversions/destinations/fakeconv",
            json={"destination_id": "1234", "access_token": TOKEN},
            headers=seller.headers,
        )
        after = (await client.get(f"/public/sellpages/{slug}")).json()
        await client.delete("/conversions/destinations/fakeconv", headers=seller.headers)
        removed = (await client.get(f"/public/sellpages/{slug}")).json()

    assert before["conversion_destinations"] == {}
    assert after["conversion_destinations"] == {"fakeconv": "1234"}
    assert TOKEN not in str(after)
    assert removed["conversion_destinations"] == {}
