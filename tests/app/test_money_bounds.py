"""Issue 12 item 5: amounts and quantities are strict JSON integers within bounds.

A price of 2**63 - 1 used to be stored, reach the gateway at checkout and overflow the
seller's stats; ``"100"``, ``1.5`` and ``true`` were coerced. Each refusal is a 422 that
names the field.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from pixecom_core.providers import MAX_AMOUNT_MINOR, MAX_QUANTITY, PaymentRequest
from tests.app.catalog.conftest import create_product, create_sellpage, set_price
from tests.app.conftest import NewSeller, SignedUpSeller

NOT_AN_INTEGER = ["100", 1.5, 100.0, True, None, [100], {"amount": 100}]
OUT_OF_BOUNDS_AMOUNTS = [-1, MAX_AMOUNT_MINOR + 1, 10**15, 2**63 - 1, 2**63, 2**64]


def assert_refused_field(response: httpx.Response, field: str) -> None:
    """A 422 in the one error shape whose details name ``field`` in the body."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert ["body", field] in [detail["location"] for detail in error["details"]], error


@pytest.fixture
async def seller(new_seller: NewSeller) -> SignedUpSeller:
    return await new_seller()


@pytest.mark.parametrize("price", NOT_AN_INTEGER + OUT_OF_BOUNDS_AMOUNTS, ids=repr)
async def test_a_price_that_is_not_an_integer_in_bounds_is_refused(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, price: Any
) -> None:
    product = await create_product(api_client, seller)

    response = await api_client.post(
        f"/products/{product['id']}/prices",
        json={"price_minor": price, "currency": "USD"},
        headers=seller.headers,
    )

    assert_refused_field(response, "price_minor")
    prices = await api_client.get(f"/products/{product['id']}/prices", headers=seller.headers)
    assert prices.json()["items"] == []


@pytest.mark.parametrize("price", [0, 1, MAX_AMOUNT_MINOR])
async def test_prices_within_bounds_are_accepted(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, price: int
) -> None:
    product = await create_product(api_client, seller)

    rule = await set_price(api_client, seller, product["id"], price)

    assert rule["price_minor"] == price


async def published_page(
    client: httpx.AsyncClient, seller: SignedUpSeller, price_minor: int = 2_499
) -> str:
    product = await create_product(client, seller)
    await set_price(client, seller, product["id"], price_minor)
    page = await create_sellpage(client, seller, product_id=product["id"])
    published = await client.patch(
        f"/sellpages/{page['id']}", json={"status": "PUBLISHED"}, headers=seller.headers
    )
    assert published.status_code == 200, published.text
    return str(page["slug"])


def order(quantity: Any) -> dict[str, Any]:
    return {
        "gateway": "fakepay",
        "customer_email": "shopper@example.com",
        "quantity": quantity,
        "return_url": "https://shop.example.com/thanks",
        "cancel_url": "https://shop.example.com/cart",
    }


async def test_checkout_refuses_a_quantity_that_is_not_an_integer_in_bounds(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    slug = await published_page(api_client, seller)

    for quantity in [*NOT_AN_INTEGER, 0, -1, MAX_QUANTITY + 1, 2**63]:
        response = await api_client.post(f"/public/sellpages/{slug}/orders", json=order(quantity))

        assert_refused_field(response, "quantity")

    orders = await api_client.get("/orders", headers=seller.headers)
    assert orders.json()["items"] == []


async def test_checkout_accepts_quantities_within_bounds(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    slug = await published_page(api_client, seller)

    for quantity in [1, MAX_QUANTITY]:
        response = await api_client.post(f"/public/sellpages/{slug}/orders", json=order(quantity))

        assert response.status_code == 201, response.text
        assert response.json()["amount_minor"] == 2_499 * quantity


async def test_checkout_refuses_a_total_above_the_bound_before_the_gateway(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    slug = await published_page(api_client, seller, price_minor=MAX_AMOUNT_MINOR)

    too_much = await api_client.post(f"/public/sellpages/{slug}/orders", json=order(2))
    at_the_bound = await api_client.post(f"/public/sellpages/{slug}/orders", json=order(1))

    assert too_much.status_code == 422, too_much.text
    assert too_much.json()["error"]["code"] == "amount_too_large"
    assert at_the_bound.status_code == 201, at_the_bound.text
    orders = await api_client.get("/orders", headers=seller.headers)
    assert [o["total_minor"] for o in orders.json()["items"]] == [MAX_AMOUNT_MINOR]


@pytest.mark.parametrize("amount", [0, "100", 1.0, True, MAX_AMOUNT_MINOR + 1, 2**63 - 1])
def test_a_gateway_is_never_asked_for_an_amount_out_of_bounds(amount: Any) -> None:
    with pytest.raises(ValidationError, match="amount_minor"):
        PaymentRequest(
            idempotency_key="order:1",
            seller_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            amount_minor=amount,
            currency="USD",
            return_url="https://shop.example.com/thanks",
            cancel_url="https://shop.example.com/cart",
        )
