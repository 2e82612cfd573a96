"""Configuration errors: which exceptions mean "fix your settings", and how to say so.

Kept free of heavy imports (FastAPI, SQLAlchemy, Alembic) so the CLI can catch these
errors without loading what only some commands need.
"""

from __future__ import annotations

from pydantic import ValidationError

from pixecom_core.db.urls import DatabaseNotConfiguredError
from pixecom_core.secret_files import SecretSourceError
from pixecom_core.settings import Settings, WeakSecretError


class RedisNotConfiguredError(RuntimeError):
    """No Redis URL is known; ``pixecom dev`` starts an embedded Valkey instead."""


def require_redis_url(settings: Settings) -> str:
    """``settings.redis_url``, or :class:`RedisNotConfiguredError` saying how to set it.

    Issue 13 #8: an explicit check, not an ``assert`` (which ``python -O`` removes, leaving
    the API or a worker to fail later on ``None``).
    """
    if not settings.redis_url:
        raise RedisNotConfiguredError(
            "REDIS_URL is not set: export it, or run `pixecom dev`, which starts an embedded Valkey"
        )
    return settings.redis_url


#: Errors an operator fixes in the environment, not in the code.
CONFIGURATION_ERRORS: tuple[type[Exception], ...] = (
    WeakSecretError,
    SecretSourceError,
    ValidationError,
    DatabaseNotConfiguredError,
    RedisNotConfiguredError,
)


def describe_configuration_error(exc: Exception) -> str:
    """One line naming the environment variable(s) at fault and what is wrong."""
    if isinstance(exc, ValidationError):
        problems = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"])
            # Aliased settings (DATABASE_URL) are reported by their own name.
            name = location if location.isupper() else f"PIXECOM_{location.upper()}"
            problems.append(f"{name}: {error['msg']}")
        return "invalid settings: " + "; ".join(problems)
    return " ".join(str(exc).split())
