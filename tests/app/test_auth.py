"""Auth over HTTP: sign-up guard, login, lockout, refresh rotation and reuse, key rotation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from pydantic import SecretStr

from pixecom_core.security.access_tokens import AccessTokenKeyring
from pixecom_core.settings import Settings
from tests.app.conftest import PASSWORD, ClientFactory, NewSeller


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["request_id"]


async def test_signup_needs_the_admin_key_outside_dev_mode(api_client: httpx.AsyncClient) -> None:
    body = {"seller_name": "X", "email": "x@example.com", "password": PASSWORD}

    missing = await api_client.post("/auth/signup", json=body)
    wrong = await api_client.post("/auth/signup", json=body, headers={"X-Admin-Key": "nope"})

    assert_error(missing, 403, "forbidden")
    assert_error(wrong, 403, "forbidden")


async def test_signup_refuses_a_taken_email(
    api_client: httpx.AsyncClient, new_seller: NewSeller, admin_key: str
) -> None:
    seller = await new_seller()

    again = await api_client.post(
        "/auth/signup",
        json={"seller_name": "Copy", "email": seller.email.upper(), "password": PASSWORD},
        headers={"X-Admin-Key": admin_key},
    )

    assert_error(again, 409, "email_taken")


async def test_login_and_me(api_client: httpx.AsyncClient, new_seller: NewSeller) -> None:
    seller = await new_seller(currency="EUR")

    me = await api_client.get("/auth/me", headers=seller.headers)

    assert me.status_code == 200, me.text
    assert me.json()["seller"]["id"] == str(seller.seller_id)
    assert me.json()["seller"]["reporting_currency"] == "EUR"
    assert me.json()["user"]["email"] == seller.email
    assert "password_hash" not in me.text


async def test_wrong_password_and_unknown_email_look_the_same(
    api_client: httpx.AsyncClient, new_seller: NewSeller
) -> None:
    seller = await new_seller()

    wrong = await api_client.post(
        "/auth/login", json={"email": seller.email, "password": "not the password"}
    )
    unknown = await api_client.post(
        "/auth/login", json={"email": "nobody@example.com", "password": "whatever"}
    )

    assert_error(wrong, 401, "invalid_credentials")
    assert_error(unknown, 401, "invalid_credentials")
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_requests_without_or_with_a_bad_token_are_401(api_client: httpx.AsyncClient) -> None:
    assert_error(await api_client.get("/auth/me"), 401, "unauthenticated")
    bad = await api_client.get("/auth/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert_error(bad, 401, "invalid_token")
    assert bad.headers["WWW-Authenticate"] == "Bearer"


async def test_brute_force_locks_the_account_for_that_ip_only(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    # Issue 12: the lock is per (account, client IP); the account itself is not locked,
    # so knowing an owner's email is not enough to lock them out.
    settings = app_settings.model_copy(
        update={
            "login_max_failures": 3,
            "login_lockout_seconds": 120,
            "login_ip_rate": "1000/minute",
        }
    )
    async with api_client_for(settings) as client:
        seller = await new_seller(client=client)
        attacker = {"X-Forwarded-For": "203.0.113.7"}
        statuses = []
        for _ in range(4):
            response = await client.post(
                "/auth/login",
                json={"email": seller.email, "password": "guess"},
                headers=attacker,
            )
            statuses.append(response.status_code)
        # Three wrong passwords are checked; the fourth is not.
        assert statuses == [401, 401, 401, 429]
        locked = response
        assert_error(locked, 429, "account_locked")
        assert 0 < int(locked.headers["Retry-After"]) <= 120

        # The right password from the locked IP: still refused during the lockout.
        right_there = await client.post(
            "/auth/login", json={"email": seller.email, "password": PASSWORD}, headers=attacker
        )
        assert_error(right_there, 429, "account_locked")
        assert int(right_there.headers["Retry-After"]) > 0

        # The right password from another IP: in.
        other_ip = {"X-Forwarded-For": "198.51.100.9"}
        right = await client.post(
            "/auth/login", json={"email": seller.email, "password": PASSWORD}, headers=other_ip
        )
        assert right.status_code == 200, right.text


async def test_login_is_throttled_per_ip(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    settings = app_settings.model_copy(update={"login_ip_rate": "3/minute"})
    async with api_client_for(settings) as client:
        seller = await new_seller(client=client)  # its login counts for 127.0.0.1
        ip = {"X-Forwarded-For": "192.0.2.44"}
        codes = [
            (
                await client.post(
                    "/auth/login",
                    json={"email": f"n{i}@example.com", "password": "x"},
                    headers=ip,
                )
            ).status_code
            for i in range(4)
        ]
        assert codes == [401, 401, 401, 429]
        # Another IP is unaffected.
        fine = await client.post(
            "/auth/login",
            json={"email": seller.email, "password": PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.45"},
        )
        assert fine.status_code == 200, fine.text


async def test_limits_hold_across_api_processes(
    app_settings: Settings, api_client_for: ClientFactory
) -> None:
    # Two apps (two "processes": separate pools, Redis clients and limiters) share one
    # Redis, so an IP's attempts on one count on the other (SEC-1).
    settings = app_settings.model_copy(update={"login_ip_rate": "2/minute"})
    ip = {"X-Forwarded-For": "192.0.2.77"}
    body = {"email": "ghost@example.com", "password": "x"}
    async with api_client_for(settings) as first, api_client_for(settings) as second:
        assert (await first.post("/auth/login", json=body, headers=ip)).status_code == 401
        assert (await second.post("/auth/login", json=body, headers=ip)).status_code == 401
        assert (await first.post("/auth/login", json=body, headers=ip)).status_code == 429
        assert (await second.post("/auth/login", json=body, headers=ip)).status_code == 429


async def test_forwarded_for_is_ignored_from_untrusted_peers(
    app_settings: Settings, api_client_for: ClientFactory
) -> None:
    # With no trusted proxy, X-Forwarded-For cannot be used to dodge the per-IP limit.
    settings = app_settings.model_copy(update={"login_ip_rate": "2/minute", "trusted_proxies": []})
    body = {"email": "ghost@example.com", "password": "x"}
    async with api_client_for(settings) as client:
        codes = [
            (
                await client.post(
                    "/auth/login", json=body, headers={"X-Forwarded-For": f"192.0.2.{i}"}
                )
            ).status_code
            for i in range(3)
        ]
    assert codes == [401, 401, 429]


async def test_refresh_rotates_and_reuse_revokes_the_family(
    api_client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str
) -> None:
    seller = await new_seller()

    first = await api_client.post("/auth/refresh", json={"refresh_token": seller.refresh_token})
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != seller.refresh_token
    new_headers = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await api_client.get("/auth/me", headers=new_headers)).status_code == 200

    # The old token comes back: someone kept a copy.
    reuse = await api_client.post("/auth/refresh", json={"refresh_token": seller.refresh_token})
    assert_error(reuse, 401, "refresh_token_reused")

    # Both the reused and the current refresh token are dead, and so are access tokens.
    current = await api_client.post(
        "/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert_error(current, 401, "session_revoked")
    assert_error(await api_client.get("/auth/me", headers=new_headers), 401, "session_revoked")
    assert_error(await api_client.get("/auth/me", headers=seller.headers), 401, "session_revoked")

    with psycopg.connect(database_owner_dsn) as conn:
        rows = conn.execute(
            "SELECT count(*), count(revoked_at), count(rotated_at) FROM refresh_tokens "
            "WHERE seller_id = %s",
            (seller.seller_id,),
        ).fetchone()
    assert rows == (2, 2, 1)


async def test_stored_refresh_tokens_are_hashes(
    new_seller: NewSeller, database_owner_dsn: str
) -> None:
    seller = await new_seller()

    with psycopg.connect(database_owner_dsn) as conn:
        stored = conn.execute(
            "SELECT token_hash FROM refresh_tokens WHERE seller_id = %s", (seller.seller_id,)
        ).fetchall()
    assert len(stored) == 1
    assert seller.refresh_token not in stored[0][0]
    assert seller.refresh_token.split(".")[-1] not in stored[0][0]


async def test_logout_ends_refresh_and_access(
    api_client: httpx.AsyncClient, new_seller: NewSeller
) -> None:
    seller = await new_seller()

    out = await api_client.post("/auth/logout", json={"refresh_token": seller.refresh_token})

    assert out.status_code == 204
    assert_error(await api_client.get("/auth/me", headers=seller.headers), 401, "session_revoked")
    again = await api_client.post("/auth/refresh", json={"refresh_token": seller.refresh_token})
    assert_error(again, 401, "session_revoked")


async def test_malformed_refresh_tokens_are_401(api_client: httpx.AsyncClient) -> None:
    for token in ["x", f"{uuid.uuid4()}.{uuid.uuid4()}.{'a' * 43}", "a.b.c"]:
        response = await api_client.post("/auth/refresh", json={"refresh_token": token})
        assert_error(response, 401, "invalid_token")


async def test_signing_keys_rotate_with_overlap(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    old_key = app_settings.jwt_signing_keys[0]
    new_key = SecretStr("n" * 8 + uuid.uuid4().hex + uuid.uuid4().hex)
    async with api_client_for(app_settings) as before:
        seller = await new_seller(client=before)
    old_token = seller.headers

    overlap = app_settings.model_copy(update={"jwt_signing_keys": [new_key, old_key]})
    async with api_client_for(overlap) as client:
        # Signed by the previous key: still accepted during the overlap.
        assert (await client.get("/auth/me", headers=old_token)).status_code == 200
        fresh = await client.post("/auth/login", json={"email": seller.email, "password": PASSWORD})
        fresh_headers = {"Authorization": f"Bearer {fresh.json()['access_token']}"}

    retired = app_settings.model_copy(update={"jwt_signing_keys": [new_key]})
    async with api_client_for(retired) as client:
        assert_error(await client.get("/auth/me", headers=old_token), 401, "invalid_token")
        assert (await client.get("/auth/me", headers=fresh_headers)).status_code == 200


async def test_expired_access_token_is_refused(
    app_settings: Settings, api_client: httpx.AsyncClient, new_seller: NewSeller
) -> None:
    seller = await new_seller()
    keyring = AccessTokenKeyring(app_settings.jwt_signing_keys, ttl=timedelta(minutes=15))
    me = (await api_client.get("/auth/me", headers=seller.headers)).json()
    stale = keyring.issue(
        user_id=uuid.UUID(me["user"]["id"]),
        seller_id=seller.seller_id,
        now=datetime.now(UTC) - timedelta(hours=1),
    )

    response = await api_client.get("/auth/me", headers={"Authorization": f"Bearer {stale}"})

    assert_error(response, 401, "invalid_token")
