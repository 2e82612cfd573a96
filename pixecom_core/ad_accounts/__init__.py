"""Ad accounts: rotation of their encrypted access tokens to the newest key."""

from pixecom_core.ad_accounts.tokens import RotationReport, rotate_ad_account_tokens

__all__ = ["RotationReport", "rotate_ad_account_tokens"]
