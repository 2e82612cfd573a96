"""Login protection over HTTP (issue 12): a concurrent burst gets no more password checks
than a sequential one, an attacker cannot lock the owner out, and an address that never
logged in must solve a proof-of-work challenge once the account is under attack."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from pixecom_core.security.login_challenges import LoginChallenges
from pixecom_core.security.passwords import verify_password
from pixecom_core.settings import Settings
from tests.app.conftest import PASSWORD, ClientFactory, NewSeller
from tests.app.test_auth import assert_error

#: Pair limit, slow-down and challenge thresholds small enough for quick tests; delays in
#: milliseconds, a challenge a few thousand hashes at most.
PROTECTION = {
    "login_ip_rate": "1000/minute",
    "login_max_failures": 3,
    "login_lockout_seconds": 120,
    "login_slowdown_after_failures": 2,
    "login_slowdown_base_seconds": 0.01,
    "login_slowdown_max_seconds": 0.04,
    "login_challenge_after_failures": 6,
    "login_challenge_max_number": 5000,
}


def protected(settings: Settings, **overrides: object) -> Settings:
    return settings.model_copy(update={**PROTECTION, **overrides})


async def log_in(
    client: httpx.AsyncClient,
    email: str,
    password: str,
    *,
    ip: str | None = None,
    altcha: str | None = None,
) -> httpx.Response:
    """A login from ``ip`` (through the trusted loopback proxy); none: from 127.0.0.1,
    where the seller fixture logged in, so a known address."""
    body: dict[str, Any] = {"email": email, "password": password}
    if altcha is not None:
        body["altcha"] = altcha
    headers = {"X-Forwarded-For": ip} if ip else {}
    return await client.post("/auth/login", json=body, headers=headers)


def solve(challenge: dict[str, Any]) -> str:
    """The client's side of ALTCHA, written from its format (not from core's solver)."""
    for number in range(challenge["maxnumber"] + 1):
        digest = hashlib.sha256(f"{challenge['salt']}{number}".encode()).hexdigest()
        if digest == challenge["challenge"]:
            payload = {
                "algorithm": challenge["algorithm"],
                "challenge": challenge["challenge"],
                "number": number,
                "salt": challenge["salt"],
                "signature": challenge["signature"],
            }
            return base64.b64encode(json.dumps(payload).encode()).decode()
    raise AssertionError("unsolvable challenge")


async def fetch_solution(client: httpx.AsyncClient) -> str:
    response = await client.get("/auth/challenge")
    assert response.status_code == 200, response.text
    return solve(response.json())


async def attack(client: httpx.AsyncClient, email: str, ips: list[str], per_ip: int) -> None:
    """Wrong passwords for ``email``: ``per_ip`` from each address, all evaluated."""
    for ip in ips:
        for _ in range(per_ip):
            assert_error(await log_in(client, email, "guess", ip=ip), 401, "invalid_credentials")


async def test_a_concurrent_burst_gets_no_more_password_checks_than_the_limit(
    app_settings: Settings,
    api_client_for: ClientFactory,
    new_seller: NewSeller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = 5
    settings = protected(
        app_settings,
        login_max_failures=limit,
        login_slowdown_after_failures=1000,
        login_challenge_after_failures=1000,
    )
    checks: list[str] = []

    def counting_verify(password_hash: str | None, password: str) -> bool:
        checks.append(password)
        return verify_password(password_hash, password)

    # Every argon2 check a login makes goes through this name.
    monkeypatch.setattr("pixecom_core.accounts.service.verify_password", counting_verify)
    async with api_client_for(settings) as client:
        seller = await new_seller(client=client)
        checks.clear()

        responses = await asyncio.gather(
            *(log_in(client, seller.email, f"guess {i}", ip="203.0.113.7") for i in range(50))
        )

    assert Counter(r.status_code for r in responses) == {401: limit, 429: 50 - limit}
    assert len(checks) == limit  # the argon2 work is what is rationed
    for refused in (r for r in responses if r.status_code == 429):
        assert_error(refused, 429, "account_locked")
        assert 0 < int(refused.headers["Retry-After"]) <= settings.login_lockout_seconds


async def test_an_attacker_elsewhere_does_not_lock_the_owner_out(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    async with api_client_for(protected(app_settings)) as client:
        seller = await new_seller(client=client)  # logged in from 127.0.0.1: known
        # Past the slow-down and the challenge threshold, from two addresses…
        await attack(client, seller.email, ["203.0.113.7", "203.0.113.8"], per_ip=3)
        # …each of which is now locked for this account, and a third is challenged.
        assert_error(
            await log_in(client, seller.email, "guess", ip="203.0.113.7"), 429, "account_locked"
        )
        assert_error(
            await log_in(client, seller.email, "guess", ip="203.0.113.9"),
            401,
            "challenge_required",
        )

        # The owner, from the address they logged in from before, with the right password.
        owner = await log_in(client, seller.email, PASSWORD)
        also_owner = await log_in(client, seller.email, PASSWORD)

    assert owner.status_code == 200, owner.text
    assert also_owner.status_code == 200, also_owner.text


async def test_a_new_address_past_the_threshold_solves_a_challenge_and_gets_in(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    async with api_client_for(protected(app_settings)) as client:
        seller = await new_seller(client=client)
        await attack(client, seller.email, ["203.0.113.7", "203.0.113.8"], per_ip=3)
        traveller = "198.51.100.20"

        asked = await log_in(client, seller.email, PASSWORD, ip=traveller)
        assert_error(asked, 401, "challenge_required")
        assert "/auth/challenge" in asked.json()["error"]["message"]

        issued = await client.get("/auth/challenge")
        assert issued.status_code == 200, issued.text
        assert issued.headers["Cache-Control"] == "no-store"
        challenge = issued.json()
        assert challenge["algorithm"] == "SHA-256"
        assert challenge["maxnumber"] == PROTECTION["login_challenge_max_number"]
        assert "?expires=" in challenge["salt"]

        solved = await log_in(client, seller.email, PASSWORD, ip=traveller, altcha=solve(challenge))
        assert solved.status_code == 200, solved.text
        # That address is known now: no challenge the next time.
        again = await log_in(client, seller.email, PASSWORD, ip=traveller)
        assert again.status_code == 200, again.text


async def test_a_solved_challenge_is_spent_even_by_a_wrong_password(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    async with api_client_for(protected(app_settings)) as client:
        seller = await new_seller(client=client)
        await attack(client, seller.email, ["203.0.113.7", "203.0.113.8"], per_ip=3)
        solution = await fetch_solution(client)

        wrong = await log_in(client, seller.email, "guess", ip="203.0.113.30", altcha=solution)
        replayed = await log_in(client, seller.email, PASSWORD, ip="203.0.113.31", altcha=solution)

    assert_error(wrong, 401, "invalid_credentials")
    assert_error(replayed, 401, "invalid_challenge")
    assert "already used" in replayed.json()["error"]["message"]


async def test_a_replayed_solution_is_refused(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    async with api_client_for(protected(app_settings)) as client:
        seller = await new_seller(client=client)
        await attack(client, seller.email, ["203.0.113.7", "203.0.113.8"], per_ip=3)
        solution = await fetch_solution(client)

        first = await log_in(client, seller.email, PASSWORD, ip="198.51.100.21", altcha=solution)
        replayed = await log_in(client, seller.email, PASSWORD, ip="198.51.100.22", altcha=solution)

    assert first.status_code == 200, first.text
    assert_error(replayed, 401, "invalid_challenge")


async def test_forged_tampered_and_expired_challenges_are_refused(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    settings = protected(app_settings)
    ours = LoginChallenges.for_settings(settings)
    someone_elses = LoginChallenges(b"not the server's key", max_number=50, ttl_seconds=300)
    forged = solve(someone_elses.issue().as_json())
    expired = solve(ours.issue(now=time.time() - 3600).as_json())
    async with api_client_for(settings) as client:
        seller = await new_seller(client=client)
        await attack(client, seller.email, ["203.0.113.7", "203.0.113.8"], per_ip=3)
        genuine = json.loads(base64.b64decode(await fetch_solution(client)))
        wrong_number = base64.b64encode(
            json.dumps({**genuine, "number": genuine["number"] + 1}).encode()
        ).decode()
        later_salt = genuine["salt"].replace("expires=", "expires=9")
        stretched = base64.b64encode(json.dumps({**genuine, "salt": later_salt}).encode()).decode()

        answers = {
            name: await log_in(client, seller.email, PASSWORD, ip="198.51.100.23", altcha=payload)
            for name, payload in {
                "forged": forged,
                "expired": expired,
                "wrong number": wrong_number,
                "stretched expiry": stretched,
                "not base64": "%%%",
            }.items()
        }

    for name, answer in answers.items():
        assert answer.status_code == 401, (name, answer.text)
        assert answer.json()["error"]["code"] == "invalid_challenge", name
    assert "expired" in answers["expired"].json()["error"]["message"]
    assert "not issued by this server" in answers["forged"].json()["error"]["message"]


async def test_challenge_route_is_documented(api_client: httpx.AsyncClient) -> None:
    document = (await api_client.get("/openapi.json")).json()

    operation = document["paths"]["/auth/challenge"]["get"]
    login_body = document["components"]["schemas"]["Credentials"]["properties"]

    assert "200" in operation["responses"] and "429" in operation["responses"]
    assert "altcha" in login_body
