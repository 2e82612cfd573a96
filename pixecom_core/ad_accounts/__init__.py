"""Ad accounts: their encrypted access tokens and key rotation."""

from pixecom_core.ad_accounts.tokens import (
    AdAccountTokens,
    RotationReport,
    rotate_ad_account_tokens,
)

__all__ = ["AdAccountTokens", "RotationReport", "rotate_ad_account_tokens"]
