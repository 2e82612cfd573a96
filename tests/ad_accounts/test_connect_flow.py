"""Sellers connect their own ad accounts through the API (issue 14 item 3), against an
in-memory network with a consent flow: the state's guarantees, the chooser, reconnect,
disconnect, tenancy, and tokens kept out of responses and logs."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from pixecom_core.ad_accounts.connections import ConnectionState, ConnectionStateSigner
from pixecom_core.settings import Settings
from tests.ad_accounts.conftest import Owner, stored
from tests.ad_accounts.consentads import IDENTIFIER, ConsentAdNetwork
from tests.app.conftest import NewSeller, SignedUpSeller


async def start(client: httpx.AsyncClient, seller: SignedUpSeller) -> tuple[str, str, str]:
    """POST /ad-accounts/connections: (connection id, state, redirect_uri)."""
    response = await client.post(
        "/ad-accounts/connections", json={"network": IDENTIFIER}, headers=seller.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    query = parse_qs(urlsplit(body["authorization_url"]).query)
    return body["id"], query["state"][0], query["redirect_uri"][0]


def callback_path(redirect_uri: str) -> str:
    return urlsplit(redirect_uri).path


async def authorize(
    client: httpx.AsyncClient, network: ConsentAdNetwork, seller: SignedUpSeller
) -> str:
    """A whole consent flow, as the browser comes back (no bearer token): the connection id."""
    connection_id, state, redirect_uri = await start(client, seller)
    code = network.consent(redirect_uri)
    response = await client.get(callback_path(redirect_uri), params={"state": state, "code": code})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/dashboard/ad-accounts?connection={connection_id}"
    return connection_id


async def choose(
    client: httpx.AsyncClient, seller: SignedUpSeller, connection_id: str, *external_ids: str
) -> httpx.Response:
    """POST /ad-accounts: connect the chosen accounts through a connection."""
    return await client.post(
        "/ad-accounts",
        json={"connection_id": connection_id, "external_ids": list(external_ids)},
        headers=seller.headers,
    )


async def test_connect_two_accounts_and_list_them(
    api_client: httpx.AsyncClient,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
    owner_conn: Owner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seller = await new_seller()
    connection_id = await authorize(api_client, network, seller)

    chooser = await api_client.get(
        f"/ad-accounts/connections/{connection_id}", headers=seller.headers
    )
    assert chooser.status_code == 200, chooser.text
    assert [(a["external_id"], a["connected"]) for a in chooser.json()["accounts"]] == [
        ("1001", False),
        ("1002", False),
    ]
    connected = await api_client.post(
        "/ad-accounts",
        json={"connection_id": connection_id, "external_ids": ["1001", "1002"]},
        headers=seller.headers,
    )
    assert connected.status_code == 201, connected.text

    listed = await api_client.get("/ad-accounts", headers=seller.headers)
    assert listed.status_code == 200
    accounts = {a["external_id"]: a for a in listed.json()["items"]}
    assert set(accounts) == {"1001", "1002"}
    assert accounts["1001"]["name"] == "Shop US"
    assert accounts["1001"]["timezone"] == "America/New_York"
    # Connected with their history still to fetch: the last 28 days, nothing done yet.
    assert accounts["1001"]["state"] == "backfilling"
    assert accounts["1001"]["backfill_progress"] == 0.0
    again = await api_client.get(
        f"/ad-accounts/connections/{connection_id}", headers=seller.headers
    )
    assert all(a["connected"] for a in again.json()["accounts"])

    # The tokens are stored encrypted, and appear in no response and no log line.
    tokens = list(network.grants)
    assert len(tokens) == 1
    assert stored(owner_conn, seller.seller_id) == {"grants": 1, "accounts": 2, "account_tokens": 2}
    ciphertexts = owner_conn.execute(
        "SELECT token_ciphertext FROM ad_accounts WHERE seller_id = %s", (seller.seller_id,)
    ).fetchall()
    for (ciphertext,) in ciphertexts:
        assert tokens[0].encode() not in bytes(ciphertext)
    for body in (chooser.text, connected.text, listed.text, again.text):
        assert tokens[0] not in body
    assert tokens[0] not in caplog.text


async def test_pasted_token_authorizes_at_once(
    api_client: httpx.AsyncClient, network: ConsentAdNetwork, new_seller: NewSeller
) -> None:
    seller = await new_seller()
    network.grants["PASTED-TOKEN-123"] = ("ads_read",)
    response = await api_client.post(
        "/ad-accounts/connections",
        json={"network": IDENTIFIER, "access_token": "PASTED-TOKEN-123"},
        headers=seller.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "AUTHORIZED"
    assert response.json()["authorization_url"] is None
    assert "PASTED-TOKEN-123" not in response.text
    refused = await api_client.post(
        "/ad-accounts/connections",
        json={"network": IDENTIFIER, "access_token": "NOT-A-TOKEN"},
        headers=seller.headers,
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "token_refused"
    assert "NOT-A-TOKEN" not in refused.text


async def test_unknown_network_is_refused(
    api_client: httpx.AsyncClient, new_seller: NewSeller
) -> None:
    seller = await new_seller()
    response = await api_client.post(
        "/ad-accounts/connections", json={"network": "nosuchnet"}, headers=seller.headers
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_network"
    assert "nosuchnet" in response.json()["error"]["message"]


async def test_second_seller_cannot_complete_the_first_sellers_flow(
    api_client: httpx.AsyncClient,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
    owner_conn: Owner,
) -> None:
    first, second = await new_seller(), await new_seller()
    _, state, redirect_uri = await start(api_client, first)
    code = network.consent(redirect_uri)
    response = await api_client.get(
        callback_path(redirect_uri),
        params={"state": state, "code": code},
        headers=second.headers,
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "state_of_another_seller"
    assert stored(owner_conn, first.seller_id)["grants"] == 0
    assert stored(owner_conn, second.seller_id)["grants"] == 0
    # The first seller can still finish it: the refusal consumed nothing.
    finished = await api_client.get(
        callback_path(redirect_uri), params={"state": state, "code": code}, headers=first.headers
    )
    assert finished.status_code == 303


async def test_reused_state_is_refused(
    api_client: httpx.AsyncClient,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
    owner_conn: Owner,
) -> None:
    seller = await new_seller()
    _, state, redirect_uri = await start(api_client, seller)
    path = callback_path(redirect_uri)
    code = network.consent(redirect_uri)
    first = await api_client.get(path, params={"state": state, "code": code})
    assert first.status_code == 303
    second = await api_client.get(
        path, params={"state": state, "code": network.consent(redirect_uri)}
    )
    assert second.status_code == 400
    assert second.json()["error"]["code"] == "state_used"
    assert stored(owner_conn, seller.seller_id)["grants"] == 1


async def test_tampered_and_foreign_states_are_refused(
    api_client: httpx.AsyncClient,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
    owner_conn: Owner,
) -> None:
    seller = await new_seller()
    _, state, redirect_uri = await start(api_client, seller)
    path = callback_path(redirect_uri)
    header, payload, signature = state.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    forged = ConnectionStateSigner([SecretStr("x" * 64)]).sign(
        ConnectionState(
            seller_id=seller.seller_id,
            connection_id=uuid.uuid4(),
            nonce="n",
            expires_at=datetime.now(UTC) + timedelta(minutes=5),
        ),
        issued_at=datetime.now(UTC),
    )
    for bad in (tampered, forged, seller.access_token, "not-a-state"):
        response = await api_client.get(
            path, params={"state": bad, "code": network.consent(redirect_uri)}
        )
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid_state"
    assert stored(owner_conn, seller.seller_id)["grants"] == 0


async def test_expired_state_is_refused(
    api_client: httpx.AsyncClient,
    new_seller: NewSeller,
    owner_conn: Owner,
    app_settings: Settings,
) -> None:
    # Signed with the app's own keys, at a fixed instant long past.
    seller = await new_seller()
    issued = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    state = ConnectionStateSigner(app_settings.jwt_signing_keys).sign(
        ConnectionState(
            seller_id=seller.seller_id,
            connection_id=uuid.uuid4(),
            nonce="nonce",
            expires_at=issued + timedelta(minutes=10),
        ),
        issued_at=issued,
    )
    response = await api_client.get(
        "/ad-accounts/connections/callback", params={"state": state, "code": "c"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "state_expired"
    assert stored(owner_conn, seller.seller_id)["grants"] == 0


async def test_denied_consent_and_missing_scope_store_nothing(
    api_client: httpx.AsyncClient,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
    owner_conn: Owner,
) -> None:
    seller = await new_seller()
    _, state, redirect_uri = await start(api_client, seller)
    denied = await api_client.get(
        callback_path(redirect_uri),
        params={"state": state, "error": "access_denied", "error_reason": "user_denied"},
    )
    assert denied.status_code == 400
    assert denied.json()["error"]["code"] == "access_denied"

    _, state, redirect_uri = await start(api_client, seller)
    code = network.consent(redirect_uri, scopes=("pages_show_list",))
    missing = await api_client.get(
        callback_path(redirect_uri), params={"state": state, "code": code}
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "missing_scopes"
    assert "ads_read" in missing.json()["error"]["message"]

    _, state, redirect_uri = await start(api_client, seller)
    bad_code = await api_client.get(
        callback_path(redirect_uri), params={"state": state, "code": "made-up"}
    )
    assert bad_code.status_code == 400
    assert bad_code.json()["error"]["code"] == "code_refused"
    assert stored(owner_conn, seller.seller_id) == {
        "grants": 0,
        "accounts": 0,
        "account_tokens": 0,
    }
    statuses = owner_conn.execute(
        "SELECT status, count(*) FROM ad_connections WHERE seller_id = %s GROUP BY status",
        (seller.seller_id,),
    ).fetchall()
    assert statuses == [("REFUSED", 3)]


async def test_unreachable_ids_connect_nothing(
    api_client: httpx.AsyncClient,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
    owner_conn: Owner,
) -> None:
    seller = await new_seller()
    connection_id = await authorize(api_client, network, seller)
    response = await api_client.post(
        "/ad-accounts",
        json={"connection_id": connection_id, "external_ids": ["1001", "9999"]},
        headers=seller.headers,
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unreachable_accounts"
    assert "9999" in response.json()["error"]["message"]
    assert stored(owner_conn, seller.seller_id)["accounts"] == 0


async def test_disconnect_deletes_the_token_and_keeps_history(
    api_client: httpx.AsyncClient,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
    owner_conn: Owner,
) -> None:
    seller = await new_seller()
    connection_id = await authorize(api_client, network, seller)
    connected = await choose(api_client, seller, connection_id, "1001")
    account_id = connected.json()["accounts"][0]["id"]
    owner_conn.execute(
        "INSERT INTO campaigns (seller_id, ad_account_id, external_id, name)"
        " VALUES (%s, %s, 'c-1', 'Spring')",
        (seller.seller_id, account_id),
    )

    response = await api_client.delete(f"/ad-accounts/{account_id}", headers=seller.headers)
    assert response.status_code == 204
    row = owner_conn.execute(
        "SELECT status, token_ciphertext, token_key_version, disconnected_at IS NOT NULL,"
        " (SELECT count(*) FROM campaigns WHERE ad_account_id = a.id)"
        " FROM ad_accounts AS a WHERE id = %s",
        (account_id,),
    ).fetchone()
    assert row == ("DISCONNECTED", None, None, True, 1)
    listed = await api_client.get("/ad-accounts", headers=seller.headers)
    assert [a["state"] for a in listed.json()["items"]] == ["disconnected"]


async def test_reconnect_clears_needs_reconnect_and_its_problem(
    api_client: httpx.AsyncClient,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
    owner_conn: Owner,
) -> None:
    seller = await new_seller()
    first = await authorize(api_client, network, seller)
    connected = await choose(api_client, seller, first, "1001")
    account_id = connected.json()["accounts"][0]["id"]
    # As the sync records a refused token (pixecom_core.stats.sync).
    owner_conn.execute(
        "UPDATE ad_accounts SET needs_reconnect = true, last_sync_error = 'token expired',"
        " sync_failures = 3 WHERE id = %s",
        (account_id,),
    )
    problems = await api_client.get("/problems", headers=seller.headers)
    assert [p["kind"] for p in problems.json()["items"]] == ["sync_error"]
    listed = await api_client.get("/ad-accounts", headers=seller.headers)
    assert listed.json()["items"][0]["state"] == "needs_reconnect"

    second = await authorize(api_client, network, seller)
    again = await choose(api_client, seller, second, "1001")
    assert again.status_code == 201
    assert again.json()["accounts"][0]["id"] == account_id
    # still backfilling: its first backfill never ran; it keeps its window and progress
    assert again.json()["accounts"][0]["state"] == "backfilling"
    assert again.json()["accounts"][0]["connection_id"] == second
    problems = await api_client.get("/problems", headers=seller.headers)
    assert problems.json()["items"] == []
    assert stored(owner_conn, seller.seller_id)["accounts"] == 1


async def test_another_sellers_ids_are_not_found(
    api_client: httpx.AsyncClient, network: ConsentAdNetwork, new_seller: NewSeller
) -> None:
    owner, intruder = await new_seller(), await new_seller()
    connection_id = await authorize(api_client, network, owner)
    connected = await choose(api_client, owner, connection_id, "1001")
    account_id = connected.json()["accounts"][0]["id"]
    deleted = await api_client.delete(f"/ad-accounts/{account_id}", headers=intruder.headers)
    assert deleted.status_code == 404
    chooser = await api_client.get(
        f"/ad-accounts/connections/{connection_id}", headers=intruder.headers
    )
    assert chooser.status_code == 404
    stolen = await choose(api_client, intruder, connection_id, "1001")
    assert stolen.status_code == 404
    listed = await api_client.get("/ad-accounts", headers=intruder.headers)
    assert listed.json()["items"] == []
    still = await api_client.get("/ad-accounts", headers=owner.headers)
    assert [a["state"] for a in still.json()["items"]] == [
        "backfilling"
    ]  # untouched by the intruder


async def test_reconnecting_fetches_the_days_missed_while_the_token_was_refused(
    api_client: httpx.AsyncClient,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
    owner_conn: Owner,
) -> None:
    """Issue 14: "reconnecting resumes syncing with no gap". Regular syncs read the last
    few days only, so the days since the last sync are backfilled on reconnect."""
    seller = await new_seller()
    first = await authorize(api_client, network, seller)
    connected = await choose(api_client, seller, first, "1001")
    account_id = connected.json()["accounts"][0]["id"]
    # Its first backfill finished; then its token was refused ten days ago.
    owner_conn.execute(
        "UPDATE ad_accounts SET backfill_done_through = backfill_until,"
        " last_synced_at = now() - interval '10 days', needs_reconnect = true,"
        " last_sync_error = 'token expired' WHERE id = %s",
        (account_id,),
    )

    second = await authorize(api_client, network, seller)
    again = await choose(api_client, seller, second, "1001")

    assert again.status_code == 201, again.text
    assert again.json()["accounts"][0]["state"] == "backfilling"
    row = owner_conn.execute(
        "SELECT backfill_since = (last_synced_at AT TIME ZONE timezone)::date,"
        " backfill_until - backfill_since, backfill_done_through FROM ad_accounts"
        " WHERE id = %s",
        (account_id,),
    ).fetchone()
    assert row is not None
    starts_at_last_sync, span_days, done_through = row
    assert starts_at_last_sync, "the catch-up starts on the day of the last sync"
    assert span_days in (9, 10), span_days  # to yesterday (the day boundary may fall between)
    assert done_through is None


async def test_the_callback_needs_the_starting_browser_or_the_sellers_token(
    api_client: httpx.AsyncClient,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
    owner_conn: Owner,
) -> None:
    """The consent URL reaching someone else's browser (sent in a message, say) cannot
    put their grant into this seller's account: without the seller's token or the
    browser-binding cookie set when the flow started, the callback refuses and keeps the
    state for the right browser."""
    seller = await new_seller()
    started = await api_client.post(
        "/ad-accounts/connections", json={"network": IDENTIFIER}, headers=seller.headers
    )
    assert started.status_code == 201, started.text
    cookie = started.headers["set-cookie"]
    assert cookie.startswith(f"pixecom_connect_{uuid.UUID(started.json()['id']).hex}=")
    for attribute in ("HttpOnly", "Path=/ad-accounts/connections/callback", "SameSite=lax"):
        assert attribute.lower() in cookie.lower(), cookie
    query = parse_qs(urlsplit(started.json()["authorization_url"]).query)
    state, redirect_uri = query["state"][0], query["redirect_uri"][0]
    path = callback_path(redirect_uri)

    elsewhere = await api_client.get(
        path,
        params={"state": state, "code": network.consent(redirect_uri)},
        headers={"cookie": ""},  # another browser: no cookie of this flow
    )
    assert elsewhere.status_code == 400, elsewhere.text
    assert elsewhere.json()["error"]["code"] == "state_not_bound"
    assert stored(owner_conn, seller.seller_id)["grants"] == 0

    with_token = await api_client.get(
        path,
        params={"state": state, "code": network.consent(redirect_uri)},
        headers={**seller.headers, "cookie": ""},
    )
    assert with_token.status_code == 303, with_token.text
    assert stored(owner_conn, seller.seller_id)["grants"] == 1


async def test_a_browser_refused_at_the_callback_lands_on_the_ad_accounts_page(
    api_client: httpx.AsyncClient,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
    owner_conn: Owner,
) -> None:
    """The seller who cancels on the network's page (or comes back too late) reads what
    happened on the dashboard, not a JSON error; an API client still gets the 400."""
    seller = await new_seller()
    _, state, redirect_uri = await start(api_client, seller)
    path = callback_path(redirect_uri)
    browser = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}

    cancelled = await api_client.get(
        path, params={"state": state, "error": "access_denied"}, headers=browser
    )
    again = await api_client.get(
        path, params={"state": state, "code": network.consent(redirect_uri)}
    )

    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == "/dashboard/ad-accounts?error=access_denied"
    assert again.status_code == 400 and again.json()["error"]["code"] == "state_used"
    assert stored(owner_conn, seller.seller_id)["grants"] == 0
