"""``pixecom keys rotate``: re-encrypt stored secrets (ad-account tokens and grants,
sellers' payment accounts) under the newest key.

Runs as the application role, seller by seller in each seller's scope, so row-level
security holds for the rotation as for every other job.
"""

from __future__ import annotations

import asyncio

from pixecom_core.ad_accounts import RotationReport, rotate_ad_account_tokens
from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings


async def _rotate(settings: Settings) -> RotationReport:
    engine = create_engine(settings, role="app")
    try:
        box = SecretBox(settings.token_encryption_keys)
        return await rotate_ad_account_tokens(create_sessionmaker(engine), settings, box)
    finally:
        await engine.dispose()


def rotate_tokens(settings: Settings) -> RotationReport:
    """Run the rotation to completion and report what changed."""
    return asyncio.run(_rotate(settings))
