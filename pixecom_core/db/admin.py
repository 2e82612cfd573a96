"""Owner-side database administration: create a database, the app role, migrate.

These run as the schema owner (``DATABASE_URL``); the API and worker never do.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql

from pixecom_core.db.urls import conninfo, database_name

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(owner_dsn: str, *, app_role: str) -> Config:
    """An Alembic config pointing at the packaged migrations and ``owner_dsn``.

    The app role's name travels as a config attribute: migrations grant to it.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["owner_dsn"] = owner_dsn
    config.attributes["app_role"] = app_role
    return config


def create_database(server_dsn: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_dsn`` (if missing); return its DSN."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return conninfo(server_dsn, dbname=name)


def drop_database(server_dsn: str, name: str) -> None:
    """Drop database ``name``, disconnecting whoever is still on it."""
    with psycopg.connect(conninfo(server_dsn, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def ensure_app_role(
    owner_dsn: str,
    *,
    role: str,
    password: str | None,
    statement_timeout_ms: int,
    lock_timeout_ms: int,
) -> None:
    """Create the login role the app connects as, if the owner may create roles.

    The role owns nothing, is not a superuser and cannot bypass RLS. Its timeouts are set
    as role defaults too, so they hold even for a session that skips the app's settings.
    """
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        ident = sql.Identifier(role)
        if not exists:
            try:
                conn.execute(
                    sql.SQL(
                        "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
                    ).format(ident)
                )
            except psycopg.errors.DuplicateObject:
                pass  # another process (a parallel test run) created it first
        if password is not None:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
        dbname = database_name(owner_dsn)
        for setting, value in (
            ("statement_timeout", statement_timeout_ms),
            ("lock_timeout", lock_timeout_ms),
        ):
            conn.execute(
                sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} = {}").format(
                    ident, sql.Identifier(dbname), sql.Identifier(setting), sql.Literal(value)
                )
            )


def upgrade(owner_dsn: str, *, app_role: str, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision`` as the owner."""
    command.upgrade(alembic_config(owner_dsn, app_role=app_role), revision)


def downgrade(owner_dsn: str, *, app_role: str, revision: str) -> None:
    """Run Alembic migrations down to ``revision`` as the owner."""
    command.downgrade(alembic_config(owner_dsn, app_role=app_role), revision)
