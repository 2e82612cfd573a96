"""A fresh, migrated PostgreSQL database per test run, on a real server.

Used by core's own tests and available to plugins: ``DATABASE_URL`` / ``REDIS_URL`` name
the servers when set; otherwise embedded ones are started for the run.

A shared Redis outlives runs (CI runs against the machine's server as the last session
left it), so each run's settings carry a Redis key prefix of its own, and the run's keys
are deleted with its database: a queue stream or a claimed scheduler slot of an earlier
run never reaches a later one.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from pixecom_core.db import admin
from pixecom_core.db.urls import conninfo
from pixecom_core.devservers import EmbeddedServers
from pixecom_core.settings import Mode, Settings


def random_secret() -> str:
    """A secret that passes the production strength check."""
    return secrets.token_urlsafe(48)


@dataclass(frozen=True)
class TestDatabase:
    """A migrated database for one test run and the settings that point at it."""

    __test__ = False  # not a test class, despite the name

    name: str
    owner_dsn: str
    app_dsn: str
    redis_url: str
    settings: Settings


@contextmanager
def test_servers() -> Iterator[tuple[str, str]]:
    """Yield (server owner DSN, Redis URL): the configured servers or embedded ones."""
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    with tempfile.TemporaryDirectory(prefix="pixecom-test-") as tmp:
        servers = EmbeddedServers(data_dir=Path(tmp), ephemeral=True)
        try:
            pg = database_url or servers.start_postgres()
            redis = redis_url or servers.start_valkey()
            yield conninfo(pg), redis
        finally:
            servers.stop()


@contextmanager
def provision_test_database(
    server_dsn: str, redis_url: str, *, app_role: str = "pixecom_app"
) -> Iterator[TestDatabase]:
    """Create, migrate and finally drop a database named for this run."""
    name = f"pixecom_test_{os.getpid()}_{secrets.token_hex(4)}"
    redis_key_prefix = f"pixecom-test:{name}:"
    owner_dsn = admin.create_database(conninfo(server_dsn, dbname="postgres"), name)
    try:
        settings = Settings(
            mode=Mode.TEST,
            database_url=owner_dsn,
            redis_url=redis_url,
            redis_key_prefix=redis_key_prefix,
            app_role=app_role,
            jwt_signing_keys=[random_secret()],
            token_encryption_keys=[random_secret()],
            refresh_token_peppers=[random_secret()],
            statement_timeout_ms=30_000,
            lock_timeout_ms=5_000,
        )
        admin.ensure_app_role(
            owner_dsn,
            role=app_role,
            password=None,
            statement_timeout_ms=settings.statement_timeout_ms,
            lock_timeout_ms=settings.lock_timeout_ms,
        )
        admin.upgrade(owner_dsn, app_role=app_role)
        yield TestDatabase(
            name=name,
            owner_dsn=owner_dsn,
            app_dsn=conninfo(owner_dsn, user=app_role, password=None),
            redis_url=redis_url,
            settings=settings,
        )
    finally:
        admin.drop_database(server_dsn, name)
        delete_redis_keys(redis_url, redis_key_prefix)


def delete_redis_keys(redis_url: str, prefix: str) -> int:
    """Delete every key starting with ``prefix`` (SCAN, then UNLINK in batches); return
    how many. A Redis that cannot be reached deletes nothing: the keys of a run are
    litter, not state a later run relies on."""
    deleted = 0
    try:
        with redis.Redis.from_url(redis_url, socket_timeout=10) as client:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{prefix}*", count=1_000):
                batch.append(key)
                if len(batch) == 1_000:
                    deleted += int(client.unlink(*batch))
                    batch.clear()
            if batch:
                deleted += int(client.unlink(*batch))
    except redis.RedisError:
        return deleted
    return deleted
