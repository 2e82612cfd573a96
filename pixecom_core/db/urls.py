"""Connection strings: one place that turns settings into libpq conninfo strings.

Everything is kept as libpq conninfo (``key=value`` pairs) because it can express what a
URL cannot always (a Unix socket directory for the embedded server, options) and psycopg
accepts it directly.
"""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pixecom_core.settings import Settings


class DatabaseNotConfiguredError(RuntimeError):
    """No database URL is known; dev mode and tests start an embedded server instead."""


def conninfo(url: str, **overrides: str | int | None) -> str:
    """Normalise ``url`` (URL or key=value form, with or without ``+psycopg``) to conninfo.

    :param overrides: libpq parameters to replace (``user``, ``dbname``, ``password`` …);
        ``None`` removes a parameter.
    """
    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    params = conninfo_to_dict(url)
    for key, value in overrides.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None})


def owner_conninfo(settings: Settings) -> str:
    """Conninfo of the schema owner (migrations, partition maintenance, demo seed)."""
    if not settings.database_url:
        raise DatabaseNotConfiguredError(
            "DATABASE_URL is not set: export it, or run `pixecom dev`, which starts an "
            "embedded PostgreSQL"
        )
    return conninfo(settings.database_url)


def app_conninfo(settings: Settings) -> str:
    """Conninfo of the application role, which owns nothing and is subject to RLS."""
    if settings.app_database_url:
        return conninfo(settings.app_database_url)
    password = settings.app_role_password.get_secret_value() if settings.app_role_password else None
    return conninfo(owner_conninfo(settings), user=settings.app_role, password=password)


def database_name(dsn: str) -> str:
    """The database a conninfo points at (libpq defaults to the user name)."""
    params = conninfo_to_dict(dsn)
    return str(params.get("dbname") or params.get("user") or "postgres")
