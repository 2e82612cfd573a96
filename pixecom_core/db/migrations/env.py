"""Alembic environment: migrations run as the schema owner over psycopg 3.

The owner DSN and the application role's name come from the config attributes set by
:func:`pixecom_core.db.admin.alembic_config` (``pixecom db upgrade``), or from
``DATABASE_URL`` / ``PIXECOM_APP_ROLE`` when Alembic is run by hand. Rendering SQL
offline (``alembic upgrade A:B --sql``) needs neither a database nor ``DATABASE_URL``.

Each migration runs in its own transaction, after the session timeouts of
:mod:`pixecom_core.db.migration_support`; ``docs/migrations.md`` has the rules.
"""

from __future__ import annotations

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool

import pixecom_core.models  # noqa: F401  (registers every table on the metadata)
from pixecom_core.db import migration_support
from pixecom_core.db.urls import owner_conninfo
from pixecom_core.models.base import metadata
from pixecom_core.settings import Settings

config = context.config
if "app_role" not in config.attributes:
    config.attributes["app_role"] = Settings(mode="dev").app_role
# Rendering SQL (`alembic upgrade --sql`, `nox -s migrations`) needs no database: only a
# run that connects asks for the owner DSN (STORE-5: migrations are linted offline).
if "owner_dsn" not in config.attributes and not context.is_offline_mode():
    config.attributes["owner_dsn"] = owner_conninfo(Settings(mode="dev"))


def run_migrations_offline() -> None:
    """Render SQL without a connection (`alembic upgrade --sql`), for review and linting."""
    context.configure(
        url="postgresql+psycopg://",
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transaction_per_migration=True,
    )
    for statement in migration_support.session_timeouts():
        context.execute(statement)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations one transaction each, under the session's lock and statement
    timeouts, so a migration never queues behind a long transaction while blocking
    everyone behind it, and the locks one migration takes are released when it commits
    instead of being held until the last migration of the run (STORE-5)."""
    dsn = config.attributes["owner_dsn"]
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(dsn),
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=metadata, transaction_per_migration=True
        )
        for statement in migration_support.session_timeouts():
            connection.exec_driver_sql(statement)
        connection.commit()
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
