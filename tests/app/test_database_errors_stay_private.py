"""No error answer carries text from the database (issue 12 item 5).

A route that fails inside PostgreSQL raises an exception whose text holds the statement,
its parameters and the server's message ("bigint out of range", a column name). Whatever
status the failure maps to — 422, 503 or 500 — the body says what the client can do in
the API's words; the details go to the server log only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import psycopg
import psycopg.errors
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import exc as sa_exc

from pixecom_core.settings import Settings
from reference_app.api import create_app

STATEMENT = "UPDATE sellpage_stats_daily SET revenue_minor = revenue_minor + %(amount)s"
PARAMETERS = {"amount": 9_223_372_036_854_775_807}
#: Pieces of the database's text; none may reach a client.
LEAKS = ("sellpage_stats_daily", "revenue_minor", "UPDATE", "SQL", "bigint", "psycopg", "9223")


def wrapped(error: type[sa_exc.DBAPIError], cause: Exception) -> Callable[[], Exception]:
    return lambda: error(STATEMENT, PARAMETERS, cause)


FAILURES: dict[str, tuple[Callable[[], Exception], int]] = {
    "numeric-overflow": (
        wrapped(sa_exc.DataError, psycopg.errors.NumericValueOutOfRange("bigint out of range")),
        422,
    ),
    "nul-in-text": (
        wrapped(sa_exc.DataError, psycopg.errors.UntranslatableCharacter("bigint \\u0000")),
        422,
    ),
    "statement-timeout": (
        wrapped(sa_exc.OperationalError, psycopg.errors.QueryCanceled("bigint canceled")),
        503,
    ),
    "lock-timeout": (
        wrapped(sa_exc.OperationalError, psycopg.errors.LockNotAvailable("bigint lock")),
        503,
    ),
    "connection-lost": (
        wrapped(sa_exc.OperationalError, psycopg.OperationalError("bigint server closed")),
        503,
    ),
    "unique-violation": (
        wrapped(sa_exc.IntegrityError, psycopg.errors.UniqueViolation("bigint key (id)")),
        500,
    ),
    "undefined-column": (
        wrapped(sa_exc.ProgrammingError, psycopg.errors.UndefinedColumn("bigint column")),
        500,
    ),
    "raw-driver-error": (lambda: psycopg.errors.NumericValueOutOfRange(STATEMENT), 500),
}


@pytest.fixture
async def failing_client(app_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app plus a test-only route raising each database failure by name."""
    app = create_app(app_settings)

    @app.get("/test-only/database/{name}")
    async def fail(name: str) -> None:
        raise FAILURES[name][0]()

    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, raise_app_exceptions=False),
            base_url="http://pixecom.test",
        ) as client,
    ):
        yield client


@pytest.mark.parametrize("name", FAILURES)
async def test_a_database_failure_is_answered_without_its_text(
    failing_client: httpx.AsyncClient, name: str
) -> None:
    response = await failing_client.get(f"/test-only/database/{name}")

    assert response.status_code == FAILURES[name][1], response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["message"] and error["request_id"]
    # The request id is random: it may hold "9223" itself (about one run in 300).
    answered = response.text.replace(error["request_id"], "<request id>").lower()
    for leak in LEAKS:
        assert leak.lower() not in answered, (leak, response.text)
