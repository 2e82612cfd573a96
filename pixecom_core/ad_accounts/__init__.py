"""Ad accounts: rotation of their encrypted access tokens to the newest key."""

from pixecom_core.ad_accounts.tokens import (
    RotationReport,
    UndecryptableSecret,
    rotate_ad_account_tokens,
)

__all__ = ["RotationReport", "UndecryptableSecret", "rotate_ad_account_tokens"]
