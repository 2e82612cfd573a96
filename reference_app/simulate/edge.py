"""The deploy kit's nginx config, rendered for loopback and run in front of an API.

One renderer serves the simulation and the deploy kit's tests (tests/deploy/test_nginx.py):
the shipped ``reference_app/deploy/nginx/pixecom.conf`` with only machine paths, ports and
the upstream swapped in — TLS, rate limits and the sellpages' micro-cache stay as shipped,
so what a simulation measures behind it is what a deployment gets (issue 18 item 2).
nginx runs as an ordinary foreground process with its own prefix, pid, logs and temp
folders; no system file is read or written.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: The kit's nginx files, as shipped.
NGINX_DIR = Path(__file__).resolve().parents[1] / "deploy" / "nginx"
SITE = NGINX_DIR / "pixecom.conf"
PROXY_INCLUDE = NGINX_DIR / "pixecom_proxy.conf"
#: The Debian package that provides a suitable nginx.
NGINX_PACKAGE = "nginx-light"
#: Seconds nginx gets to answer its first request, or to stop.
START_SECONDS = 30.0
STOP_SECONDS = 10.0


class EdgeUnavailableError(RuntimeError):
    """nginx is not installed, or did not start on the rendered config."""


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1 / localhost, valid for a day, written to
    ``directory``."""
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
    (the config must be rendered as shipped, not from a drifted copy)."""
    if old not in text:
        raise AssertionError(f"{old!r} is no longer in the shipped nginx config")
    return text.replace(old, new)


@dataclass(frozen=True)
class RenderedConfig:
    """The files of a rendered config: nginx's main file, its prefix, the site's log."""

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
    second_api_port: int | None = None,
    worker_connections: int = 256,
) -> RenderedConfig:
    """The shipped site file with machine paths (and, when given, ports) swapped in,
    inside a main nginx.conf that keeps every file under ``work``.

    The kit's upstream has two API servers: the first at ``api_port``, the second at
    ``second_api_port`` (at ``api_port`` too when None: one process behind both lines).
    """
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    site = SITE.read_text()
    site = replace_exactly(
        site, "/etc/letsencrypt/live/pixecom.example.com/fullchain.pem", str(cert)
    )
    site = replace_exactly(site, "/etc/letsencrypt/live/pixecom.example.com/privkey.pem", str(key))
    site = replace_exactly(site, "/var/log/nginx/", f"{logs}/")
    site = replace_exactly(site, "/var/cache/nginx-pixecom", str(work / "page-cache"))
    site = replace_exactly(site, "/var/www/letsencrypt", str(work / "acme"))
    site = replace_exactly(site, "/etc/nginx/pixecom_proxy.conf", str(PROXY_INCLUDE))
    if http_port is not None and https_port is not None and api_port is not None:
        site = replace_exactly(site, "    listen 80;", f"    listen 127.0.0.1:{http_port};")
        site = replace_exactly(
            site, "    listen 443 ssl http2;", f"    listen 127.0.0.1:{https_port} ssl http2;"
        )
        # IPv6 may be off in containers; the IPv4 listeners are what is exercised.
        site = re.sub(r"\n\s*listen \[::\]:[^\n]*", "", site)
        site = replace_exactly(site, "127.0.0.1:8001", f"127.0.0.1:{api_port}")
        site = replace_exactly(site, "127.0.0.1:8002", f"127.0.0.1:{second_api_port or api_port}")
    (work / "pixecom.conf").write_text(site)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {work / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root nginx would switch its workers to `nobody`, who cannot read private temp
    # folders; keep them as the user running nginx.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = work / "nginx.conf"
    main.write_text(
        f"{user}worker_processes 1;\npid {work / 'nginx.pid'};\n"
        f"error_log {logs / 'error.log'} info;\n"
        f"events {{ worker_connections {worker_connections}; }}\n"
        f"http {{\n{temp_paths}\n    access_log {logs / 'main.access.log'};\n"
        f"    include {work / 'pixecom.conf'};\n}}\n"
    )
    return RenderedConfig(main=main, prefix=work, access_log=logs / "pixecom.access.log")


def find_nginx() -> Path:
    """The nginx binary; :class:`EdgeUnavailableError` saying what to install if none."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which("nginx", path=search)
    if found is None:
        raise EdgeUnavailableError(
            f"nginx is not installed (apt-get install -y {NGINX_PACKAGE}); "
            "or run without it: --no-edge"
        )
    return Path(found)


def free_loopback_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class EdgeProxy:
    """The shipped nginx config in front of the API at ``api_port``, on loopback HTTPS.

    The config's two upstream API servers point at ``api_port`` and ``second_api_port``
    (both at ``api_port`` when None).

    :param work: nginx's prefix: rendered config, certificate, logs, page cache (a page
        cache left by an earlier run is wiped: every run starts cold).
    :param worker_connections: nginx's per-worker bound; each client connection also
        holds one to the API, so allow twice the clients plus the upstream keep-alives.
    """

    def __init__(
        self,
        work: Path,
        api_port: int,
        *,
        second_api_port: int | None = None,
        worker_connections: int = 2048,
    ) -> None:
        self.work = work
        self.api_port = api_port
        self.second_api_port = second_api_port
        self.worker_connections = worker_connections
        self.https_url = ""
        self.cert = work / "cert.pem"
        self.access_log = work / "logs" / "pixecom.access.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """nginx's master process (its worker is its child), while it runs."""
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        """Render the config, start nginx and wait until it answers over HTTPS."""
        nginx = find_nginx()
        shutil.rmtree(self.work / "page-cache", ignore_errors=True)
        self.work.mkdir(parents=True, exist_ok=True)
        cert, key = self_signed_certificate(self.work)
        self.cert = cert
        https_port = free_loopback_port()
        rendered = render(
            self.work,
            cert=cert,
            key=key,
            http_port=free_loopback_port(),
            https_port=https_port,
            api_port=self.api_port,
            second_api_port=self.second_api_port,
            worker_connections=self.worker_connections,
        )
        self.access_log = rendered.access_log
        log = self.work / "nginx.log"
        self.process = subprocess.Popen(
            [str(nginx), "-p", str(rendered.prefix), "-c", str(rendered.main), "-g", "daemon off;"],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.https_url = f"https://127.0.0.1:{https_port}"
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EdgeUnavailableError(
                    f"nginx exited with {self.process.returncode}: {log.read_text()[-2000:]}"
                )
            try:
                httpx.get(f"{self.https_url}/healthz", verify=str(cert), timeout=2.0)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise EdgeUnavailableError(f"nginx did not answer within {START_SECONDS:g} s")

    def stop(self) -> None:
        """Stop nginx (gracefully, then for good)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> EdgeProxy:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
