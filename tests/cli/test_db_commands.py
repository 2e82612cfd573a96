"""`pixecom db upgrade` and `pixecom db maintain` against a fresh database on the test server."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, LiteralString

import psycopg
import pytest
from alembic.script import ScriptDirectory

from pixecom_core.db import admin
from pixecom_core.db.partitions import add_months
from pixecom_core.db.urls import conninfo
from reference_app.keys import new_secret

RunPixecom = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def fresh_database(servers: tuple[str, str]) -> Iterator[str]:
    """An empty database on the test server; its owner DSN. Dropped afterwards."""
    server_dsn, _ = servers
    name = f"pixecom_cli_{secrets.token_hex(4)}"
    owner_dsn = admin.create_database(conninfo(server_dsn, dbname="postgres"), name)
    yield owner_dsn
    admin.drop_database(server_dsn, name)


def production_env(owner_dsn: str) -> dict[str, str]:
    """What a production unit's EnvironmentFile holds (secrets from `keys generate`)."""
    return {
        "PIXECOM_MODE": "production",
        "DATABASE_URL": owner_dsn,
        "PIXECOM_JWT_SIGNING_KEYS": json.dumps([new_secret()]),
        "PIXECOM_TOKEN_ENCRYPTION_KEYS": json.dumps([new_secret()]),
        "PIXECOM_REFRESH_TOKEN_PEPPER": new_secret(),
    }


def head_revision() -> str:
    config = admin.alembic_config("unused", app_role="pixecom_app")
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def fetch_one(dsn: str, query: LiteralString, *params: object) -> tuple[Any, ...] | None:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchone()


def partition_exists(dsn: str, name: str) -> bool:
    return fetch_one(dsn, "SELECT to_regclass(%s)::text", name) != (None,)


def month_suffix(months_from_now: int) -> str:
    return add_months(datetime.now(UTC).date(), months_from_now).strftime("%Y%m")


def test_db_upgrade_migrates_to_head_and_creates_the_app_role(
    run_pixecom: RunPixecom, fresh_database: str
) -> None:
    result = run_pixecom("db", "upgrade", env=production_env(fresh_database))

    assert result.returncode == 0, result.stderr
    assert "migrated to head" in result.stdout
    assert fetch_one(fresh_database, "SELECT version_num FROM alembic_version") == (
        head_revision(),
    )
    role = fetch_one(
        fresh_database,
        "SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = %s",
        "pixecom_app",
    )
    assert role == (False, False, False)
    timeouts = fetch_one(
        fresh_database,
        "SELECT s.setconfig FROM pg_db_role_setting s"
        " JOIN pg_roles r ON r.oid = s.setrole"
        " JOIN pg_database d ON d.oid = s.setdatabase"
        " WHERE r.rolname = %s AND d.datname = current_database()",
        "pixecom_app",
    )
    assert timeouts is not None
    assert any(item.startswith("statement_timeout=") for item in timeouts[0])


def test_db_upgrade_is_idempotent(run_pixecom: RunPixecom, fresh_database: str) -> None:
    env = production_env(fresh_database)

    first = run_pixecom("db", "upgrade", env=env)
    second = run_pixecom("db", "upgrade", env=env)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert fetch_one(fresh_database, "SELECT count(*) FROM alembic_version") == (1,)


def test_db_upgrade_to_an_explicit_revision(run_pixecom: RunPixecom, fresh_database: str) -> None:
    revision = head_revision()

    result = run_pixecom(
        "db", "upgrade", "--revision", revision, env=production_env(fresh_database)
    )

    assert result.returncode == 0, result.stderr
    assert f"migrated to {revision}" in result.stdout
    assert fetch_one(fresh_database, "SELECT version_num FROM alembic_version") == (revision,)


def test_db_maintain_creates_partitions_ahead_then_has_nothing_to_do(
    run_pixecom: RunPixecom, fresh_database: str
) -> None:
    env = production_env(fresh_database)
    assert run_pixecom("db", "upgrade", env=env).returncode == 0
    far_month = f"ad_stats_raw_p{month_suffix(6)}"
    assert not partition_exists(fresh_database, far_month)

    first = run_pixecom("db", "maintain", "--months-ahead", "6", env=env)
    second = run_pixecom("db", "maintain", "--months-ahead", "6", env=env)

    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created ")
    assert f"  {far_month}\n" in first.stdout
    assert partition_exists(fresh_database, far_month)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("nothing to do")


def test_db_maintain_drops_raw_partitions_past_retention_only(
    run_pixecom: RunPixecom, fresh_database: str
) -> None:
    env = production_env(fresh_database)
    assert run_pixecom("db", "upgrade", env=env).returncode == 0
    # The initial migration creates partitions from two months back; with a retention
    # of one day that month of raw fetches is past retention, and nothing else is dropped.
    old_raw = f"ad_stats_raw_p{month_suffix(-2)}"
    old_orders = f"orders_p{month_suffix(-2)}"
    assert partition_exists(fresh_database, old_raw)

    result = run_pixecom("db", "maintain", "--raw-retention-days", "1", env=env)

    assert result.returncode == 0, result.stderr
    assert "dropped " in result.stdout
    assert f"  {old_raw}\n" in result.stdout
    assert not partition_exists(fresh_database, old_raw)
    assert partition_exists(fresh_database, old_orders)
