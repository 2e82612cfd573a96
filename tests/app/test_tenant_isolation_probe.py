"""Tenant isolation probe, generated from the app's own route table (TENANT-2).

Every route that addresses a resource by id is called by seller B with seller A's ids —
read, update and delete alike — and must answer 404; every list route must show B none
of A's ids; afterwards every one of A's rows, in every seller-owned table, is unchanged.
A new route is probed automatically; a route whose path parameter the probe does not
know, or whose request body has no example to send, fails the probe until it is taught.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from pixecom_core.models import SELLER_ATTRIBUTED_TABLES, SELLER_OWNED_TABLES
from tests.app.conftest import NewSeller, SignedUpSeller
from tests.db.tenant_rows import insert_rows_for, seller_scope

#: Path parameter → the table whose row it names.
RESOURCE_PARAMETERS = {
    "product_id": "products",
    "sellpage_id": "sellpages",
    "pricing_rule_id": "pricing_rules",
    "campaign_id": "campaigns",
    "adset_id": "adsets",
    "ad_id": "ads",
    "creative_id": "creatives",
    "asset_id": "assets",
    "order_id": "orders",
    "ad_account_id": "ad_accounts",
    "connection_id": "ad_connections",
    "payment_connection_id": "payment_connections",
}
#: Path parameters that name no seller resource (storefront addresses, gateway names, the
#: gateway account a seller's own app sends its notifications for).
PUBLIC_PARAMETERS = {"slug", "gateway", "tracker", "account_id"}
#: Path parameters of a seller's own rows addressed by natural key, not id: the manual
#: rates' day and currency pair, a conversion destination's network. The scope alone
#: finds the row, so another seller's request reaches nothing: tests/app/test_fx_api.py
#: and tests/app/test_conversions_api.py prove it (404, the row untouched).
NATURAL_KEY_PARAMETERS = {"day", "base_currency", "quote_currency", "network"}
#: Routes that are not about seller data at all.
NOT_SELLER_DATA = {"/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"}
#: The network's (or gateway's) redirect back from its consent page: no id in its path; its
#: signed state names the seller, and tests/ad_accounts and tests/app/payments prove another
#: seller cannot use it (403).
CONSENT_CALLBACKS = {"/ad-accounts/connections/callback", "/payments/connections/callback"}
#: Routes whose resource seller A reaches with another answer than 200: the probe's
#: connection is still pending (no network authorized it), which A is told, not 404.
A_REACHES_WITH = {"/ad-accounts/connections/{connection_id}": 422}
#: Operator routes that answer without a seller token (restricted by network instead) and
#: must never show any seller's data: probed anonymously for every id of both sellers.
OPERATOR_ROUTES = {"/metrics"}

_PARAMETER = re.compile(r"{([^}:]+)(?::[^}]*)?}")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    parameters: tuple[str, ...]


def operations(openapi: dict[str, Any]) -> Iterator[Operation]:
    """Every (method, path) the app serves, from the route table FastAPI publishes as its
    OpenAPI document (so included routers, however nested, are all there)."""
    for path, methods in openapi["paths"].items():
        if path in NOT_SELLER_DATA:
            continue
        parameters = tuple(_PARAMETER.findall(path))
        for method in sorted(methods):
            yield Operation(method=method.upper(), path=path, parameters=parameters)


def example_body(openapi: dict[str, Any], operation: Operation) -> Any:
    """The first example of the operation's JSON request body, or None without a body."""
    spec = openapi["paths"][operation.path][operation.method.lower()]
    body = spec.get("requestBody")
    if body is None:
        return None
    schema = body["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    examples = schema.get("examples") or body["content"]["application/json"].get("examples")
    if not examples:
        pytest.fail(
            f"{operation.method} {operation.path}: its request body has no example; add "
            "json_schema_extra={'examples': [...]} to the model so the isolation probe "
            "(and API docs readers) can send one"
        )
    first = examples[0] if isinstance(examples, list) else next(iter(examples.values()))
    return first.get("value", first) if isinstance(first, dict) and "value" in first else first


def required_query(openapi: dict[str, Any], operation: Operation) -> dict[str, str]:
    """Values for the operation's required query parameters: date ranges around today
    (where the seller's rows are); any other required parameter fails the probe."""
    today = date.today()
    known = {
        "since": (today - timedelta(days=180)).isoformat(),
        "until": (today + timedelta(days=180)).isoformat(),
    }
    spec = openapi["paths"][operation.path][operation.method.lower()]
    values = {}
    for parameter in spec.get("parameters", []):
        if parameter["in"] != "query" or not parameter.get("required"):
            continue
        name = parameter["name"]
        assert name in known, (
            f"{operation.method} {operation.path}: teach the isolation probe a value for the "
            f"required query parameter {name!r}"
        )
        values[name] = known[name]
    return values


#: Values for required request headers an operation declares (besides the token).
KNOWN_HEADERS = {"idempotency-key": "isolation-probe"}


def required_headers(openapi: dict[str, Any], operation: Operation) -> dict[str, str]:
    """Values for the operation's required headers; an unknown one fails the probe."""
    spec = openapi["paths"][operation.path][operation.method.lower()]
    values = {}
    for parameter in spec.get("parameters", []):
        if parameter["in"] != "header" or not parameter.get("required"):
            continue
        name = parameter["name"].lower()
        assert name in KNOWN_HEADERS, (
            f"{operation.method} {operation.path}: teach the isolation probe a value for the "
            f"required header {name!r}"
        )
        values[name] = KNOWN_HEADERS[name]
    return values


def snapshot(owner_dsn: str, seller_id: uuid.UUID) -> dict[str, list[str]]:
    """Every row of ``seller_id`` in every table with a seller (the seller-owned ones and
    the inbox, dead letters and sync runs), as sorted JSON text."""
    rows: dict[str, list[str]] = {}
    with psycopg.connect(owner_dsn, autocommit=True) as conn, seller_scope(conn, seller_id):
        for table in (*SELLER_OWNED_TABLES, *SELLER_ATTRIBUTED_TABLES, "sellers"):
            found = conn.execute(f"SELECT row_to_json(t)::text FROM {table} AS t").fetchall()
            rows[table] = sorted(row[0] for row in found)
    return rows


@pytest.fixture
async def two_sellers_with_data(
    new_seller: NewSeller, database_owner_dsn: str
) -> tuple[SignedUpSeller, SignedUpSeller, dict[str, list[Any]]]:
    a = await new_seller()
    b = await new_seller()
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        ids_a = insert_rows_for(conn, a.seller_id)
        insert_rows_for(conn, b.seller_id)  # B has data of its own, so lists are not empty
    return a, b, ids_a


async def test_no_route_lets_one_seller_reach_anothers_data(
    api_client: httpx.AsyncClient,
    database_owner_dsn: str,
    two_sellers_with_data: tuple[SignedUpSeller, SignedUpSeller, dict[str, list[Any]]],
) -> None:
    a, b, ids_a = two_sellers_with_data
    openapi = (await api_client.get("/openapi.json")).json()
    # UUIDs only: small integer ids (ad_stats_raw) would match any number in a response.
    a_ids = {
        str(row_id)
        for table_ids in ids_a.values()
        for row_id in table_ids
        if isinstance(row_id, uuid.UUID)
    }
    before = snapshot(database_owner_dsn, a.seller_id)
    probed: list[str] = []

    assert len(a_ids) > 20
    for operation in operations(openapi):
        unknown = (
            set(operation.parameters)
            - RESOURCE_PARAMETERS.keys()
            - PUBLIC_PARAMETERS
            - NATURAL_KEY_PARAMETERS
        )
        assert not unknown, (
            f"{operation.method} {operation.path}: teach the isolation probe which table "
            f"the path parameter(s) {sorted(unknown)} name (RESOURCE_PARAMETERS)"
        )
        if (
            set(operation.parameters) & (PUBLIC_PARAMETERS | NATURAL_KEY_PARAMETERS)
            or operation.path.startswith(("/auth/", "/public/"))
            or operation.path in CONSENT_CALLBACKS
        ):
            continue
        if operation.path in OPERATOR_ROUTES:
            anonymous = await api_client.request(operation.method, operation.path)
            assert anonymous.status_code == 200, (operation, anonymous.text)
            seller_ids = {str(a.seller_id), str(b.seller_id)}
            leaked = [row_id for row_id in a_ids | seller_ids if row_id in anonymous.text]
            assert not leaked, f"{operation.path} shows seller data: {leaked}"
            probed.append(f"operator {operation.path}")
            continue
        if not operation.parameters:
            if operation.method == "GET":
                listing = await api_client.get(
                    operation.path,
                    params=required_query(openapi, operation),
                    headers=b.headers,
                )
                assert listing.status_code == 200, (operation, listing.text)
                leaked = [row_id for row_id in a_ids if row_id in listing.text]
                assert not leaked, f"GET {operation.path} shows seller B ids of A: {leaked}"
                probed.append(f"list {operation.path}")
            continue

        url = operation.path
        for parameter in operation.parameters:
            url = url.replace(f"{{{parameter}}}", str(ids_a[RESOURCE_PARAMETERS[parameter]][0]))
        body = example_body(openapi, operation)
        # Resource routes may need a range too (GET /stats/campaigns/{campaign_id}/days).
        query = required_query(openapi, operation)
        headers = {**b.headers, **required_headers(openapi, operation)}
        kwargs: dict[str, Any] = {"headers": headers, "params": query}
        if body is not None:
            kwargs["content"] = json.dumps(body)
            kwargs["headers"] = {**headers, "Content-Type": "application/json"}

        as_b = await api_client.request(operation.method, url, **kwargs)

        assert as_b.status_code == 404, (
            f"seller B got {as_b.status_code} for {operation.method} {url} (seller A's ids): "
            f"{as_b.text}"
        )
        assert as_b.json()["error"]["code"].endswith("not_found"), as_b.text
        if operation.method == "GET":
            # The ids are right: A itself reaches the resource.
            as_a = await api_client.get(url, params=query, headers=a.headers)
            assert as_a.status_code == A_REACHES_WITH.get(operation.path, 200), (
                operation,
                as_a.text,
            )
        probed.append(f"{operation.method} {operation.path}")

    assert snapshot(database_owner_dsn, a.seller_id) == before, "seller A's data changed"
    # The probe is not vacuous: it reached the resource routes of every kind.
    reached = {p for probe in probed for p in RESOURCE_PARAMETERS if f"{{{p}}}" in probe}
    assert reached == set(RESOURCE_PARAMETERS), sorted(set(RESOURCE_PARAMETERS) - reached)
    assert {f"operator {path}" for path in OPERATOR_ROUTES} <= set(probed)
