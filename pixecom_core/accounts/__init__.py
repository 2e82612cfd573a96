"""Seller accounts: sign-up, login, rotating refresh tokens, logout, the dev demo seller."""

from pixecom_core.accounts.service import (
    AccountService,
    RefreshTokenReusedError,
    SessionRevocations,
    SignUp,
    TokenPair,
)

__all__ = [
    "AccountService",
    "RefreshTokenReusedError",
    "SessionRevocations",
    "SignUp",
    "TokenPair",
]
