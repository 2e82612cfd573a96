"""Findings of the schemathesis run (issue 12 item 7), each pinned by a plain test.

The OpenAPI document and the API agree: a 405 lists every method of the path, dates are
only ISO 8601 (never a Unix time), and a PATCH field the API refuses as ``null`` is not
documented as nullable.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.app.catalog.conftest import create_product
from tests.app.conftest import NewSeller, SignedUpSeller


@pytest.fixture
async def seller(new_seller: NewSeller) -> SignedUpSeller:
    return await new_seller()


def allowed(response: httpx.Response) -> set[str]:
    assert response.status_code == 405, response.text
    assert response.json()["error"]["code"] == "method_not_allowed"
    return {method.strip() for method in response.headers["allow"].split(",")}


async def test_a_405_allows_every_method_of_the_path(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    product_path = f"/products/{uuid.uuid4()}"

    products = await api_client.options("/products", headers=seller.headers)
    one_product = await api_client.options(product_path, headers=seller.headers)
    uploads = await api_client.get("/assets/uploads", headers=seller.headers)

    assert {"GET", "POST"} <= allowed(products)
    assert {"GET", "PATCH", "DELETE"} <= allowed(one_product)
    # The concrete path wins over /assets/{asset_id}, as in OpenAPI.
    assert allowed(uploads) == {"POST"}


@pytest.mark.parametrize(
    "query",
    ["created_to=0.5", "created_from=1700000000", "created_to=2026-01-01", "created_to=now"],
)
async def test_order_dates_are_iso_8601_only(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, query: str
) -> None:
    response = await api_client.get(f"/orders?{query}", headers=seller.headers)

    assert response.status_code == 422, response.text
    name = query.split("=")[0]
    assert ["query", name] in [d["location"] for d in response.json()["error"]["details"]]


async def test_iso_8601_order_dates_are_accepted(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    response = await api_client.get(
        "/orders",
        params={"created_from": "2026-01-01T00:00:00Z", "created_to": "2026-02-01T00:00:00+01:00"},
        headers=seller.headers,
    )

    assert response.status_code == 200, response.text


async def test_stats_days_are_never_numbers(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    response = await api_client.get(
        "/stats/overview?since=0&until=2026-01-31", headers=seller.headers
    )

    assert response.status_code == 422, response.text


async def test_a_field_refused_as_null_is_not_documented_as_nullable(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    product = await create_product(api_client, seller)
    document = (await api_client.get("/openapi.json")).json()
    patch = document["components"]["schemas"]["ProductPatch"]["properties"]

    refused = await api_client.patch(
        f"/products/{product['id']}", json={"status": None}, headers=seller.headers
    )
    cleared = await api_client.patch(
        f"/products/{product['id']}", json={"description": None}, headers=seller.headers
    )

    assert refused.status_code == 422
    assert "null" not in str(patch["status"]) and "default" not in patch["status"]
    assert cleared.status_code == 200, cleared.text
    assert {"type": "null"} in patch["description"]["anyOf"]
