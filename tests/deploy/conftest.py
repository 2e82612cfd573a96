"""Fixtures for the deployment kit's tests: external binaries, fresh databases, the CLI.

Tests that need nginx, pgbouncer or pg_dump skip with a reason when the binary is
missing, unless ``PIXECOM_REQUIRE_DEPLOY_TOOLS=1`` (CI, where they are installed): then
a missing binary is a failure, so a broken CI image cannot turn these tests into skips.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from pixecom_core.db import admin
from pixecom_core.db.urls import conninfo
from pixecom_core.settings import Settings
from reference_app.keys import new_secret
from tests.cli.conftest import clean_environment

#: Set to 1 where the deployment tools are installed: a missing one then fails the test.
REQUIRE_TOOLS_ENV = "PIXECOM_REQUIRE_DEPLOY_TOOLS"

#: The kit's files, as shipped.
DEPLOY_DIR = Path(__file__).resolve().parents[2] / "reference_app" / "deploy"

RunPixecom = Callable[..., subprocess.CompletedProcess[str]]


def require_binary(name: str, *, apt_package: str, extra_dirs: tuple[str, ...] = ()) -> Path:
    """The path of binary ``name``; skip (or fail under PIXECOM_REQUIRE_DEPLOY_TOOLS=1)
    when it is not installed."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", *extra_dirs])
    found = shutil.which(name, path=search)
    if found:
        return Path(found)
    message = f"{name} is not installed (apt-get install -y {apt_package})"
    if os.environ.get(REQUIRE_TOOLS_ENV) == "1":
        pytest.fail(f"{message}, and {REQUIRE_TOOLS_ENV}=1 requires it")
    pytest.skip(message)


def free_loopback_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def new_database(servers: tuple[str, str]) -> Iterator[Callable[[], str]]:
    """Make empty databases on the test server (owner DSNs); all dropped afterwards."""
    server_dsn, _ = servers
    made: list[str] = []

    def make() -> str:
        name = f"pixecom_deploy_{secrets.token_hex(4)}"
        made.append(name)
        return admin.create_database(conninfo(server_dsn, dbname="postgres"), name)

    yield make
    for name in made:
        admin.drop_database(server_dsn, name)


def migrated(owner_dsn: str, settings: Settings) -> str:
    """Create the app role's grants and the schema in ``owner_dsn``'s database."""
    admin.ensure_app_role(
        owner_dsn,
        role=settings.app_role,
        password=None,
        statement_timeout_ms=settings.statement_timeout_ms,
        lock_timeout_ms=settings.lock_timeout_ms,
    )
    admin.upgrade(owner_dsn, app_role=settings.app_role)
    return owner_dsn


def production_env(owner_dsn: str) -> dict[str, str]:
    """A production configuration for the CLI (fresh strong secrets)."""
    return {
        "PIXECOM_MODE": "production",
        "DATABASE_URL": owner_dsn,
        "PIXECOM_JWT_SIGNING_KEYS": json.dumps([new_secret()]),
        "PIXECOM_TOKEN_ENCRYPTION_KEYS": json.dumps([new_secret()]),
        "PIXECOM_REFRESH_TOKEN_PEPPERS": json.dumps([new_secret()]),
    }


@pytest.fixture
def run_pixecom() -> RunPixecom:
    """Run the installed ``pixecom`` console script with exactly the given configuration."""
    executable = shutil.which("pixecom", path=str(Path(sys.executable).parent))
    assert executable, "the pixecom console script is not installed: pip install -e reference_app"

    def run(
        *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [executable, *args],
            env=clean_environment(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
