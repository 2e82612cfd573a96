"""The shipped nginx config, in front of the real API served by `pixecom serve`.

nginx runs as an ordinary process (own prefix, pid, logs and temp folders, no daemon)
on free loopback ports with a throwaway self-signed certificate; the API runs under
uvicorn on loopback. Clients connect from other loopback addresses (127.0.0.2 …) so
nginx, the app and the rate limits see distinct client IPs.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import secrets
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from pixecom_core.settings import Settings
from tests.cli.conftest import clean_environment
from tests.deploy.conftest import DEPLOY_DIR, free_loopback_port, require_binary

REPO_ROOT = Path(__file__).resolve().parents[2]
SITE = DEPLOY_DIR / "nginx" / "pixecom.conf"
PROXY_INCLUDE = DEPLOY_DIR / "nginx" / "pixecom_proxy.conf"
ONE_MIB = 1024 * 1024


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1 / localhost, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def replace_exactly(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced; fails if the shipped file no longer contains it
    (the test must render the file as shipped, not a drifted copy)."""
    assert old in text, f"{old!r} is no longer in the shipped nginx config"
    return text.replace(old, new)


@dataclass(frozen=True)
class RenderedConfig:
    main: Path
    prefix: Path
    access_log: Path


def render(
    work: Path,
    *,
    cert: Path,
    key: Path,
    http_port: int | None = None,
    https_port: int | None = None,
    api_port: int | None = None,
) -> RenderedConfig:
    """The shipped site file with machine paths (and, when given, ports) swapped in,
    inside a main nginx.conf that keeps every file under ``work``."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    site = SITE.read_text()
    site = replace_exactly(
        site, "/etc/letsencrypt/live/pixecom.example.com/fullchain.pem", str(cert)
    )
    site = replace_exactly(site, "/etc/letsencrypt/live/pixecom.example.com/privkey.pem", str(key))
    site = replace_exactly(site, "/var/log/nginx/", f"{logs}/")
    site = replace_exactly(site, "/var/www/letsencrypt", str(work / "acme"))
    site = replace_exactly(site, "/etc/nginx/pixecom_proxy.conf", str(PROXY_INCLUDE))
    if http_port is not None and https_port is not None and api_port is not None:
        site = replace_exactly(site, "    listen 80;", f"    listen 127.0.0.1:{http_port};")
        site = replace_exactly(
            site, "    listen 443 ssl http2;", f"    listen 127.0.0.1:{https_port} ssl http2;"
        )
        # IPv6 may be off in test containers; the IPv4 listeners are what is exercised.
        site = re.sub(r"\n\s*listen \[::\]:[^\n]*", "", site)
        site = replace_exactly(site, "127.0.0.1:8001", f"127.0.0.1:{api_port}")
        site = replace_exactly(site, "127.0.0.1:8002", f"127.0.0.1:{api_port}")
    (work / "pixecom.conf").write_text(site)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {work / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root nginx would switch its workers to `nobody`, who cannot read pytest's
    # private temp folders; keep them as the user running the test.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = work / "nginx.conf"
    main.write_text(
        f"{user}worker_processes 1;\npid {work / 'nginx.pid'};\n"
        f"error_log {logs / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n{temp_paths}\n    access_log {logs / 'main.access.log'};\n"
        f"    include {work / 'pixecom.conf'};\n}}\n"
    )
    return RenderedConfig(main=main, prefix=work, access_log=logs / "pixecom.access.log")


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


@dataclass(frozen=True)
class Stack:
    https_url: str
    http_url: str
    api_url: str
    cert: Path
    access_log: Path

    def client(self, source: str) -> httpx.Client:
        """A client connecting to nginx from loopback address ``source``."""
        context = ssl.create_default_context(cafile=str(self.cert))
        transport = httpx.HTTPTransport(local_address=source, verify=context)
        return httpx.Client(base_url=self.https_url, transport=transport, timeout=30.0)


@pytest.fixture(scope="module")
def stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API (`pixecom serve`, two uvicorn workers) behind the shipped nginx config."""
    nginx = require_binary("nginx", apt_package="nginx")
    work = tmp_path_factory.mktemp("nginx")
    cert, key = self_signed_certificate(work)
    api_port, http_port, https_port = (free_loopback_port() for _ in range(3))
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
        **secret,
    )
    api_log, proxy_log = work / "api.log", work / "nginx.log"
    api = subprocess.Popen(
        [
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
        cwd=REPO_ROOT,
        stdout=api_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    rendered = render(
        work, cert=cert, key=key, http_port=http_port, https_port=https_port, api_port=api_port
    )
    proxy = subprocess.Popen(
        [str(nginx), "-p", str(rendered.prefix), "-c", str(rendered.main), "-g", "daemon off;"],
        stdout=proxy_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(f"http://127.0.0.1:{api_port}/healthz", api, api_log)
        wait_for(f"https://127.0.0.1:{https_port}/healthz", proxy, proxy_log)
        yield Stack(
            https_url=f"https://127.0.0.1:{https_port}",
            http_url=f"http://127.0.0.1:{http_port}",
            api_url=f"http://127.0.0.1:{api_port}",
            cert=cert,
            access_log=rendered.access_log,
        )
    finally:
        stop(proxy)
        stop(api)


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
