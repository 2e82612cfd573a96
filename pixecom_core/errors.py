"""Errors core services raise for callers to translate (the API maps each to a status).

Services never speak HTTP; they raise one of these with a stable ``code`` and a message
that says what went wrong and, where it can, what to do. The reference app turns them
into its JSON error shape.
"""

from __future__ import annotations


class PixecomError(Exception):
    """Base class: ``code`` is a stable machine-readable name, ``str(exc)`` the message."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFoundError(PixecomError):
    """No such resource in the caller's seller scope (another seller's id included)."""

    code = "not_found"


class ConflictError(PixecomError):
    """The change collides with existing data (a taken slug, email or SKU)."""

    code = "conflict"


class InvalidRequestError(PixecomError):
    """The request is well-formed but asks for something the rules refuse."""

    code = "invalid_request"


class AuthenticationError(PixecomError):
    """Credentials or a token were not accepted; the message never says which part."""

    code = "unauthenticated"


class PermissionDeniedError(PixecomError):
    """Authenticated, but not allowed to do this."""

    code = "forbidden"
