"""Configuration errors: which exceptions mean "fix your settings", and how to say so.

Kept free of heavy imports (FastAPI, SQLAlchemy, Alembic) so the CLI can catch these
errors without loading what only some commands need.
"""

from __future__ import annotations

from pydantic import ValidationError

from pixecom_core.db.urls import DatabaseNotConfiguredError
from pixecom_core.secret_files import SecretSourceError
from pixecom_core.settings import WeakSecretError


class RedisNotConfiguredError(RuntimeError):
    """No Redis URL is known; ``pixecom dev`` starts an embedded Valkey instead."""


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
