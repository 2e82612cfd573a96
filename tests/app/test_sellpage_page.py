"""The shopper-facing sellpage page, ``GET /s/{slug}`` (issue 17 item 1): the published
sellpage as HTML from the cached storefront document, escaped, cacheable by nginx and
browsers (ETag, 304, Cache-Control), the same bytes whatever tracking parameters the ad
added, and a small 404 page for anything else. Its result pages (item 2),
``/s/{slug}/thanks`` and ``/s/{slug}/cancelled``, never cached, and the thanks page's
status read, ``/s/{slug}/orders/{order_id}/status``, which answers only for an order of
that sellpage. The scripts themselves run in tests_browser/ (``_fbc`` from ``fbclid``,
the return addresses); here, that they are served under their policy's hashes."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager

from pixecom_core.catalog.storefront import MISSING_TTL_SECONDS
from pixecom_core.settings import Settings
from reference_app.api import create_app
from reference_app.api.routes.sellpage_pages import STALE_WHILE_REVALIDATE_SECONDS
from reference_app.sellpage import RESULT_SCRIPT, SCRIPT, format_money
from tests.app.catalog.conftest import (
    InstrumentedApi,
    Json,
    LifespanStateProbe,
    create_product,
    create_sellpage,
    set_price,
    unique_slug,
)
from tests.app.conftest import NewSeller, SignedUpSeller
from tests.db.tenant_rows import seller_scope

HTML = "text/html; charset=utf-8"
#: What an ad adds to the sellpage's address when it is served (issue 16's parameters).
AD_QUERY = (
    "?utm_source=facebook&utm_medium=paid_social&utm_campaign=spring"
    "&campaign_id=120000001&adset_id=120000002&ad_id=120000003&fbclid=abc123"
)


@pytest.fixture
async def api(app_settings: Settings) -> AsyncIterator[InstrumentedApi]:
    """The app (installed plugins: the test gateway only), its client and resources."""
    probe = LifespanStateProbe(create_app(app_settings))
    async with (
        LifespanManager(probe) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, raise_app_exceptions=False),
            base_url="http://pixecom.test",
        ) as client,
    ):
        yield InstrumentedApi(client=client, resources=probe.resources)


@pytest.fixture
async def seller(api: InstrumentedApi, new_seller: NewSeller) -> SignedUpSeller:
    return await new_seller(client=api.client)


async def published_page(
    api: InstrumentedApi,
    seller: SignedUpSeller,
    *,
    price_minor: int = 2500,
    currency: str = "USD",
    product_fields: dict[str, Any] | None = None,
    **fields: Any,
) -> tuple[Json, Json]:
    """A product with a price and a published sellpage selling it."""
    product = await create_product(
        api.client,
        seller,
        **{"name": "Linen shirt", "description": "Blue", **(product_fields or {})},
    )
    await set_price(api.client, seller, product["id"], price_minor, currency=currency)
    sellpage = await create_sellpage(
        api.client,
        seller,
        product_id=product["id"],
        status="PUBLISHED",
        **{"content": {"hero": "Cool in the heat"}, **fields},
    )
    return product, sellpage


async def page(api: InstrumentedApi, slug: str, query: str = "", **headers: str) -> httpx.Response:
    return await api.client.get(f"/s/{slug}{query}", headers=headers)


def inline(body: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", body, flags=re.DOTALL)


def csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


async def test_a_published_sellpage_is_a_page_with_its_product_price_and_order_form(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    product, sellpage = await published_page(api, seller, price_minor=2500)

    response = await page(api, sellpage["slug"])

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == HTML
    body = response.text
    assert body.startswith('<!doctype html>\n<html lang="en">')
    assert "<h1>Summer sale</h1>" in body
    assert "Cool in the heat" in body
    assert '<h2 id="product-name">Linen shirt</h2>' in body
    assert '<p class="price" data-testid="price">25.00 USD</p>' in body
    # The checkout form: labelled fields, the installed gateway, the order route, and an
    # empty landing_url the script fills in from the address bar.
    assert '<label for="customer-email">Email</label>' in body
    assert f'<label for="quantity-{product["id"]}">Quantity of Linen shirt</label>' in body
    assert '<input type="hidden" name="gateway" value="fakepay">' in body
    assert f'data-order-path="/public/sellpages/{sellpage["slug"]}/orders"' in body
    assert '<input type="hidden" name="landing_url" value="">' in body
    assert not re.search(r'name="[^"]*(card|cvc|cvv)', body, flags=re.IGNORECASE)
    # Nothing private reaches shoppers.
    for private in (product["sku"], sellpage["id"], str(seller.seller_id), "PUBLISHED"):
        assert private not in body


async def test_security_headers_allow_only_the_pages_own_inline_style_and_script(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    _, sellpage = await published_page(api, seller)

    response = await page(api, sellpage["slug"])

    [style] = inline(response.text, "style")
    [script] = inline(response.text, "script")
    policy = response.headers["Content-Security-Policy"]
    assert f"script-src {csp_hash(script)};" in policy
    assert f"style-src {csp_hash(style)};" in policy
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "http" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_a_title_with_markup_is_shown_as_text_never_run(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    _, sellpage = await published_page(
        api,
        seller,
        title="<script>alert('owned')</script> Sale",
        product_fields={"name": 'Shirt"><img src=x onerror=alert(1)>'},
        content={"hero": "</style><script>alert(2)</script>"},
    )

    response = await page(api, sellpage["slug"])

    body = response.text
    assert "<title>&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt; Sale</title>" in body
    assert "<h1>&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt; Sale</h1>" in body
    assert "Shirt&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in body
    assert "&lt;/style&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in body
    # The page's own script is the only one, and the policy names it alone.
    assert body.count("<script") == 1 and body.count("<img") == 0
    assert "alert(" not in "".join(inline(body, "script"))


async def test_unknown_malformed_and_unpublished_slugs_answer_a_small_404_page(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    draft = await create_sellpage(api.client, seller)  # never published
    _, archived = await published_page(api, seller)
    patched = await api.client.patch(
        f"/sellpages/{archived['id']}", json={"status": "ARCHIVED"}, headers=seller.headers
    )
    assert patched.status_code == 200, patched.text

    for slug in (unique_slug("unknown"), "Not_A_Slug", draft["slug"], archived["slug"]):
        response = await page(api, slug)
        assert response.status_code == 404, slug
        assert response.headers["content-type"] == HTML
        assert response.headers["Cache-Control"] == f"public, max-age={MISSING_TTL_SECONDS}"
        assert "ETag" not in response.headers
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert "<h1>Page not found</h1>" in response.text
        assert "<script" not in response.text
        assert draft["title"] not in response.text
        assert len(response.content) < 4_096


async def test_etag_is_a_hash_of_the_page_and_if_none_match_gets_a_bodiless_304(
    api: InstrumentedApi, seller: SignedUpSeller, app_settings: Settings
) -> None:
    _, sellpage = await published_page(api, seller)
    slug = sellpage["slug"]

    first = await page(api, slug)
    etag = first.headers["ETag"]
    matching = await page(api, slug, **{"If-None-Match": etag})
    weak = await page(api, slug, **{"If-None-Match": f'"other", W/{etag}'})
    stale = await page(api, slug, **{"If-None-Match": '"not-the-tag"'})

    assert etag == f'"{hashlib.sha256(first.content).hexdigest()[:32]}"'  # strong, of the bytes
    assert etag != (await api.client.get(f"/public/sellpages/{slug}")).headers["ETag"]
    assert first.headers["Cache-Control"] == (
        f"public, max-age={app_settings.public_cache_seconds}, "
        f"stale-while-revalidate={STALE_WHILE_REVALIDATE_SECONDS}"
    )
    assert STALE_WHILE_REVALIDATE_SECONDS == 300
    assert matching.status_code == 304
    assert matching.content == b""
    assert matching.headers["ETag"] == etag
    assert matching.headers["Cache-Control"] == first.headers["Cache-Control"]
    assert weak.status_code == 304
    assert stale.status_code == 200
    assert stale.content == first.content


async def test_the_page_is_the_same_whatever_the_ad_added_to_its_address(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    """One cached copy per slug serves every click: the landing URL is read in the browser."""
    _, sellpage = await published_page(api, seller)

    plain = await page(api, sellpage["slug"])
    from_an_ad = await page(api, sellpage["slug"], AD_QUERY)

    assert from_an_ad.status_code == 200
    assert from_an_ad.content == plain.content
    assert from_an_ad.headers["ETag"] == plain.headers["ETag"]
    assert "fbclid=abc123" not in from_an_ad.text and "120000001" not in from_an_ad.text


async def test_a_warm_page_is_served_from_the_storefront_cache_without_sql(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    _, sellpage = await published_page(api, seller)
    _, other = await published_page(api, seller)

    with api.sql_statements() as first_statements:
        first = await page(api, sellpage["slug"])
    with api.sql_statements() as second_statements:
        second = await page(api, sellpage["slug"], AD_QUERY)
    # The JSON route and the page read one cache: warming either warms both.
    await api.client.get(f"/public/sellpages/{other['slug']}")
    with api.sql_statements() as after_json_statements:
        after_json = await page(api, other["slug"])

    assert first.status_code == second.status_code == after_json.status_code == 200
    assert first_statements, "the first read renders from the database"
    assert second_statements == []
    assert after_json_statements == []
    assert second.content == first.content


async def test_a_change_the_shopper_can_see_changes_the_page_and_its_etag(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    product, sellpage = await published_page(api, seller, price_minor=2500)
    before = await page(api, sellpage["slug"])

    await set_price(api.client, seller, product["id"], 3100)
    after = await page(api, sellpage["slug"], **{"If-None-Match": before.headers["ETag"]})

    assert after.status_code == 200
    assert "31.00 USD" in after.text and "25.00 USD" not in after.text
    assert after.headers["ETag"] != before.headers["ETag"]


async def test_head_answers_the_headers_of_get_without_a_body(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    _, sellpage = await published_page(api, seller)

    got = await page(api, sellpage["slug"])
    head = await api.client.head(f"/s/{sellpage['slug']}")
    head_missing = await api.client.head(f"/s/{unique_slug('unknown')}")

    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "ETag", "Cache-Control", "Content-Security-Policy"):
        assert head.headers[name] == got.headers[name], name
    assert head.headers["content-length"] == str(len(got.content))
    assert head_missing.status_code == 404
    assert head_missing.content == b""


async def test_a_yen_price_is_shown_without_decimals(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    _, sellpage = await published_page(api, seller, price_minor=1500, currency="JPY")

    response = await page(api, sellpage["slug"])

    assert '<p class="price" data-testid="price">1,500 JPY</p>' in response.text
    assert "15.00" not in response.text


@pytest.mark.parametrize(
    ("amount_minor", "currency", "shown"),
    [
        (2500, "USD", "25.00 USD"),
        (5, "EUR", "0.05 EUR"),
        (123_456_789, "USD", "1,234,567.89 USD"),
        (1500, "JPY", "1,500 JPY"),
        (0, "JPY", "0 JPY"),
        (12_345, "KWD", "12.345 KWD"),
        (10_000_000_000, "CLF", "1,000,000.0000 CLF"),
    ],
)
def test_money_is_formatted_with_the_currencys_own_decimals(
    amount_minor: int, currency: str, shown: str
) -> None:
    assert format_money(amount_minor, currency) == shown


async def test_images_from_the_content_are_shown_and_their_origins_alone_allowed(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    images = [
        "https://media.example.com/shirt-front.jpg",
        {"url": "/media/shirt-back.jpg", "alt": "The back of the shirt"},
        "javascript:alert(1)",
        "http://insecure.example.com/x.jpg",
        "https://user:secret@media.example.com/x.jpg",
        "//protocol-relative.example.com/x.jpg",
        {"url": "https://cdn.example.net:8443/a.png", "alt": ""},
        {"alt": "no url"},
        42,
    ]
    _, sellpage = await published_page(api, seller, content={"images": images})

    response = await page(api, sellpage["slug"])

    srcs = re.findall(r'<img src="([^"]*)" alt="([^"]*)"', response.text)
    assert srcs == [
        ("https://media.example.com/shirt-front.jpg", "Linen shirt"),
        ("/media/shirt-back.jpg", "The back of the shirt"),
        ("https://cdn.example.net:8443/a.png", ""),
    ]
    policy = response.headers["Content-Security-Policy"]
    assert "img-src 'self' https://cdn.example.net:8443 https://media.example.com;" in policy


async def test_a_page_with_nothing_to_order_shows_no_form(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    without_product = await create_sellpage(api.client, seller, status="PUBLISHED")
    unpriced = await create_product(api.client, seller, name="Wool coat")
    without_price = await create_sellpage(
        api.client, seller, product_id=unpriced["id"], status="PUBLISHED"
    )

    empty = await page(api, without_product["slug"])
    no_price = await page(api, without_price["slug"])

    assert empty.status_code == no_price.status_code == 200
    assert "Nothing is on sale on this page right now." in empty.text
    assert "Wool coat" in no_price.text
    assert "This product cannot be ordered yet." in no_price.text
    assert "<form" not in empty.text and "<form" not in no_price.text


async def test_the_page_is_not_an_operation_of_the_openapi_document(api: InstrumentedApi) -> None:
    document = (await api.client.get("/openapi.json")).json()

    assert not [path for path in document["paths"] if path.startswith("/s/")]


# -- the form's return addresses and the pixel's click id (issue 17 items 2 and 3) --------


async def test_the_order_form_names_the_result_pages_and_the_script_keeps_metas_click_id(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    _, sellpage = await published_page(api, seller)
    slug = sellpage["slug"]

    response = await page(api, slug, AD_QUERY)

    body = response.text
    assert f'data-thanks-path="/s/{slug}/thanks" data-cancel-path="/s/{slug}/cancelled"' in body
    assert f'data-order-key="pixecom-order:{slug}"' in body
    # The script served is the module's file, byte for byte, under the policy's hash.
    [script] = inline(body, "script")
    assert script == SCRIPT
    assert f"script-src {csp_hash(SCRIPT)};" in response.headers["Content-Security-Policy"]
    # Meta's documented _fbc (fb.1.<ms>.<fbclid>, 90 days), and the ids sent with the order.
    assert '"_fbc=fb.1." + Date.now() + "." + clickId' in script
    assert "90 * 24 * 60 * 60" in script and "SameSite=Lax" in script
    assert 'credentials: "same-origin"' in script
    assert "location.origin + form.dataset.thanksPath" in script
    assert "location.origin + form.dataset.cancelPath" in script


# -- the result pages (issue 17 item 2) ----------------------------------------------------


@pytest.mark.parametrize(
    ("result", "heading"),
    [("thanks", "Thank you for your order"), ("cancelled", "Payment cancelled")],
)
async def test_the_result_pages_are_never_cached_and_the_same_for_every_order(
    api: InstrumentedApi, seller: SignedUpSeller, result: str, heading: str
) -> None:
    _, sellpage = await published_page(api, seller)
    slug = sellpage["slug"]
    order_id = str(uuid.uuid4())

    plain = await api.client.get(f"/s/{slug}/{result}")
    named = await api.client.get(
        f"/s/{slug}/{result}", params={"order": order_id, "token": "5O190127TN364715T"}
    )
    head = await api.client.head(f"/s/{slug}/{result}")

    assert plain.status_code == named.status_code == head.status_code == 200
    assert plain.headers["content-type"] == HTML
    assert plain.headers["Cache-Control"] == "no-store"
    assert "ETag" not in plain.headers
    assert f"<h1>{heading}</h1>" in plain.text
    assert f'<a class="back" href="/s/{slug}">' in plain.text
    # The order id is read in the browser: no byte of the query reaches the HTML.
    assert named.content == plain.content
    assert order_id not in named.text and "5O190127TN364715T" not in named.text
    assert head.content == b"" and head.headers["content-length"] == str(len(plain.content))
    [style] = inline(plain.text, "style")
    [script] = inline(plain.text, "script")
    assert script == RESULT_SCRIPT
    policy = plain.headers["Content-Security-Policy"]
    assert f"script-src {csp_hash(script)};" in policy
    assert f"style-src {csp_hash(style)};" in policy
    assert "connect-src 'self'" in policy and "form-action 'none'" in policy
    assert "unsafe-inline" not in policy
    assert plain.headers["X-Frame-Options"] == "DENY"
    assert plain.headers["Referrer-Policy"] == "no-referrer"


async def test_result_pages_of_an_unknown_or_unpublished_slug_are_the_404_page(
    api: InstrumentedApi, seller: SignedUpSeller
) -> None:
    draft = await create_sellpage(api.client, seller)

    for slug in (unique_slug("unknown"), draft["slug"], "Not_A_Slug"):
        for result in ("thanks", "cancelled"):
            response = await api.client.get(f"/s/{slug}/{result}")
            assert response.status_code == 404, (slug, result)
            assert response.headers["Cache-Control"] == "no-store"
            assert "<h1>Page not found</h1>" in response.text
            assert "<script" not in response.text


# -- the thanks page's status read ---------------------------------------------------------


async def place_order(api: InstrumentedApi, slug: str) -> str:
    placed = await api.client.post(
        f"/public/sellpages/{slug}/orders",
        json={
            "gateway": "fakepay",
            "customer_email": "shopper@example.com",
            "return_url": f"https://shop.example.com/s/{slug}/thanks",
            "cancel_url": f"https://shop.example.com/s/{slug}/cancelled",
        },
    )
    assert placed.status_code == 201, placed.text
    order_id: str = placed.json()["order_id"]
    return order_id


async def status_of(api: InstrumentedApi, slug: str, order_id: str) -> httpx.Response:
    return await api.client.get(f"/s/{slug}/orders/{order_id}/status")


async def test_the_status_read_follows_the_order_and_says_nothing_else(
    api: InstrumentedApi, seller: SignedUpSeller, database_owner_dsn: str
) -> None:
    _, sellpage = await published_page(api, seller)
    slug = sellpage["slug"]
    order_id = await place_order(api, slug)

    pending = await status_of(api, slug, order_id)
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller.seller_id):
        conn.execute(
            "UPDATE orders SET status = 'PAID' WHERE seller_id = %s AND id = %s",
            (seller.seller_id, order_id),
        )
    paid = await status_of(api, slug, order_id.upper())

    assert pending.status_code == 200, pending.text
    # The status and the total (the seller's pixel reports the purchase's value), nothing
    # about the shopper.
    assert pending.json() == {"status": "PENDING", "value": 25.0, "currency": "USD"}
    assert pending.headers["Cache-Control"] == "no-store"
    assert paid.json() == {"status": "PAID", "value": 25.0, "currency": "USD"}


async def test_the_status_read_answers_404_for_an_order_not_of_that_sellpage(
    api: InstrumentedApi,
    seller: SignedUpSeller,
    new_seller: NewSeller,
) -> None:
    _, sellpage = await published_page(api, seller)
    _, sibling = await published_page(api, seller)  # the same seller's other page
    other_seller = await new_seller(client=api.client)
    _, foreign = await published_page(api, other_seller)
    order_id = await place_order(api, sellpage["slug"])
    foreign_order = await place_order(api, foreign["slug"])
    # Unpublished meanwhile: a shopper back from the payment page still reads the status.
    patched = await api.client.patch(
        f"/sellpages/{sellpage['id']}", json={"status": "ARCHIVED"}, headers=seller.headers
    )
    assert patched.status_code == 200, patched.text

    still = await status_of(api, sellpage["slug"], order_id)
    refused = [
        await status_of(api, sibling["slug"], order_id),
        await status_of(api, foreign["slug"], order_id),
        await status_of(api, sellpage["slug"], foreign_order),
        await status_of(api, sellpage["slug"], str(uuid.uuid4())),
        await status_of(api, sellpage["slug"], "not-an-order"),
        await status_of(api, unique_slug("unknown"), order_id),
        await status_of(api, "Not_A_Slug", order_id),
    ]

    assert still.json()["status"] == "PENDING"
    assert [answer.status_code for answer in refused] == [404] * len(refused)
    texts = {answer.json()["error"]["message"] for answer in refused}
    assert texts == {"no such order on this page"}  # the cases are not told apart
