"""The shipped nginx config, in front of the real API served by `pixecom serve`.

nginx runs as an ordinary process (own prefix, pid, logs and temp folders, no daemon)
on free loopback ports with a throwaway self-signed certificate; the API runs under
uvicorn on loopback. Clients connect from other loopback addresses (127.0.0.2 …) so
nginx, the app and the rate limits see distinct client IPs.

The micro-cache tests (issue 17 item 5) count what reached the API from the API's own
metrics, wait out the shipped cache lifetime rather than shorten it, and stop the API to
show that shoppers are served the last copy meanwhile.
"""

from __future__ import annotations

import re
import secrets
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pixecom_core.settings import Settings
from reference_app.simulate.edge import RenderedConfig, render, self_signed_certificate
from tests.cli.conftest import clean_environment
from tests.deploy.conftest import DEPLOY_DIR, free_loopback_port, require_binary

REPO_ROOT = Path(__file__).resolve().parents[2]
SITE = DEPLOY_DIR / "nginx" / "pixecom.conf"
PROXY_INCLUDE = DEPLOY_DIR / "nginx" / "pixecom_proxy.conf"
ONE_MIB = 1024 * 1024


def wait_for(
    url: str, process: subprocess.Popen[bytes], log: Path, *, timeout: float = 180.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"{process.args!r} exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(url, timeout=1.0, verify=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class ApiProcess:
    """`pixecom serve` on a loopback port; a test may stop it and start it again."""

    command: list[str]
    env: dict[str, str]
    log: Path
    url: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch the server (without waiting for it: see :meth:`wait_until_up`)."""
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=REPO_ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def wait_until_up(self) -> None:
        assert self.process is not None, "start() first"
        wait_for(f"{self.url}/healthz", self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


def proxy_client(https_url: str, cert: Path, source: str) -> httpx.Client:
    """A client connecting to nginx at ``https_url`` from loopback address ``source``."""
    context = ssl.create_default_context(cafile=str(cert))
    transport = httpx.HTTPTransport(local_address=source, verify=context)
    return httpx.Client(base_url=https_url, transport=transport, timeout=30.0)


def start_nginx(nginx: Path, rendered: RenderedConfig, log: Path) -> subprocess.Popen[bytes]:
    """nginx in the foreground on ``rendered``'s config (stop it with :func:`stop`)."""
    return subprocess.Popen(
        [str(nginx), "-p", str(rendered.prefix), "-c", str(rendered.main), "-g", "daemon off;"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


@dataclass(frozen=True)
class Stack:
    https_url: str
    http_url: str
    api_url: str
    cert: Path
    access_log: Path
    api: ApiProcess
    admin_key: str

    def client(self, source: str) -> httpx.Client:
        """A client connecting to nginx from loopback address ``source``."""
        return proxy_client(self.https_url, self.cert, source)


@pytest.fixture(scope="module")
def stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API (`pixecom serve`, two uvicorn workers) behind the shipped nginx config."""
    nginx = require_binary("nginx", apt_package="nginx")
    work = tmp_path_factory.mktemp("nginx")
    cert, key = self_signed_certificate(work)
    api_port, http_port, https_port = (free_loopback_port() for _ in range(3))
    admin_key = secrets.token_urlsafe(32)
    assert settings.database_url and settings.redis_url
    secret = {
        "PIXECOM_JWT_SIGNING_KEYS": f'["{settings.jwt_signing_keys[0].get_secret_value()}"]',
        "PIXECOM_TOKEN_ENCRYPTION_KEYS": (
            f'["{settings.token_encryption_keys[0].get_secret_value()}"]'
        ),
        "PIXECOM_REFRESH_TOKEN_PEPPERS": (
            f'["{settings.refresh_token_peppers[0].get_secret_value()}"]'
        ),
    }
    env = clean_environment(
        PIXECOM_MODE="test",
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        PIXECOM_APP_ROLE=settings.app_role,
        PIXECOM_REDIS_KEY_PREFIX=f"pixecom-test:{uuid.uuid4().hex}:",
        # Small enough to reach in a test: proves the app keys limits on the real client.
        PIXECOM_LOGIN_IP_RATE="3/minute",
        PIXECOM_LOAD_PLUGINS="",
        PIXECOM_PLUGIN_MODULES="tests.ledger.fakepay",
        PYTHONPATH=str(REPO_ROOT),
        # Sign-up is closed outside dev mode without it; the cache tests make a seller.
        PIXECOM_ADMIN_API_KEY=admin_key,
        **secret,
    )
    api_log, proxy_log = work / "api.log", work / "nginx.log"
    api = ApiProcess(
        command=[
            str(Path(sys.executable).parent / "pixecom"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(api_port),
            "--workers",
            "2",
        ],
        env=env,
        log=api_log,
        url=f"http://127.0.0.1:{api_port}",
    )
    api.start()
    rendered = render(
        work, cert=cert, key=key, http_port=http_port, https_port=https_port, api_port=api_port
    )
    proxy = start_nginx(nginx, rendered, proxy_log)
    try:
        api.wait_until_up()
        wait_for(f"https://127.0.0.1:{https_port}/healthz", proxy, proxy_log)
        yield Stack(
            https_url=f"https://127.0.0.1:{https_port}",
            http_url=f"http://127.0.0.1:{http_port}",
            api_url=api.url,
            cert=cert,
            access_log=rendered.access_log,
            api=api,
            admin_key=admin_key,
        )
    finally:
        stop(proxy)
        api.stop()


def test_nginx_accepts_the_shipped_config(tmp_path: Path) -> None:
    nginx = require_binary("nginx", apt_package="nginx")
    cert, key = self_signed_certificate(tmp_path)
    rendered = render(tmp_path, cert=cert, key=key)  # ports and upstreams as shipped

    checked = subprocess.run(
        [str(nginx), "-t", "-p", str(rendered.prefix), "-c", str(rendered.main)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_nginx_refuses_a_broken_config(tmp_path: Path) -> None:
    """The check above can fail: a config with an unknown directive is refused."""
    nginx = require_binary("nginx", apt_package="nginx")
    cert, key = self_signed_certificate(tmp_path)
    rendered = render(tmp_path, cert=cert, key=key)
    site = tmp_path / "pixecom.conf"
    site.write_text(site.read_text().replace("client_max_body_size 1m;", "client_max_body 1m;"))

    checked = subprocess.run(
        [str(nginx), "-t", "-p", str(rendered.prefix), "-c", str(rendered.main)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode != 0
    assert "client_max_body" in checked.stderr


def test_the_proxy_body_limit_matches_the_app_setting(stack: Stack) -> None:
    assert Settings.model_fields["max_body_bytes"].default == ONE_MIB
    with stack.client("127.0.0.5") as client:
        over = client.post(
            "/auth/login", content=b"x" * (ONE_MIB + 1), headers={"Content-Type": "text/plain"}
        )
        at_limit = client.post(
            "/auth/login", content=b"x" * ONE_MIB, headers={"Content-Type": "application/json"}
        )

    assert over.status_code == 413
    assert over.json()["error"]["code"] == "payload_too_large"
    assert "proxy limit" in over.json()["error"]["message"]
    # Exactly the limit passes nginx; the app reads it and rejects it as bad JSON.
    assert at_limit.status_code == 422, at_limit.text
    assert "proxy" not in at_limit.text


def test_the_app_sees_the_client_address_not_a_forged_one(stack: Stack) -> None:
    """The login per-IP limit (3/minute here) counts the real client behind nginx: a
    client cannot reset it by sending its own X-Forwarded-For, and a second client
    behind the same proxy is not punished for the first one."""

    def attempt(client: httpx.Client, forged: str | None = None) -> httpx.Response:
        headers = {"X-Forwarded-For": forged} if forged else {}
        return client.post(
            "/auth/login",
            json={"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "wrong-1"},
            headers=headers,
        )

    with stack.client("127.0.0.2") as first, stack.client("127.0.0.3") as second:
        answers = [attempt(first, forged=f"198.51.100.{n}") for n in range(5)]
        other = attempt(second)

    assert [a.status_code for a in answers[:3]] == [401, 401, 401], [a.text for a in answers]
    assert [a.status_code for a in answers[3:]] == [429, 429]
    assert "proxy" not in answers[3].json()["error"]["message"]  # the app's own limit
    assert other.status_code == 401, other.text


def test_public_routes_are_rate_limited_at_the_proxy(stack: Stack) -> None:
    with stack.client("127.0.0.6") as client, ThreadPoolExecutor(max_workers=40) as pool:
        # All at once: rate 10/s with a burst of 20 (nodelay) lets about 21 through.
        responses = list(
            pool.map(lambda n: client.get(f"/public/sellpages/no-such-{n}"), range(40))
        )

    statuses = [response.status_code for response in responses]
    assert set(statuses) == {404, 429}
    # At least the burst passes; more only as the bucket refills while requests arrive.
    assert statuses.count(404) >= 21, statuses
    limited = next(response for response in responses if response.status_code == 429)
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["error"]["code"] == "rate_limited"
    assert "proxy limit" in limited.json()["error"]["message"]
    assert limited.json()["error"]["request_id"] == limited.headers["X-Request-ID"]


def test_login_is_rate_limited_more_strictly_at_the_proxy(stack: Stack) -> None:
    with stack.client("127.0.0.7") as client:
        # Invalid bodies: the app answers 422 without counting a login attempt, so every
        # 429 here comes from nginx.
        statuses = [client.post("/auth/login", json={}).status_code for _ in range(15)]

    assert statuses[:11] == [422] * 11  # 30/minute with a burst of 10
    assert statuses[11:] == [429] * 4


def test_http_redirects_to_https(stack: Stack) -> None:
    response = httpx.get(f"{stack.http_url}/public/sellpages/x?utm=1", follow_redirects=False)

    assert response.status_code == 301
    assert response.headers["Location"] == "https://127.0.0.1/public/sellpages/x?utm=1"


def test_metrics_are_only_served_to_the_internal_network(stack: Stack) -> None:
    with stack.client("127.0.0.8") as outsider, stack.client("127.0.0.1") as local:
        refused = outsider.get("/metrics")
        allowed = local.get("/metrics")

    assert refused.status_code == 403
    assert allowed.status_code != 403  # reached the app (200, or 404 before /metrics exists)
    assert allowed.headers.get("X-Request-ID")


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when it is absent)."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


def test_one_scrape_adds_up_every_api_process_on_the_port(stack: Stack) -> None:
    """`pixecom serve --workers 2` is one scrape target: whichever process accepts the
    scrape reports the requests both served and counts both processes."""

    def fresh(path: str) -> httpx.Response:
        # A new connection each time, so the kernel hands it to either process.
        return httpx.get(f"{stack.api_url}{path}", headers={"Connection": "close"})

    def healthz_count(exposition: str) -> float:
        return sample(
            exposition,
            "pixecom_http_request_duration_seconds_count",
            method="GET",
            route="/healthz",
            status_class="2xx",
        )

    before = healthz_count(fresh("/metrics").text)
    for _ in range(40):
        assert fresh("/healthz").status_code == 200
    scrapes = [fresh("/metrics") for _ in range(8)]

    assert {answer.status_code for answer in scrapes} == {200}
    assert [sample(a.text, "pixecom_api_processes") for a in scrapes] == [2.0] * 8
    assert [healthz_count(a.text) - before for a in scrapes] == [40.0] * 8
    # Pools add up too: two processes, each keeping its configured pool.
    sizes = {sample(a.text, "pixecom_db_pool_size_connections") for a in scrapes}
    assert len(sizes) == 1 and sizes.pop() % 2 == 0


def test_request_ids_pass_through_or_are_generated(stack: Stack) -> None:
    given = f"req-{secrets.token_hex(8)}"
    with stack.client("127.0.0.9") as client:
        passed = client.get("/public/sellpages/nothing-here", headers={"X-Request-ID": given})
        generated = client.get("/public/sellpages/nothing-here-either")

    assert passed.status_code == 404
    assert passed.headers["X-Request-ID"] == given
    assert passed.json()["error"]["request_id"] == given
    made = generated.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert generated.json()["error"]["request_id"] == made  # the app used nginx's id
    deadline = time.monotonic() + 5
    while f"rid={made}" not in stack.access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"rid={made}" in stack.access_log.read_text()
    assert f"rid={given}" in stack.access_log.read_text()


# -- Micro-cache of the public sellpages (issue 17 item 5) --------------------------------

PASSWORD = "correct horse battery staple"
#: An order a shopper places from a page (the test gateway the stack loads).
ORDER = {
    "gateway": "fakepay",
    "customer_email": "shopper@example.com",
    "quantity": 1,
    "return_url": "https://shop.example.com/thanks",
    "cancel_url": "https://shop.example.com/cart",
}
#: The routes whose answers nginx keeps, by the API's route template (its metrics label).
PAGE_ROUTES = ("/s/{slug}", "/public/sellpages/{slug}")


def cache_ttl_seconds() -> int:
    """How long nginx keeps a page, as shipped: the tests wait it out, not shorten it."""
    found = re.search(r"proxy_cache_valid 200 301 404 (\d+)s;", SITE.read_text())
    assert found, "the shipped config no longer caches 200/301/404 for a number of seconds"
    return int(found.group(1))


def tracking_query(click: int) -> str:
    """What an ad appends to a page's address: different on every click."""
    return (
        "?utm_source=facebook&utm_medium=paid_social&utm_campaign=spring"
        f"&utm_content=variant-{click % 7}&campaign_id=120000001&adset_id=120000002"
        f"&ad_id=12000000{click % 5}&fbclid=IwAR{secrets.token_hex(8)}"
    )


def requests_served(stack: Stack) -> Counter[tuple[str, str]]:
    """How many requests the API processes answered, by (method, route template), every
    status: from their own metrics, not from anything nginx says."""
    exposition = httpx.get(f"{stack.api_url}/metrics", headers={"Connection": "close"}).text
    served: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            # Scrapes count themselves; they are this function's, not the tests'.
            if (
                found.name == "pixecom_http_request_duration_seconds_count"
                and found.labels["route"] != "/metrics"
            ):
                served[(found.labels["method"], found.labels["route"])] += int(found.value)
    return served


def requests_served_since(
    stack: Stack, before: Counter[tuple[str, str]]
) -> Counter[tuple[str, str]]:
    """The requests the API answered since ``before`` was read."""
    # The app counts a request once its answer is sent, a moment after nginx has relayed
    # it: let the last ones land first.
    time.sleep(0.5)
    return requests_served(stack) - before


@dataclass(frozen=True)
class SellerApi:
    """A signed-up seller calling the API directly (the dashboard's calls, not nginx's)."""

    http: httpx.Client
    headers: dict[str, str]

    def published_page(self, title: str) -> dict[str, str]:
        """A product with a price and a published sellpage selling it."""
        product = self.http.post(
            "/products",
            json={"sku": f"SKU-{uuid.uuid4().hex[:10].upper()}", "name": "Linen shirt"},
            headers=self.headers,
        )
        assert product.status_code == 201, product.text
        price = self.http.post(
            f"/products/{product.json()['id']}/prices",
            json={"price_minor": 2500, "currency": "USD"},
            headers=self.headers,
        )
        assert price.status_code == 201, price.text
        page = self.http.post(
            "/sellpages",
            json={
                "slug": f"page-{uuid.uuid4().hex[:12]}",
                "title": title,
                "product_id": product.json()["id"],
                "content": {"hero": "Cool in the heat"},
                "status": "PUBLISHED",
            },
            headers=self.headers,
        )
        assert page.status_code == 201, page.text
        created: dict[str, str] = page.json()
        return created

    def retitle(self, sellpage_id: str, title: str) -> None:
        changed = self.http.patch(
            f"/sellpages/{sellpage_id}", json={"title": title}, headers=self.headers
        )
        assert changed.status_code == 200, changed.text


@pytest.fixture(scope="module")
def seller(stack: Stack) -> Iterator[SellerApi]:
    email = f"owner-{uuid.uuid4().hex[:12]}@example.com"
    with httpx.Client(base_url=stack.api_url, timeout=30.0) as http:
        created = http.post(
            "/auth/signup",
            json={
                "seller_name": f"Seller {email}",
                "reporting_currency": "USD",
                "email": email,
                "password": PASSWORD,
            },
            headers={"X-Admin-Key": stack.admin_key},
        )
        assert created.status_code == 201, created.text
        tokens = http.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert tokens.status_code == 200, tokens.text
        yield SellerApi(http, {"Authorization": f"Bearer {tokens.json()['access_token']}"})


@pytest.mark.parametrize(("route", "network"), [(PAGE_ROUTES[0], 1), (PAGE_ROUTES[1], 2)])
def test_a_burst_of_ad_clicks_reaches_the_api_a_handful_of_times(
    stack: Stack, seller: SellerApi, route: str, network: int
) -> None:
    """2,000 views of one page from 200 shoppers (each its own address and connection,
    50 at once, every click with its own tracking parameters) while the page is cold:
    nginx asks the API once, and again at most once per cache lifetime."""
    path = route.format(slug=seller.published_page("Summer sale")["slug"])
    shoppers, views_each = 200, 10
    before = requests_served(stack)

    def shopper(n: int) -> list[httpx.Response]:
        # One address per shopper, as the per-IP rate limit expects of real traffic.
        with stack.client(f"127.{network}.{n // 200}.{n % 200 + 1}") as client:
            return [
                client.get(path + tracking_query(n * views_each + view))
                for view in range(views_each)
            ]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        views = [view for batch in pool.map(shopper, range(shoppers)) for view in batch]
    took = time.monotonic() - started
    reached = requests_served_since(stack, before)[("GET", route)]

    assert len(views) == shoppers * views_each == 2_000
    assert {view.status_code for view in views} == {200}, {view.text for view in views}
    assert len({view.content for view in views}) == 1  # the same page for every click
    # Once for the cold page, plus one background refresh per expired copy.
    assert 1 <= reached <= 1 + took // cache_ttl_seconds() <= 5, (reached, took)
    cache = [view.headers["X-Cache-Status"] for view in views]
    assert cache.count("HIT") >= len(views) - 5, sorted(set(cache))


def test_the_first_view_is_a_miss_and_the_next_ones_are_hits(
    stack: Stack, seller: SellerApi
) -> None:
    path = f"/s/{seller.published_page('Summer sale')['slug']}"
    given = f"req-{secrets.token_hex(8)}"
    with stack.client("127.0.0.10") as client:
        first = client.get(path + tracking_query(1))
        other_click = client.get(path + tracking_query(2), headers={"Cookie": "_fbp=fb.1.1.2"})
        head = client.head(path)
        traced = client.get(path, headers={"X-Request-ID": given})
        revalidated = client.get(path, headers={"If-None-Match": first.headers["ETag"]})

    assert first.status_code == 200, first.text
    assert first.headers["X-Cache-Status"] == "MISS"
    # Another click's parameters and the shopper's cookies do not make another copy.
    assert other_click.headers["X-Cache-Status"] == "HIT"
    assert other_click.content == first.content
    assert (head.status_code, head.headers["X-Cache-Status"], head.content) == (200, "HIT", b"")
    # A cached answer keeps the app's headers for browsers and CDNs, but carries this
    # request's id, not the one of the request that filled the cache.
    assert traced.headers["X-Cache-Status"] == "HIT"
    assert traced.headers["ETag"] == first.headers["ETag"]
    assert traced.headers["Cache-Control"] == first.headers["Cache-Control"]
    assert traced.headers["X-Request-ID"] == given != first.headers["X-Request-ID"]
    # A browser holding the page revalidates against nginx's copy: 304, no body.
    assert (revalidated.status_code, revalidated.headers["X-Cache-Status"]) == (304, "HIT")
    assert revalidated.content == b""


def test_requests_with_credentials_and_orders_are_never_cached(
    stack: Stack, seller: SellerApi
) -> None:
    slug = seller.published_page("Summer sale")["slug"]
    before = requests_served(stack)
    with stack.client("127.0.0.11") as client:
        authorized = [
            client.get(route.format(slug=slug), headers=seller.headers)
            for route in PAGE_ROUTES
            for _ in range(2)
        ]
        anonymous = [client.get(route.format(slug=slug)) for route in PAGE_ROUTES]
        orders = [client.post(f"/public/sellpages/{slug}/orders", json=ORDER) for _ in range(3)]

    assert [a.status_code for a in authorized] == [200] * 4
    assert [a.headers["X-Cache-Status"] for a in authorized] == ["BYPASS"] * 4
    # Nothing an authorized request got was stored for the next shopper.
    assert [a.headers["X-Cache-Status"] for a in anonymous] == ["MISS", "MISS"]
    assert [o.status_code for o in orders] == [201] * 3, [o.text for o in orders]
    assert len({o.json()["order_id"] for o in orders}) == 3
    assert all("X-Cache-Status" not in o.headers for o in orders)
    # Every one of them reached an API process.
    assert requests_served_since(stack, before) == {
        ("GET", "/s/{slug}"): 2 + 1,
        ("GET", "/public/sellpages/{slug}"): 2 + 1,
        ("POST", "/public/sellpages/{slug}/orders"): 3,
    }


def test_a_changed_page_is_served_fresh_once_the_cached_copy_expires(
    stack: Stack, seller: SellerApi
) -> None:
    page = seller.published_page("Summer sale")
    path = f"/public/sellpages/{page['slug']}"
    with stack.client("127.0.0.12") as client:
        cached = client.get(path)
        filled = time.monotonic()
        seller.retitle(page["id"], "Autumn sale")
        # The app serves the change at once (its storefront cache was invalidated) …
        assert httpx.get(f"{stack.api_url}{path}").json()["title"] == "Autumn sale"
        # … nginx keeps its copy until it expires,
        within_ttl = client.get(path)
        time.sleep(max(0.0, filled + cache_ttl_seconds() + 1 - time.monotonic()))
        # then answers once more with it while fetching the new one in the background,
        expired = client.get(path)
        deadline = time.monotonic() + 5
        refreshed = client.get(path)
        while refreshed.json()["title"] != "Autumn sale" and time.monotonic() < deadline:
            time.sleep(0.1)
            refreshed = client.get(path)

    assert (cached.headers["X-Cache-Status"], cached.json()["title"]) == ("MISS", "Summer sale")
    assert (within_ttl.headers["X-Cache-Status"], within_ttl.json()["title"]) == (
        "HIT",
        "Summer sale",
    )
    assert (expired.headers["X-Cache-Status"], expired.json()["title"]) == (
        "STALE",
        "Summer sale",
    )
    # … and from then on the new one.
    assert (refreshed.headers["X-Cache-Status"], refreshed.json()["title"]) == (
        "HIT",
        "Autumn sale",
    )


def test_pages_are_served_stale_while_the_api_is_down(stack: Stack, seller: SellerApi) -> None:
    path = f"/s/{seller.published_page('Summer sale')['slug']}"
    with stack.client("127.0.0.13") as client:
        cached = client.get(path)
        filled = time.monotonic()
        stack.api.stop()
        try:
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{stack.api_url}/healthz")
            time.sleep(max(0.0, filled + cache_ttl_seconds() + 1 - time.monotonic()))
            # Two views, each trying (and failing) to refresh the copy in the background:
            # fewer failures than the upstream's max_fails, so nginx keeps both servers.
            while_down = [client.get(path) for _ in range(2)]
        finally:
            stack.api.start()
            stack.api.wait_until_up()

    assert cached.headers["X-Cache-Status"] == "MISS"
    assert [view.status_code for view in while_down] == [200, 200]
    # UPDATING, should the first view's background refresh still be failing: stale too.
    assert while_down[0].headers["X-Cache-Status"] == "STALE"
    assert while_down[1].headers["X-Cache-Status"] in {"STALE", "UPDATING"}
    assert all(view.content == cached.content for view in while_down)


@dataclass
class StubApi:
    """A stand-in for the API answering every path with the headers a test chose, so the
    tests can send what the real routes never do (``private``, ``Set-Cookie``)."""

    answer_headers: dict[str, str]
    served: Counter[str]
    cookies_received: list[str | None]


@dataclass(frozen=True)
class StubStack:
    api: StubApi
    https_url: str
    cert: Path


@pytest.fixture
def stub_stack(tmp_path: Path) -> Iterator[StubStack]:
    """The shipped nginx config in front of a :class:`StubApi` on loopback."""
    nginx = require_binary("nginx", apt_package="nginx")
    stub = StubApi(answer_headers={}, served=Counter(), cookies_received=[])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            stub.served[path] += 1
            stub.cookies_received.append(self.headers.get("Cookie"))
            body = f"answer {stub.served[path]} for {path}".encode()
            self.send_response(200)
            for name, value in stub.answer_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cert, key = self_signed_certificate(tmp_path)
    http_port, https_port = free_loopback_port(), free_loopback_port()
    rendered = render(
        tmp_path,
        cert=cert,
        key=key,
        http_port=http_port,
        https_port=https_port,
        api_port=server.server_address[1],
    )
    log = tmp_path / "nginx.log"
    proxy = start_nginx(nginx, rendered, log)
    try:
        wait_for(f"https://127.0.0.1:{https_port}/healthz", proxy, log)
        stub.served.clear()
        stub.cookies_received.clear()
        yield StubStack(api=stub, https_url=f"https://127.0.0.1:{https_port}", cert=cert)
    finally:
        stop(proxy)
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("answer_headers", "stored"),
    [
        ({"Cache-Control": "public, max-age=60"}, True),
        ({"Cache-Control": "private, max-age=60"}, False),
        ({"Cache-Control": "no-store"}, False),
        ({"Cache-Control": "no-cache"}, False),
        ({"Cache-Control": "public, max-age=60", "Set-Cookie": "session=abc; Secure"}, False),
    ],
    ids=["public", "private", "no-store", "no-cache", "set-cookie"],
)
@pytest.mark.parametrize("path", ["/s/summer-sale", "/public/sellpages/summer-sale"])
def test_the_app_decides_what_nginx_may_store(
    stub_stack: StubStack, path: str, answer_headers: dict[str, str], stored: bool
) -> None:
    """nginx keeps its own TTL, but an answer the app marks private, no-store or no-cache,
    or one that sets a cookie, is passed on and never stored; the shopper's cookies are
    not sent to the app for a cacheable page, so a stored copy cannot depend on them."""
    stub_stack.api.answer_headers.update(answer_headers)
    with proxy_client(stub_stack.https_url, stub_stack.cert, "127.0.0.14") as client:
        views = [
            client.get(path + tracking_query(n), headers={"Cookie": "_fbp=fb.1.1.2; sid=abc"})
            for n in range(3)
        ]

    assert [view.status_code for view in views] == [200] * 3
    if stored:
        assert [view.headers["X-Cache-Status"] for view in views] == ["MISS", "HIT", "HIT"]
        assert stub_stack.api.served == {path: 1}
    else:
        assert [view.headers["X-Cache-Status"] for view in views] == ["MISS"] * 3
        assert stub_stack.api.served == {path: 3}
    assert stub_stack.api.cookies_received == [None] * stub_stack.api.served[path]


def test_the_order_route_is_not_cached_and_gets_the_shoppers_cookies(
    stub_stack: StubStack,
) -> None:
    """Only the page is stripped of cookies: the order reads Meta's `_fbp`/`_fbc` from
    them (issue 17 item 3), and is never answered from a copy, even one marked public."""
    stub_stack.api.answer_headers.update({"Cache-Control": "public, max-age=60"})
    cookie = "_fbp=fb.1.1700000000000.1234567890; _fbc=fb.1.1700000000000.IwAR0"
    with proxy_client(stub_stack.https_url, stub_stack.cert, "127.0.0.15") as client:
        orders = [
            client.post(
                "/public/sellpages/summer-sale/orders", json=ORDER, headers={"Cookie": cookie}
            )
            for _ in range(2)
        ]

    assert [order.status_code for order in orders] == [200, 200]
    assert all("X-Cache-Status" not in order.headers for order in orders)
    assert stub_stack.api.served == {"/public/sellpages/summer-sale/orders": 2}
    assert stub_stack.api.cookies_received == [cookie, cookie]
