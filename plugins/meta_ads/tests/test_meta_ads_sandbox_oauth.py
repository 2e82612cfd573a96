"""The OAuth sandbox on its own: the hook the Graph routes call, its control endpoints and
Meta's wire format, spoken to over HTTP on loopback."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from meta_ads_support import login_app
from pixecom_meta_ads.client import shared_ssl_context
from pixecom_meta_ads.sandbox_oauth import (
    AD_SCOPES,
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    OAuthSandbox,
)

from pixecom_core.testing.loopback import serve

NOW = 1_900_000_000.0
CALLBACK = "https://shop.example/callback"
APP_TOKEN = f"{DEFAULT_APP_ID}|{DEFAULT_APP_SECRET}"


def account_profile(number: str) -> dict[str, Any]:
    return {"name": f"Account {number}", "currency": "EUR", "timezone_name": "Europe/Berlin"}


@dataclass
class Served:
    sandbox: OAuthSandbox
    http: httpx.AsyncClient

    async def token(self, *, scopes: str = "ads_read", user_id: str = "100001") -> str:
        """A short-lived token through the dialog and the code exchange."""
        answer = await self.http.post(
            "/v25.0/dialog/oauth",
            content=str(
                httpx.QueryParams(
                    [
                        ("client_id", DEFAULT_APP_ID),
                        ("redirect_uri", CALLBACK),
                        ("requested_scopes", scopes),
                        ("user_id", user_id),
                        *(("scope", scope) for scope in scopes.split(",") if scope),
                        ("decision", "approve"),
                    ]
                )
            ),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 302, answer.text
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        exchanged = await self.http.get(
            "/v25.0/oauth/access_token",
            params={
                "client_id": DEFAULT_APP_ID,
                "client_secret": DEFAULT_APP_SECRET,
                "redirect_uri": CALLBACK,
                "code": code,
            },
        )
        assert exchanged.status_code == 200, exchanged.text
        assert exchanged.json()["token_type"] == "bearer"
        assert exchanged.json()["expires_in"] == 7200
        token: str = exchanged.json()["access_token"]
        return token


@pytest.fixture(scope="module")
async def served_sandbox() -> AsyncIterator[tuple[OAuthSandbox, str]]:
    sandbox = OAuthSandbox(account_profile)
    async with serve(login_app(sandbox)) as url:
        yield sandbox, url


@pytest.fixture
async def served(served_sandbox: tuple[OAuthSandbox, str]) -> AsyncIterator[Served]:
    sandbox, url = served_sandbox
    async with httpx.AsyncClient(base_url=url, timeout=10, verify=shared_ssl_context()) as http:
        (await http.post("/_sandbox/reset")).raise_for_status()
        (await http.post("/_sandbox/clock", json={"now": NOW})).raise_for_status()
        yield Served(sandbox, http)


# -- token_problem, the hook of the Graph routes ----------------------------------------------


async def test_tokens_it_never_issued_pass_unless_told_otherwise(served: Served) -> None:
    assert served.sandbox.token_problem("EAAfixed-test-token") is None

    await served.http.post("/_sandbox/config", json={"refuse_unknown_tokens": True})
    problem = served.sandbox.token_problem("EAAfixed-test-token")

    assert problem is not None
    assert (problem.status, problem.code, problem.subcode) == (400, 190, 467)
    assert problem.envelope()["error"]["type"] == "OAuthException"


async def test_a_valid_token_passes_and_a_missing_permission_is_code_200(served: Served) -> None:
    token = await served.token(scopes="business_management")

    assert served.sandbox.token_problem(token) is None
    problem = served.sandbox.token_problem(token, any_of_scopes=AD_SCOPES)
    assert problem is not None
    assert problem.code == 200
    assert "ads_read" in problem.message


async def test_an_expired_token_is_code_190_463(served: Served) -> None:
    token = await served.token()
    await served.http.post("/_sandbox/clock", json={"advance_seconds": 7200})

    problem = served.sandbox.token_problem(token)

    assert problem is not None
    assert (problem.code, problem.subcode) == (190, 463)
    assert "Session has expired" in problem.message


@pytest.mark.parametrize(
    ("reason", "subcode"), [("app_removed", 458), ("password_changed", 460), ("logged_out", 467)]
)
async def test_revocation_reasons_pick_the_subcode(
    served: Served, reason: str, subcode: int
) -> None:
    token = await served.token()

    revoked = await served.http.post(
        "/_sandbox/oauth/tokens/revoke", json={"token": token, "reason": reason}
    )

    assert revoked.json() == {"revoked": 1}
    problem = served.sandbox.token_problem(token)
    assert problem is not None
    assert (problem.code, problem.subcode) == (190, subcode)


async def test_an_unconfirmed_users_tokens_are_code_190_464(served: Served) -> None:
    token = await served.token()
    await served.http.put(
        "/_sandbox/oauth/users/100001",
        json={"name": "Sandbox Seller", "accounts": {"1000": 1}, "confirmed": False},
    )

    problem = served.sandbox.token_problem(token)

    assert problem is not None
    assert problem.subcode == 464


# -- control endpoints ------------------------------------------------------------------------


async def test_the_token_list_hides_tokens_unless_asked(served: Served) -> None:
    token = await served.token()

    hidden = (await served.http.get("/_sandbox/oauth/tokens")).json()
    revealed = (await served.http.get("/_sandbox/oauth/tokens", params={"reveal": "true"})).json()

    assert token not in str(hidden)
    assert hidden[0]["status"] == "valid"
    assert hidden[0]["expires_at"] == pytest.approx(NOW + 7200, abs=60)
    assert revealed[0]["token"] == token
    by_id = await served.http.post(
        "/_sandbox/oauth/tokens/revoke", json={"token_id": hidden[0]["token_id"]}
    )
    assert by_id.json() == {"revoked": 1}


async def test_a_revocation_names_exactly_one_target(served: Served) -> None:
    response = await served.http.post("/_sandbox/oauth/tokens/revoke", json={})

    assert response.status_code == 422


# -- Meta's wire format -----------------------------------------------------------------------


async def test_ad_accounts_page_with_limit_and_cursors(served: Served) -> None:
    await served.http.put(
        "/_sandbox/oauth/users/100001",
        json={"name": "Many", "accounts": {str(number): 1 for number in range(2000, 2005)}},
    )
    token = await served.token()

    first = await served.http.get(
        "/v25.0/me/adaccounts",
        params={"access_token": token, "fields": "account_id,account_status", "limit": "3"},
    )
    body = first.json()
    second = (await served.http.get(body["paging"]["next"])).json()

    assert [row["account_id"] for row in body["data"]] == ["2000", "2001", "2002"]
    assert body["data"][0] == {"id": "act_2000", "account_id": "2000", "account_status": 1}
    assert [row["account_id"] for row in second["data"]] == ["2003", "2004"]
    assert "next" not in second["paging"] and second["paging"]["cursors"]["after"]


async def test_debug_token_describes_a_token_for_the_apps_own_token(served: Served) -> None:
    token = await served.token()

    data = (
        await served.http.get(
            "/v25.0/debug_token", params={"input_token": token, "access_token": APP_TOKEN}
        )
    ).json()["data"]
    refused = await served.http.get(
        "/v25.0/debug_token",
        params={"input_token": token, "access_token": f"{DEFAULT_APP_ID}|wrong"},
    )

    assert data["is_valid"] is True
    assert (data["app_id"], data["user_id"], data["type"]) == (DEFAULT_APP_ID, "100001", "USER")
    assert data["scopes"] == ["public_profile", "ads_read"]
    assert data["expires_at"] == pytest.approx(NOW + 7200, abs=60)
    assert data["data_access_expires_at"] == pytest.approx(NOW + 90 * 86400, abs=60)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == 190


async def test_an_expired_token_cannot_be_made_long_lived(served: Served) -> None:
    token = await served.token()
    await served.http.post("/_sandbox/clock", json={"advance_seconds": 7201})

    response = await served.http.get(
        "/v25.0/oauth/access_token",
        params={
            "grant_type": "fb_exchange_token",
            "client_id": DEFAULT_APP_ID,
            "client_secret": DEFAULT_APP_SECRET,
            "fb_exchange_token": token,
        },
    )

    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["error_subcode"]) == (
        190,
        463,
    )


async def test_removing_one_permission_takes_it_from_the_token(served: Served) -> None:
    token = await served.token()

    removed = await served.http.delete(
        "/v25.0/me/permissions/ads_read", params={"access_token": token}
    )
    listed = await served.http.get("/v25.0/me/adaccounts", params={"access_token": token})

    assert removed.json() == {"success": True}
    assert listed.status_code == 400
    assert listed.json()["error"]["code"] == 200
