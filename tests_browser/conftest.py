"""Fixtures for the dashboard's browser tests: the real app on loopback, seeded sellers,
and headless Chromium driven by Playwright.

The app is the one ``create_app`` builds, served by uvicorn on a free loopback port
against this run's migrated PostgreSQL database and Redis (the fixtures of
``tests/conftest.py``). The browser is the system's Chromium (Debian's ``chromium``
package; ``PIXECOM_CHROMIUM`` names another binary): Playwright's own browser downloads
need the internet, which these machines do not have.

Screenshots of every page go to ``$PIXECOM_ARTIFACTS_DIR/browser`` (default
``.pixecom/artifacts/browser``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import Ledger
from pixecom_core.plugins import create_plugin_manager
from pixecom_core.settings import Settings
from reference_app.api import create_app
from tests.conftest import (  # noqa: F401  (fixtures, re-exported for this directory)
    app_engine,
    database,
    database_owner_dsn,
    only_the_test_gateway,
    servers,
    settings,
)
from tests.ledger import fakepay
from tests_browser.seed import (
    PASSWORD,
    PLAN_A,
    PLAN_B,
    AttributedNumbers,
    SeededSeller,
    seed,
    seed_attributed_numbers,
    sign_up,
)

ROOT = Path(__file__).resolve().parent.parent
#: How Chromium logs a 4xx answer ("… responded with a status of 422 (Unprocessable …)").
REFUSED = re.compile(r"status of 4\d\d\b")


def chromium_path() -> str:
    """The Chromium binary to drive; fails (never skips) with what to install."""
    configured = os.environ.get("PIXECOM_CHROMIUM")
    for candidate in (configured, "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    pytest.fail(
        "no Chromium found: install Debian's package (`apt-get install -y chromium`) or set "
        "PIXECOM_CHROMIUM to a Chromium/Chrome binary"
    )


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where screenshots are written (git-ignored)."""
    base = Path(os.environ.get("PIXECOM_ARTIFACTS_DIR", ROOT / ".pixecom" / "artifacts"))
    directory = base / "browser"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="session")
def admin_key() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture(scope="session")
def live_settings(settings: Settings, admin_key: str) -> Settings:  # noqa: F811
    """The run's settings with a Redis key prefix of this suite's own."""
    return settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-browser:{uuid.uuid4().hex}:",
            "admin_api_key": SecretStr(admin_key),
            # Every test logs in from 127.0.0.1, through the form and the API; the login
            # throttle itself is tested in tests/app/test_auth.py.
            "login_ip_rate": "1000/minute",
        }
    )


@pytest.fixture(scope="session")
def base_url(live_settings: Settings) -> Iterator[str]:
    """The real app, served by uvicorn on a free loopback port in a background thread."""
    manager = create_plugin_manager(load_entry_points=False, plugins=[fakepay])
    app = create_app(live_settings, plugin_manager=manager)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if server.started:
            break
        if not thread.is_alive():
            pytest.fail("the app did not start (see the log above)")
        threading.Event().wait(0.05)
    else:
        pytest.fail("the app did not start within 10 s")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass(frozen=True)
class World:
    """Two sellers with real numbers, served at ``base_url``."""

    base_url: str
    a: SeededSeller
    b: SeededSeller


@pytest.fixture(scope="session")
async def world(
    base_url: str,
    admin_key: str,
    live_settings: Settings,
    app_engine: AsyncEngine,  # noqa: F811
    database_owner_dsn: str,  # noqa: F811
) -> World:
    sessions = create_sessionmaker(app_engine)
    ledger = Ledger(
        sessions,
        live_settings,
        create_plugin_manager(load_entry_points=False, plugins=[fakepay]),
    )
    today = datetime.now(UTC).date()
    sellers = []
    for name, plan, currency in (("Acme Outdoor", PLAN_A, "USD"), ("Bravo Home", PLAN_B, "EUR")):
        seller = await sign_up(base_url, admin_key, name, currency)
        await seed(
            seller,
            plan,
            owner_dsn=database_owner_dsn,
            sessions=sessions,
            settings=live_settings,
            ledger=ledger,
            today=today,
        )
        sellers.append(seller)
    return World(base_url=base_url, a=sellers[0], b=sellers[1])


#: Makes a new USD seller, named as given, with issue 16's numbers on fixed days.
AttributedSellerFactory = Callable[[str], Awaitable[tuple[SeededSeller, AttributedNumbers]]]


@pytest.fixture(scope="session")
def attributed_seller(
    base_url: str,
    admin_key: str,
    live_settings: Settings,
    app_engine: AsyncEngine,  # noqa: F811
    database_owner_dsn: str,  # noqa: F811
) -> AttributedSellerFactory:
    """A factory of sellers with spend and revenue no sellpage or campaign can all claim
    (``seed_attributed_numbers``): each test that changes a seller's settings gets its own."""
    sessions = create_sessionmaker(app_engine)
    ledger = Ledger(
        sessions,
        live_settings,
        create_plugin_manager(load_entry_points=False, plugins=[fakepay]),
    )

    async def create(name: str) -> tuple[SeededSeller, AttributedNumbers]:
        seller = await sign_up(base_url, admin_key, name, "USD")
        numbers = await seed_attributed_numbers(
            seller,
            owner_dsn=database_owner_dsn,
            sessions=sessions,
            settings=live_settings,
            ledger=ledger,
        )
        return seller, numbers

    return create


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (no storage shared with other tests)."""
    ctx = await browser.new_context(
        locale="en-US", timezone_id="UTC", viewport={"width": 1280, "height": 900}
    )
    yield ctx
    await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    """A page that fails the test on any uncaught script error or CSP violation.

    The browser also logs each 4xx answer as a console error: those are the API refusing
    a request (401 before a refresh, 404, 409, 422), which the pages show; they pass."""
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" and not REFUSED.search(message.text)
            else None
        ),
    )
    yield opened
    assert not problems, problems


class Shots:
    """Screenshots named after the test, numbered in order."""

    def __init__(self, directory: Path, test_name: str) -> None:
        self.directory = directory
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.count = 0

    async def take(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.prefix}-{self.count:02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(artifacts_dir: Path, request: pytest.FixtureRequest) -> Shots:
    return Shots(artifacts_dir, request.node.name)


async def log_in(page: Page, base_url: str, email: str, hash_route: str = "") -> None:
    """Log in through the login form and wait for the first page's heading."""
    await page.goto(f"{base_url}/dashboard/{hash_route}")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_selector("#main h1:not(:text('Log in'))")
    await wait_idle(page)


async def wait_idle(page: Page) -> None:
    """Wait until the view of the page's current route has rendered.

    Not-busy alone is not enough: right after a click on a link, the hashchange that starts
    the next render has not fired yet and main still shows the previous, finished view. The
    shell names the route it finished rendering in main's ``renderedRoute`` property.
    """
    await page.wait_for_function(
        """() => {
            const main = document.getElementById('main');
            return !main.hasAttribute('aria-busy') && main.renderedRoute === location.hash;
        }"""
    )


async def api_token(base_url: str, email: str) -> str:
    """An access token of the seller's own login, for reading the API directly."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        answer = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def api_get(base_url: str, token: str, path: str, **params: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        answer = await client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
