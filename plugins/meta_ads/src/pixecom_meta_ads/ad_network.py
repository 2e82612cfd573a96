"""The Meta Ads ad network provider.

It reads daily campaign, ad set and ad insights from the Graph API Insights endpoint. Until
the Meta Ads plugin issue lands, every operation raises ``NotImplementedError``: the plugin
is installable and discoverable, not usable.
"""

from collections.abc import AsyncIterator
from datetime import date

from pixecom_core.providers import AdAccountCredentials, AdAccountInfo, EntityLevel, InsightRow

_PENDING = "implemented by the Meta Ads plugin issue"


class MetaAdNetwork:
    """The ``meta`` ad network; implements ``pixecom_core.providers.AdNetwork``."""

    identifier = "meta"
    display_name = "Meta Ads"

    def fetch_daily_insights(
        self,
        account: AdAccountCredentials,
        *,
        level: EntityLevel,
        since: date,
        until: date,
    ) -> AsyncIterator[InsightRow]:
        """Yield one row per entity per day from the Insights endpoint."""
        raise NotImplementedError(f"fetch_daily_insights: {_PENDING}")

    async def describe_account(self, account: AdAccountCredentials) -> AdAccountInfo:
        """Return the ad account's name, currency and time zone."""
        raise NotImplementedError(f"describe_account: {_PENDING}")
