"""``slowads``: an ad network for worker subprocesses, loaded with
``PIXECOM_PLUGIN_MODULES=tests.scaleout.slowads``.

It needs no state shared with the test process: every account reports, for every day,
one campaign ``cmp_<account>`` whose spend is derived from the account id and the day
(:func:`spend_micros`), so the test can check the numbers a sync wrote. Every fetch takes
``PIXECOM_SLOWADS_DELAY_SECONDS`` (a slow network keeps tasks in flight long enough to
kill a worker or Redis under them).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

from pixecom_core import hookimpl
from pixecom_core.providers import (
    AdAccountCredentials,
    AdAccountInfo,
    AdNetwork,
    EntityLevel,
    InsightRow,
)

IDENTIFIER = "slowads"
DELAY_ENV = "PIXECOM_SLOWADS_DELAY_SECONDS"


def spend_micros(account_id: str, day: date) -> int:
    """The spend the network reports for ``account_id``'s campaign on ``day``."""
    digest = hashlib.sha256(f"{account_id}:{day.isoformat()}".encode()).digest()
    return (int.from_bytes(digest[:4]) % 50_000 + 1) * 1_000


class SlowAdNetwork:
    """Implements :class:`pixecom_core.providers.AdNetwork` without state."""

    identifier = IDENTIFIER
    display_name = "SlowAds"

    async def fetch_daily_insights(
        self,
        account: AdAccountCredentials,
        *,
        level: EntityLevel,
        since: date,
        until: date,
    ) -> AsyncIterator[InsightRow]:
        """Campaign rows for every day of the window, after the configured delay."""
        await asyncio.sleep(float(os.environ.get(DELAY_ENV, "0")))
        if level is not EntityLevel.CAMPAIGN:
            return
        fetched_at = datetime.now(UTC)
        day = since
        while day <= until:
            yield InsightRow(
                network=IDENTIFIER,
                entity_type=level,
                entity_id=f"cmp_{account.account_id}",
                date_start=day,
                date_stop=day,
                spend_micros=spend_micros(account.account_id, day),
                impressions=100,
                clicks=5,
                purchases=0,
                purchase_value_micros=0,
                currency="USD",
                fetched_at=fetched_at,
            )
            day += timedelta(days=1)

    async def describe_account(self, account: AdAccountCredentials) -> AdAccountInfo:
        """A UTC, USD account."""
        return AdAccountInfo(
            account_id=account.account_id, name="Slow", currency="USD", timezone="UTC"
        )


@hookimpl
def pixecom_register_ad_networks() -> list[AdNetwork]:
    """The one slowads network."""
    return [SlowAdNetwork()]
