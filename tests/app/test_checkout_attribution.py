"""Checkout keeps the landing URL's attribution on the order, bounded and validated
(issue 16 item 3), and the seller reads it back with the order."""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixecom_core.orders.attribution import (
    MAX_AD_NETWORK_ID_LENGTH,
    MAX_LANDING_URL_LENGTH,
    MAX_UTM_LENGTH,
    Attribution,
    InvalidAttributionError,
)
from tests.app.catalog.conftest import assert_error
from tests.app.conftest import NewSeller, SignedUpSeller
from tests.app.test_checkout import ORDER, published_page

FIELDS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "fbclid",
    "campaign_ref",
    "adset_ref",
    "ad_ref",
)
NOTHING = dict.fromkeys(FIELDS)
#: Meta's own example of a click id (developers.facebook.com, "ClickID and the fbp and
#: fbc Parameters").
FBCLID = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
SERVED_AD_URL = (
    "https://shop.example.com/p/spring?utm_source=facebook&utm_medium=paid_social"
    "&utm_campaign=Spring%20Sale%20%F0%9F%8C%B8&utm_content=Video+A&utm_term=lookalike_1pct"
    "&campaign_id=120210000000000001&adset_id=120210000000000002&ad_id=120210000000000003"
    f"&fbclid={FBCLID}&placement=Facebook_Mobile_Feed#reviews"
)


def attribution_row(dsn: str, seller_id: uuid.UUID, order_id: str) -> dict[str, Any]:
    """The order row's attribution columns, read from the database."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.current_seller_id', %s, true)", (str(seller_id),))
        row = conn.execute(
            f"SELECT {', '.join(FIELDS)} FROM orders WHERE id = %s", (order_id,)
        ).fetchone()
    assert row is not None, "no such order"
    return dict(zip(FIELDS, row, strict=True))


def orders_count(dsn: str, seller_id: uuid.UUID) -> int:
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.current_seller_id', %s, true)", (str(seller_id),))
        row = conn.execute(
            "SELECT count(*) FROM orders WHERE seller_id = %s", (seller_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


async def place(client: httpx.AsyncClient, slug: str, **fields: Any) -> str:
    placed = await client.post(f"/public/sellpages/{slug}/orders", json={**ORDER, **fields})
    assert placed.status_code == 201, placed.text
    return str(placed.json()["order_id"])


@pytest.fixture
async def shop(api_client: httpx.AsyncClient, new_seller: NewSeller) -> tuple[SignedUpSeller, str]:
    """A seller with a published sellpage, and its slug."""
    seller = await new_seller()
    return seller, await published_page(api_client, seller)


# -- stored on the order ----------------------------------------------------------------------


async def test_a_served_ads_landing_url_is_stored_on_the_order(
    api_client: httpx.AsyncClient, shop: tuple[SignedUpSeller, str], database_owner_dsn: str
) -> None:
    seller, slug = shop

    order_id = await place(api_client, slug, landing_url=SERVED_AD_URL)

    assert attribution_row(database_owner_dsn, seller.seller_id, order_id) == {
        "utm_source": "facebook",
        "utm_medium": "paid_social",
        "utm_campaign": "Spring Sale 🌸",
        "utm_content": "Video A",
        "utm_term": "lookalike_1pct",
        "fbclid": FBCLID,
        "campaign_ref": "120210000000000001",
        "adset_ref": "120210000000000002",
        "ad_ref": "120210000000000003",
    }


async def test_explicit_attribution_is_stored_and_wins_field_by_field(
    api_client: httpx.AsyncClient, shop: tuple[SignedUpSeller, str], database_owner_dsn: str
) -> None:
    seller, slug = shop
    explicit = {"utm_source": "tiktok", "campaign_ref": "1800000000001", "ad_ref": "ad:42"}

    alone = await place(api_client, slug, attribution=explicit)
    both = await place(
        api_client,
        slug,
        landing_url=SERVED_AD_URL,
        # utm_medium null and utm_term blank say nothing: the URL's values stay.
        attribution={**explicit, "utm_medium": None, "utm_term": "  "},
    )

    assert attribution_row(database_owner_dsn, seller.seller_id, alone) == {
        **NOTHING,
        **explicit,
    }
    assert attribution_row(database_owner_dsn, seller.seller_id, both) == {
        "utm_source": "tiktok",
        "utm_medium": "paid_social",
        "utm_campaign": "Spring Sale 🌸",
        "utm_content": "Video A",
        "utm_term": "lookalike_1pct",
        "fbclid": FBCLID,
        "campaign_ref": "1800000000001",
        "adset_ref": "120210000000000002",
        "ad_ref": "ad:42",
    }


async def test_unfilled_macros_of_a_previewed_ad_are_stored_as_null(
    api_client: httpx.AsyncClient, shop: tuple[SignedUpSeller, str], database_owner_dsn: str
) -> None:
    seller, slug = shop
    template = (
        "https://shop.example.com/p/spring?utm_source=facebook"
        "&utm_campaign={{campaign.name}}&utm_content=%7B%7Bad.name%7D%7D"
        "&campaign_id={{campaign.id}}&adset_id=%7B%7Badset.id%7D%7D&ad_id={{ad.id}}"
    )

    from_url = await place(api_client, slug, landing_url=template)
    explicit = await place(
        api_client, slug, attribution={"ad_ref": "{{ad.id}}", "utm_term": "{{adset.name}}"}
    )

    assert attribution_row(database_owner_dsn, seller.seller_id, from_url) == {
        **NOTHING,
        "utm_source": "facebook",
    }
    assert attribution_row(database_owner_dsn, seller.seller_id, explicit) == NOTHING


async def test_repeated_parameters_keep_the_first_and_utm_id_stands_in_for_campaign_id(
    api_client: httpx.AsyncClient, shop: tuple[SignedUpSeller, str], database_owner_dsn: str
) -> None:
    seller, slug = shop
    url = (
        "/p/spring?utm_source=first&utm_source=second&ad_id=111&ad_id=222"
        "&campaign_id={{campaign.id}}&utm_id=333&utm_id=444&gclid=ignored&utm_source_platform=x"
    )

    order_id = await place(api_client, slug, landing_url=url)

    assert attribution_row(database_owner_dsn, seller.seller_id, order_id) == {
        **NOTHING,
        "utm_source": "first",
        "campaign_ref": "333",
        "ad_ref": "111",
    }


async def test_an_order_without_attribution_stores_none(
    api_client: httpx.AsyncClient, shop: tuple[SignedUpSeller, str], database_owner_dsn: str
) -> None:
    seller, slug = shop

    plain = await place(api_client, slug)
    bare_url = await place(api_client, slug, landing_url="https://shop.example.com/p/spring")

    assert attribution_row(database_owner_dsn, seller.seller_id, plain) == NOTHING
    assert attribution_row(database_owner_dsn, seller.seller_id, bare_url) == NOTHING


# -- refused ----------------------------------------------------------------------------------


def _landing(query: str) -> dict[str, Any]:
    return {"landing_url": f"https://shop.example.com/p/spring?utm_source=facebook&{query}"}


REFUSED = {
    "a UTM value too long": (
        _landing(f"utm_campaign={'x' * (MAX_UTM_LENGTH + 1)}"),
        ["body", "landing_url"],
        "invalid_attribution",
        "utm_campaign",
    ),
    "a control character in a UTM value": (
        _landing("utm_content=video%01a"),
        ["body", "landing_url"],
        "invalid_attribution",
        "utm_content",
    ),
    "an id with a slash": (
        _landing("ad_id=12%2F34"),
        ["body", "landing_url"],
        "invalid_attribution",
        "ad_id",
    ),
    "an id too long": (
        _landing(f"campaign_id={'1' * (MAX_AD_NETWORK_ID_LENGTH + 1)}"),
        ["body", "landing_url"],
        "invalid_attribution",
        "campaign_id",
    ),
    "a click id with a dot": (
        _landing("fbclid=IwAR.2F4"),
        ["body", "landing_url"],
        "invalid_attribution",
        "fbclid",
    ),
    "a landing URL too long": (
        {"landing_url": "https://shop.example.com/?" + "a" * MAX_LANDING_URL_LENGTH},
        ["body", "landing_url"],
        "string_too_long",
        "",
    ),
    "a newline inside an explicit UTM value": (
        {"attribution": {"utm_term": "look\nalike"}},
        ["body", "attribution", "utm_term"],
        "invalid_attribution",
        "control characters",
    ),
    "an explicit UTM value too long": (
        {"attribution": {"utm_source": "f" * (MAX_UTM_LENGTH + 1)}},
        ["body", "attribution", "utm_source"],
        "invalid_attribution",
        str(MAX_UTM_LENGTH),
    ),
    "an explicit id with spaces": (
        {"attribution": {"adset_ref": "12 34"}},
        ["body", "attribution", "adset_ref"],
        "invalid_attribution",
        "",
    ),
    "an explicit id as a number": (
        {"attribution": {"campaign_ref": 120210000000000001}},
        ["body", "attribution", "campaign_ref"],
        "string_type",
        "",
    ),
    "an unknown attribution field": (
        {"attribution": {"gclid": "abc"}},
        ["body", "attribution", "gclid"],
        "extra_forbidden",
        "",
    ),
}


@pytest.mark.parametrize(
    ("fields", "location", "error_type", "message_names"),
    list(REFUSED.values()),
    ids=list(REFUSED),
)
async def test_attribution_out_of_bounds_is_422_naming_the_field_and_orders_nothing(
    api_client: httpx.AsyncClient,
    shop: tuple[SignedUpSeller, str],
    database_owner_dsn: str,
    fields: dict[str, Any],
    location: list[str],
    error_type: str,
    message_names: str,
) -> None:
    seller, slug = shop

    refused = await api_client.post(f"/public/sellpages/{slug}/orders", json={**ORDER, **fields})

    assert_error(refused, 422, "validation_failed")
    [problem] = refused.json()["error"]["details"]
    assert problem["location"] == location
    assert problem["type"] == error_type
    assert message_names in problem["message"]
    assert orders_count(database_owner_dsn, seller.seller_id) == 0


# -- read back --------------------------------------------------------------------------------


async def test_the_seller_reads_the_attribution_and_another_seller_cannot(
    api_client: httpx.AsyncClient, shop: tuple[SignedUpSeller, str], new_seller: NewSeller
) -> None:
    seller, slug = shop
    other = await new_seller()
    attributed = await place(api_client, slug, landing_url=SERVED_AD_URL)
    plain = await place(api_client, slug)

    detail = await api_client.get(f"/orders/{attributed}", headers=seller.headers)
    plain_detail = await api_client.get(f"/orders/{plain}", headers=seller.headers)
    listed = await api_client.get("/orders", headers=seller.headers)
    as_other = await api_client.get(f"/orders/{attributed}", headers=other.headers)
    other_list = await api_client.get("/orders", headers=other.headers)

    assert detail.status_code == 200, detail.text
    assert detail.json()["attribution"] == {
        "utm_source": "facebook",
        "utm_medium": "paid_social",
        "utm_campaign": "Spring Sale 🌸",
        "utm_content": "Video A",
        "utm_term": "lookalike_1pct",
        "fbclid": FBCLID,
        "campaign_ref": "120210000000000001",
        "adset_ref": "120210000000000002",
        "ad_ref": "120210000000000003",
    }
    assert plain_detail.json()["attribution"] == NOTHING
    by_id = {item["id"]: item for item in listed.json()["items"]}
    assert by_id[attributed]["attribution"] == detail.json()["attribution"]
    assert_error(as_other, 404, "not_found")
    assert other_list.status_code == 200 and other_list.json()["items"] == []
    assert "120210000000000001" not in other_list.text


# -- the landing URL's reader -----------------------------------------------------------------


def test_the_reader_takes_relative_urls_and_ignores_the_fragment() -> None:
    assert Attribution.from_landing_url("/p/x?utm_source=a#utm_medium=b") == Attribution(
        utm_source="a"
    )
    assert Attribution.from_landing_url("/p/x#frag?utm_source=a") == Attribution()
    assert Attribution.from_landing_url("utm_source=a") == Attribution()
    assert Attribution.from_landing_url("") == Attribution()


def test_the_reader_names_the_parameter_at_fault() -> None:
    with pytest.raises(InvalidAttributionError) as refused:
        Attribution.from_landing_url("/?campaign_id=&utm_id=not%20an%20id")

    assert refused.value.parameter == "utm_id"
    assert refused.value.code == "invalid_attribution"
    assert "utm_id" in str(refused.value)


_NAMES = st.sampled_from(
    [
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "utm_id",
        "fbclid",
        "campaign_id",
        "adset_id",
        "ad_id",
        "gclid",
    ]
)
_VALUES = st.one_of(
    st.text(),
    st.text(alphabet="0123456789", min_size=1, max_size=70),
    st.text(alphabet="abcXYZ019_-.:{}% +&=#?", max_size=80),
    st.sampled_from(["{{campaign.id}}", "{{ad.id}}", "%7B%7Badset.id%7D%7D", ""]),
)
_PAIRS = st.lists(st.tuples(st.one_of(_NAMES, st.text(max_size=12)), _VALUES), max_size=12)
_QUERIES = st.one_of(
    st.text(),
    _PAIRS.map(lambda pairs: urlencode(pairs)),
    _PAIRS.map(lambda pairs: "&".join(f"{name}={value}" for name, value in pairs)),
    _PAIRS.map(lambda pairs: "&".join(f"{quote(name)}={quote(value)}" for name, value in pairs)),
)
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@given(prefix=st.sampled_from(["", "/p/x?", "https://shop.example.com/p?", "?"]), query=_QUERIES)
def test_the_reader_never_fails_but_with_its_own_error_and_keeps_its_bounds(
    prefix: str, query: str
) -> None:
    try:
        attribution = Attribution.from_landing_url(prefix + query)
    except InvalidAttributionError as refused:
        assert refused.code == "invalid_attribution"
        return
    values = attribution.model_dump()
    for field in ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"):
        value = values[field]
        assert value is None or (
            0 < len(value) <= MAX_UTM_LENGTH
            and value == value.strip()
            and not re.search(r"\{\{[^{}]*\}\}", value)
            and not any(unicodedata.category(char) == "Cc" for char in value)
        )
    for field in ("campaign_ref", "adset_ref", "ad_ref"):
        assert values[field] is None or _ID.fullmatch(values[field])
    assert values["fbclid"] is None or re.fullmatch(r"[A-Za-z0-9_-]{1,500}", values["fbclid"])
    # What the reader keeps is valid as it stands: storing and reading back changes nothing.
    assert Attribution.model_validate(values) == attribution
