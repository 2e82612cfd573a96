"""The demo seller for ``pixecom dev`` — and only for it (SEC-4).

The previous version shipped a seed user with a known password in every environment.
Here the demo account is created by the dev deployment alone, and the function refuses
to run in any other mode, so a known password can never reach production.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.accounts.service import SignUp, create_seller_account, find_login
from pixecom_core.settings import Mode, Settings

DEMO_EMAIL = "demo@pixecom.dev"
#: Known to everyone who reads this file: that is why it exists in dev mode only.
DEMO_PASSWORD = "pixecom-demo-password"


class DemoDataRefusedError(RuntimeError):
    """Demo data was asked for outside dev mode."""


@dataclass(frozen=True)
class DemoLogin:
    """How to log in as the demo seller."""

    email: str
    password: str
    created: bool


async def ensure_demo_seller(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> DemoLogin:
    """Create the demo seller and its owner login unless they exist; dev mode only."""
    if settings.mode is not Mode.DEV:
        raise DemoDataRefusedError(
            f"refusing to create the demo seller in {settings.mode.value} mode: it has a "
            "published password and exists for `pixecom dev` only"
        )
    if await find_login(sessions, DEMO_EMAIL) is not None:
        return DemoLogin(email=DEMO_EMAIL, password=DEMO_PASSWORD, created=False)
    await create_seller_account(
        sessions,
        settings,
        SignUp(
            seller_name="Demo Store",
            reporting_currency="USD",
            timezone="UTC",
            email=DEMO_EMAIL,
            password=DEMO_PASSWORD,
            display_name="Demo Owner",
        ),
    )
    return DemoLogin(email=DEMO_EMAIL, password=DEMO_PASSWORD, created=True)
