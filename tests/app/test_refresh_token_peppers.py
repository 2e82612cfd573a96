"""The refresh-token pepper rotates without logging sellers out (issue 12, item 8).

Each test logs a seller in under one pepper list, then runs the API again under another,
the way an operator's restart after editing ``PIXECOM_REFRESH_TOKEN_PEPPERS`` would.
"""

from __future__ import annotations

import secrets

import httpx
import psycopg
from pydantic import SecretStr

from pixecom_core.security.refresh_tokens import RefreshTokenHasher
from pixecom_core.settings import Settings
from tests.app.conftest import ClientFactory, NewSeller
from tests.app.test_auth import assert_error


def with_peppers(settings: Settings, *peppers: SecretStr) -> Settings:
    return settings.model_copy(update={"refresh_token_peppers": list(peppers)})


def new_pepper() -> SecretStr:
    return SecretStr(secrets.token_urlsafe(48))


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


async def test_a_token_issued_under_the_old_pepper_refreshes_during_the_overlap(
    app_settings: Settings,
    api_client_for: ClientFactory,
    new_seller: NewSeller,
    database_owner_dsn: str,
) -> None:
    old, new = app_settings.refresh_token_peppers[0], new_pepper()
    async with api_client_for(with_peppers(app_settings, old)) as before:
        seller = await new_seller(client=before)

    async with api_client_for(with_peppers(app_settings, new, old)) as during:
        rotated = await refresh(during, seller.refresh_token)
        assert rotated.status_code == 200, rotated.text
        successor = rotated.json()["refresh_token"]
        headers = {"Authorization": f"Bearer {rotated.json()['access_token']}"}
        assert (await during.get("/auth/me", headers=headers)).status_code == 200

    # The successor is stored under the new pepper: the old one alone no longer finds it.
    with psycopg.connect(database_owner_dsn) as conn:
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT token_hash FROM refresh_tokens WHERE seller_id = %s",
                (seller.seller_id,),
            )
        }
    assert RefreshTokenHasher([new]).hash(successor) in stored
    assert RefreshTokenHasher([old]).hash(successor) not in stored
    async with api_client_for(with_peppers(app_settings, old)) as rolled_back:
        assert_error(await refresh(rolled_back, successor), 401, "invalid_token")


async def test_a_token_of_a_dropped_pepper_is_refused(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    old, new = app_settings.refresh_token_peppers[0], new_pepper()
    async with api_client_for(with_peppers(app_settings, old)) as before:
        seller = await new_seller(client=before)

    async with api_client_for(with_peppers(app_settings, new)) as after:
        assert_error(await refresh(after, seller.refresh_token), 401, "invalid_token")
        out = await after.post("/auth/logout", json={"refresh_token": seller.refresh_token})
        assert_error(out, 401, "invalid_token")


async def test_reuse_is_detected_across_a_rotation(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    old, new = app_settings.refresh_token_peppers[0], new_pepper()
    async with api_client_for(with_peppers(app_settings, old)) as before:
        seller = await new_seller(client=before)
        # Rotated before the pepper changes: the spent token is stored under the old one.
        spent_before = seller.refresh_token
        first = await refresh(before, spent_before)
        assert first.status_code == 200, first.text

    async with api_client_for(with_peppers(app_settings, new, old)) as during:
        second = await refresh(during, first.json()["refresh_token"])
        assert second.status_code == 200, second.text
        # A copy of the token spent before the rotation comes back: the login ends.
        assert_error(await refresh(during, spent_before), 401, "refresh_token_reused")
        current = await refresh(during, second.json()["refresh_token"])
        assert_error(current, 401, "session_revoked")


async def test_reuse_of_a_token_spent_after_the_rotation_is_detected(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    old, new = app_settings.refresh_token_peppers[0], new_pepper()
    async with api_client_for(with_peppers(app_settings, old)) as before:
        seller = await new_seller(client=before)

    async with api_client_for(with_peppers(app_settings, new, old)) as during:
        rotated = await refresh(during, seller.refresh_token)
        assert rotated.status_code == 200, rotated.text
        assert_error(await refresh(during, seller.refresh_token), 401, "refresh_token_reused")
        current = await refresh(during, rotated.json()["refresh_token"])
        assert_error(current, 401, "session_revoked")


async def test_logout_finds_a_token_of_the_old_pepper_during_the_overlap(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    old, new = app_settings.refresh_token_peppers[0], new_pepper()
    async with api_client_for(with_peppers(app_settings, old)) as before:
        seller = await new_seller(client=before)

    async with api_client_for(with_peppers(app_settings, new, old)) as during:
        out = await during.post("/auth/logout", json={"refresh_token": seller.refresh_token})
        assert out.status_code == 204, out.text
        assert_error(await refresh(during, seller.refresh_token), 401, "session_revoked")
