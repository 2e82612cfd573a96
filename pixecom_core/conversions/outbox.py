"""The conversion events' outbox, and the sender that works it off after commit."""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.plugins import ProviderRegistry, UnknownProviderError
from pixecom_core.providers import (
    ConversionDestination,
    ConversionEvent,
    ConversionsDestination,
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    ProviderThrottled,
)
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.jobs import RECORD_DEAD_LETTER
from pixecom_core.tenancy import SellerScope, open_seller_scope

_log = logging.getLogger(__name__)

#: The task (and dead-letter) name of sending a seller's conversion events.
SEND_CONVERSIONS_TASK = "pixecom.send_conversions"
#: Events one claim takes (the contract's batch limit).
BATCH = 100
#: The longest wait between two attempts.
MAX_BACKOFF_SECONDS = 3600

_QUEUE = text(
    """
    INSERT INTO conversion_deliveries
        (seller_id, order_id, order_created_at, network, event_name, attempts)
    SELECT d.seller_id, :order_id, :order_created_at, d.network, :event_name, 0
      FROM conversion_destinations AS d
     WHERE d.seller_id = :seller_id
    ON CONFLICT (seller_id, order_id, network, event_name) DO NOTHING
    """
)
# Due rows, claimed for a lease: another sender skips them until it ends.
_CLAIM = text(
    """
    WITH due AS (
        SELECT id FROM conversion_deliveries
         WHERE seller_id = :seller_id AND status = 'PENDING' AND next_attempt_at <= :now
         ORDER BY next_attempt_at
         LIMIT :limit
           FOR UPDATE SKIP LOCKED
    )
    UPDATE conversion_deliveries AS c
       SET attempts = c.attempts + 1, next_attempt_at = :lease_until
      FROM due
     WHERE c.seller_id = :seller_id AND c.id = due.id
    RETURNING c.id, c.order_id, c.order_created_at, c.network, c.event_name, c.attempts
    """
)
_ORDERS = text(
    """
    SELECT o.id, o.total_minor, o.currency, o.customer_email, o.landing_url, o.fbp, o.fbc,
           o.fbclid, o.client_ip, o.user_agent,
           (SELECT max(p.occurred_at) FROM payment_events AS p
             WHERE p.seller_id = o.seller_id AND p.order_id = o.id
               AND p.event_type = 'CAPTURED') AS captured_at
      FROM orders AS o
     WHERE o.seller_id = :seller_id AND o.id = ANY(CAST(:ids AS uuid[]))
       AND o.created_at BETWEEN :first AND :last
    """
)
_DESTINATIONS = text(
    "SELECT network, destination_id, token_ciphertext, test_event_code"
    " FROM conversion_destinations WHERE seller_id = :seller_id"
)
_SENT = text(
    "UPDATE conversion_deliveries SET status = 'SENT', sent_at = now(), trace_id = :trace_id,"
    " last_error = NULL WHERE seller_id = :seller_id AND id = ANY(CAST(:ids AS uuid[]))"
)
_RETRY = text(
    "UPDATE conversion_deliveries SET next_attempt_at = :at, last_error = :error"
    " WHERE seller_id = :seller_id AND id = ANY(CAST(:ids AS uuid[]))"
)
_FAILED = text(
    "UPDATE conversion_deliveries SET status = 'FAILED', last_error = :error"
    " WHERE seller_id = :seller_id AND id = ANY(CAST(:ids AS uuid[]))"
)
_DUE_SELLERS = text("SELECT seller_id FROM pixecom_due_conversions(:before, :max_rows)")


async def queue_purchase(
    scope: SellerScope, order_id: uuid.UUID, order_created_at: datetime
) -> int:
    """Queue the order's ``Purchase`` for each of the seller's destinations, in the
    caller's transaction (the one that makes the order PAID); return how many were new.
    Idempotent: the event of an order is queued once per network, ever."""
    result = await scope.session.execute(
        _QUEUE,
        {
            "seller_id": scope.seller_id,
            "order_id": order_id,
            "order_created_at": order_created_at,
            "event_name": "Purchase",
        },
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass
class SendReport:
    """What one pass over a seller's due events did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Claimed:
    id: uuid.UUID
    order_id: uuid.UUID
    order_created_at: datetime
    network: str
    attempts: int


class ConversionSender:
    """Sends sellers' due conversion events through the networks' plugins."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        registry: ProviderRegistry,
        box: SecretBox,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._registry = registry
        self._box = box

    async def due_sellers(
        self, now: datetime | None = None, max_rows: int = 500
    ) -> list[uuid.UUID]:
        """Sellers with events due (retries whose wait is over, kicks that were lost)."""
        async with self._sessions() as session, session.begin():
            rows = await session.scalars(
                _DUE_SELLERS, {"before": now or datetime.now(UTC), "max_rows": max_rows}
            )
            return list(rows)

    async def send_due(self, seller_id: uuid.UUID, now: datetime | None = None) -> SendReport:
        """Send the seller's due events, a batch per network; return what happened."""
        now = now or datetime.now(UTC)
        report = SendReport()
        lease_until = now + timedelta(seconds=self._settings.conversion_lease_seconds)
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            claimed = [
                _Claimed(row.id, row.order_id, row.order_created_at, row.network, row.attempts)
                for row in await scope.session.execute(
                    _CLAIM,
                    {
                        "seller_id": seller_id,
                        "now": now,
                        "limit": BATCH,
                        "lease_until": lease_until,
                    },
                )
            ]
            if not claimed:
                return report
            created = [
                row.order_created_at
                for row in await scope.session.execute(
                    text(
                        "SELECT order_created_at FROM conversion_deliveries"
                        " WHERE seller_id = :seller_id AND id = ANY(CAST(:ids AS uuid[]))"
                    ),
                    {"seller_id": seller_id, "ids": [c.id for c in claimed]},
                )
            ]
            orders = {
                row.id: row
                for row in await scope.session.execute(
                    _ORDERS,
                    {
                        "seller_id": seller_id,
                        "ids": [c.order_id for c in claimed],
                        "first": min(created),
                        "last": max(created),
                    },
                )
            }
            destinations = {
                row.network: row
                for row in await scope.session.execute(_DESTINATIONS, {"seller_id": seller_id})
            }
        by_network: dict[str, list[_Claimed]] = defaultdict(list)
        for item in claimed:
            by_network[item.network].append(item)
        for network, items in by_network.items():
            await self._send(seller_id, network, items, orders, destinations.get(network), report)
        return report

    async def _send(
        self,
        seller_id: uuid.UUID,
        network: str,
        items: list[_Claimed],
        orders: dict[uuid.UUID, Any],
        destination: Any,
        report: SendReport,
    ) -> None:
        if destination is None:
            await self._fail(seller_id, items, "no destination is set for this network", report)
            return
        try:
            provider = self._registry.ad_network(network)
        except UnknownProviderError as exc:
            await self._retry(seller_id, items, str(exc), report)
            return
        if not isinstance(provider, ConversionsDestination):
            await self._fail(seller_id, items, f"{network} cannot receive events", report)
            return
        events = [_event(orders[item.order_id]) for item in items if item.order_id in orders]
        target = ConversionDestination(
            seller_id=seller_id,
            destination_id=destination.destination_id,
            access_token=SecretStr(self._box.decrypt(destination.token_ciphertext)),
            test_event_code=destination.test_event_code,
        )
        try:
            receipt = await provider.send_conversions(target, events)
        except ProviderRefused as exc:
            await self._fail(seller_id, items, f"refused by {network}: {exc}", report)
            return
        except ProviderThrottled as exc:
            wait = exc.retry_after_seconds or self._settings.conversion_retry_base_seconds
            await self._retry(seller_id, items, f"throttled by {network}", report, wait=wait)
            return
        except (ProviderAuthError, ProviderError) as exc:
            await self._retry(seller_id, items, f"{type(exc).__name__}: {exc}", report)
            return
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            await scope.session.execute(
                _SENT,
                {
                    "seller_id": seller_id,
                    "ids": [item.id for item in items],
                    "trace_id": receipt.trace_id,
                },
            )
        report.sent += len(items)

    async def _retry(
        self,
        seller_id: uuid.UUID,
        items: list[_Claimed],
        error: str,
        report: SendReport,
        *,
        wait: float | None = None,
    ) -> None:
        """Try again later — or, for events out of attempts, give up."""
        limit = self._settings.conversion_max_attempts
        spent = [item for item in items if item.attempts >= limit]
        left = [item for item in items if item.attempts < limit]
        if spent:
            await self._fail(seller_id, spent, f"gave up after {limit} attempts: {error}", report)
        if not left:
            return
        attempts = max(item.attempts for item in left)
        backoff = wait or min(
            self._settings.conversion_retry_base_seconds * 2 ** (attempts - 1),
            MAX_BACKOFF_SECONDS,
        )
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            await scope.session.execute(
                _RETRY,
                {
                    "seller_id": seller_id,
                    "ids": [item.id for item in left],
                    "at": datetime.now(UTC) + timedelta(seconds=backoff),
                    "error": error[:2000],
                },
            )
        report.retried += len(left)
        report.errors.append(error)

    async def _fail(
        self, seller_id: uuid.UUID, items: list[_Claimed], error: str, report: SendReport
    ) -> None:
        """End the events FAILED, each with a dead letter the seller sees."""
        _log.warning("conversion events of %s failed: %s", seller_id, error)
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            await scope.session.execute(
                _FAILED,
                {"seller_id": seller_id, "ids": [item.id for item in items], "error": error[:2000]},
            )
            for item in items:
                await scope.session.execute(
                    RECORD_DEAD_LETTER,
                    {
                        "task_name": SEND_CONVERSIONS_TASK,
                        "task_id": f"conversion-{item.id}",
                        "seller_id": seller_id,
                        "arguments": json.dumps(
                            {"order_id": str(item.order_id), "network": item.network}
                        ),
                        "error": error[:4000],
                        "attempts": item.attempts,
                    },
                )
        report.failed += len(items)
        report.errors.append(error)


def _event(order: Any) -> ConversionEvent:
    """The order's Purchase, as core knows it (the plugin normalises and hashes)."""
    browser_ids = {name: value for name, value in (("fbp", order.fbp), ("fbc", order.fbc)) if value}
    return ConversionEvent(
        event_id=str(order.id),
        event_name="Purchase",
        event_time=order.captured_at or datetime.now(UTC),
        event_source_url=order.landing_url,
        value_minor=int(order.total_minor),
        currency=order.currency.strip(),
        order_id=order.id,
        email=order.customer_email,
        client_ip=order.client_ip,
        user_agent=order.user_agent,
        browser_ids=browser_ids,
        click_id=order.fbclid,
    )
