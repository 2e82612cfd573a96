"""Alembic environment: migrations run as the schema owner over psycopg 3.

The owner DSN and the application role's name come from the config attributes set by
:func:`pixecom_core.db.admin.alembic_config` (``pixecom db upgrade``), or from
``DATABASE_URL`` / ``PIXECOM_APP_ROLE`` when Alembic is run by hand.
"""

from __future__ import annotations

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool

import pixecom_core.models  # noqa: F401  (registers every table on the metadata)
from pixecom_core.db.urls import owner_conninfo
from pixecom_core.models.base import metadata
from pixecom_core.settings import Settings

config = context.config
if "owner_dsn" not in config.attributes:
    settings = Settings(mode="dev")
    config.attributes["owner_dsn"] = owner_conninfo(settings)
    config.attributes["app_role"] = settings.app_role


def run_migrations_offline() -> None:
    """Render SQL without a connection (`alembic upgrade --sql`), for review and linting."""
    context.configure(
        url="postgresql+psycopg://",
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations in one transaction per run, with a lock timeout so a migration
    never queues behind a long transaction while blocking everyone behind it."""
    dsn = config.attributes["owner_dsn"]
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(dsn),
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            connection.exec_driver_sql("SET lock_timeout = '10s'")
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
