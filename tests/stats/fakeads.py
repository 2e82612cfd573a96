"""``fakeads``: an in-memory ad network for core's sync tests (no HTTP, no plugin install).

Numbers are set per (account, level, entity, day); ``restate`` changes a past day the way
Meta does, ``stop_delivery`` drops an entity's row from a day (Meta omits rows without
delivery), and ``fail_next`` makes the next fetch of an account raise a provider error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

from pixecom_core import hookimpl
from pixecom_core.providers import (
    AdAccountCredentials,
    AdAccountInfo,
    AdNetwork,
    EntityLevel,
    InsightRow,
    ProviderError,
)

IDENTIFIER = "fakeads"


class FakeAdNetwork:
    """Implements :class:`pixecom_core.providers.AdNetwork` from a dict."""

    identifier = IDENTIFIER
    display_name = "FakeAds"

    def __init__(self) -> None:
        self.spend: dict[tuple[str, EntityLevel, str, date], int] = {}
        self.failures: dict[str, ProviderError] = {}
        self.calls: list[tuple[str, EntityLevel, date, date]] = []
        self.tokens_seen: set[str] = set()
        #: Seconds every fetch takes (a slow network).
        self.delay_seconds = 0.0
        #: Raised by every fetch when set (a bug outside the provider error classes).
        self.crash: Exception | None = None
        #: Fetches made by these tasks wait until their event is set (a job kept running
        #: while a test does something beside it, however slow the machine).
        self.held_tasks: dict[asyncio.Task[Any], asyncio.Event] = {}

    def set_spend(
        self, account: str, level: EntityLevel, entity: str, day: date, micros: int
    ) -> None:
        self.spend[(account, level, entity, day)] = micros

    restate = set_spend

    def stop_delivery(self, account: str, level: EntityLevel, entity: str, day: date) -> None:
        """The entity delivered nothing on ``day`` after all: like Meta, the network then
        omits its row instead of reporting zeros."""
        del self.spend[(account, level, entity, day)]

    def fail_next(self, account: str, error: ProviderError) -> None:
        self.failures[account] = error

    async def fetch_daily_insights(
        self,
        account: AdAccountCredentials,
        *,
        level: EntityLevel,
        since: date,
        until: date,
    ) -> AsyncIterator[InsightRow]:
        self.calls.append((account.account_id, level, since, until))
        self.tokens_seen.add(account.access_token.get_secret_value())
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        held = self.held_tasks.get(asyncio.current_task())  # type: ignore[arg-type]
        if held is not None:
            await held.wait()
        if self.crash is not None:
            raise self.crash
        error = self.failures.pop(account.account_id, None)
        if error is not None:
            raise error
        fetched_at = datetime.now(UTC)
        for (acct, row_level, entity, day), micros in sorted(self.spend.items()):
            if acct == account.account_id and row_level is level and since <= day <= until:
                yield InsightRow(
                    network=IDENTIFIER,
                    entity_type=level,
                    entity_id=entity,
                    date_start=day,
                    date_stop=day,
                    spend_micros=micros,
                    impressions=100,
                    clicks=5,
                    purchases=0,
                    purchase_value_micros=0,
                    currency="USD",
                    fetched_at=fetched_at,
                )

    async def describe_account(self, account: AdAccountCredentials) -> AdAccountInfo:
        return AdAccountInfo(
            account_id=account.account_id, name="Fake", currency="USD", timezone="UTC"
        )


NETWORK = FakeAdNetwork()


@hookimpl
def pixecom_register_ad_networks() -> list[AdNetwork]:
    return [NETWORK]
