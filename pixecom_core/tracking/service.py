"""Parcel tracking: register shipped orders with a tracker, apply its pushes and polls.

A seller adds a tracking number to an order; it is registered with the tracker plugin
(``tracking_provider``) and then updated two ways: the tracker pushes changes
(:meth:`TrackingService.receive_push`) and a job polls parcels that are not delivered yet
every ``tracking_refresh_seconds`` (:meth:`TrackingService.refresh_seller`). Every call to
the tracker goes through its circuit breaker (SCALE-9): when the tracker is
slow or down, tracking jobs fail fast instead of tying up workers.

Updates are idempotent: a record only moves forward (a newer ``updated_at``), each real
change writes one ``TRACKING_UPDATED`` order event, and a parcel in transit or delivered
moves a paid order to ``SHIPPED`` or ``DELIVERED``. The tag handed to the tracker is
``<seller id>:<order id>``, so a push finds its seller without any lookup by number.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pluggy
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.errors import ConflictError, NotFoundError
from pixecom_core.events import announce
from pixecom_core.models.orders import OrderEventType, OrderStatus
from pixecom_core.orders.status import change_order_status, record_order_event
from pixecom_core.plugins import ProviderRegistry
from pixecom_core.providers import (
    OrderStatusChange,
    Tracker,
    TrackingNumber,
    TrackingStatus,
    TrackingUpdate,
)
from pixecom_core.resilience import ProviderBreakers
from pixecom_core.settings import Settings
from pixecom_core.tenancy import SellerContext, SellerScope, open_seller_scope

_log = logging.getLogger(__name__)

#: Records polled per seller per refresh (bounded work per job).
MAX_REFRESH_RECORDS = 2_000

#: Order status a parcel status moves a paid order to (never backwards).
_ORDER_STATUS_FOR = {
    TrackingStatus.IN_TRANSIT: OrderStatus.SHIPPED,
    TrackingStatus.OUT_FOR_DELIVERY: OrderStatus.SHIPPED,
    TrackingStatus.AVAILABLE_FOR_PICKUP: OrderStatus.SHIPPED,
    TrackingStatus.DELIVERED: OrderStatus.DELIVERED,
}
_MOVABLE = {
    OrderStatus.SHIPPED: {OrderStatus.PAID, OrderStatus.CONFIRMED},
    OrderStatus.DELIVERED: {OrderStatus.PAID, OrderStatus.CONFIRMED, OrderStatus.SHIPPED},
}

_ORDER = text(
    "SELECT id, created_at, status FROM orders WHERE seller_id = :seller_id AND id = :order_id"
)
_INSERT_RECORD = text(
    """
    INSERT INTO tracking_records (seller_id, order_id, carrier, tracking_number)
    VALUES (:seller_id, :order_id, :carrier, :number)
    RETURNING id
    """
)
_APPLY = text(
    """
    WITH existing AS (
        SELECT id, status FROM tracking_records
         WHERE seller_id = :seller_id AND order_id = :order_id AND tracking_number = :number
           AND (last_event_at IS NULL OR last_event_at < :updated_at)
         FOR UPDATE
    )
    UPDATE tracking_records AS t
       SET status = :status, last_event_at = :updated_at, last_checked_at = now(),
           raw = CAST(:raw AS jsonb)
      FROM existing
     WHERE t.seller_id = :seller_id AND t.id = existing.id
    RETURNING t.id, t.order_id, existing.status AS previous
    """
)
# A number the tracker refused for good is kept, marked, and no longer re-sent.
_MARK_REJECTED = text(
    "UPDATE tracking_records"
    " SET raw = raw || jsonb_build_object('rejected', CAST(:reason AS text)),"
    " last_checked_at = now()"
    " WHERE seller_id = :seller_id AND order_id = :order_id AND tracking_number = :number"
)
_TOUCH = text(
    "UPDATE tracking_records SET last_checked_at = now()"
    " WHERE seller_id = :seller_id AND tracking_number = ANY(CAST(:numbers AS text[]))"
)
_DUE = text(
    """
    SELECT carrier, tracking_number, order_id, status FROM tracking_records
     WHERE seller_id = :seller_id AND status NOT IN ('delivered', 'expired')
       AND NOT raw ? 'rejected'
       AND (last_checked_at IS NULL OR last_checked_at < :checked_before)
     ORDER BY last_checked_at NULLS FIRST
     LIMIT :limit
    """
)


def tag_for(seller_id: uuid.UUID, order_id: uuid.UUID) -> str:
    """The tag the tracker stores and echoes back."""
    return f"{seller_id}:{order_id}"


def parse_tag(tag: str | None) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(seller id, order id) from a tag this service issued, else ``None``."""
    if not tag or ":" not in tag:
        return None
    seller, order = tag.split(":", 1)
    try:
        return uuid.UUID(seller), uuid.UUID(order)
    except ValueError:
        return None


@dataclass(frozen=True)
class TrackingRecordView:
    """A tracking number of an order and its last known status."""

    id: uuid.UUID
    order_id: uuid.UUID
    carrier: str
    tracking_number: str
    status: TrackingStatus
    last_event_at: datetime | None
    last_checked_at: datetime | None


@dataclass(frozen=True)
class RefreshResult:
    """What one seller's refresh did."""

    registered: int
    polled: int
    changed: int


class TrackingService:
    """Tracking numbers through the configured tracker plugin, behind its breaker."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        registry: ProviderRegistry,
        breakers: ProviderBreakers,
        plugin_manager: pluggy.PluginManager | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._registry = registry
        self._breakers = breakers
        self._pm = plugin_manager

    def tracker(self, identifier: str | None = None) -> Tracker:
        """The tracker plugin (the configured one unless ``identifier`` names another)."""
        return self._registry.tracker(identifier or self._settings.tracking_provider)

    async def add(
        self, context: SellerContext, order_id: uuid.UUID, *, carrier: str, number: str
    ) -> TrackingRecordView:
        """Attach a tracking number to one of the seller's orders and register it.

        The record is stored first; registration is attempted once here and otherwise by
        the next refresh, so a tracker outage never loses the number.
        """
        async with context.scope() as scope:
            order = (
                await scope.session.execute(
                    _ORDER, {"seller_id": context.seller_id, "order_id": order_id}
                )
            ).first()
            if order is None:
                raise NotFoundError("no such order")
            try:
                await scope.session.execute(
                    _INSERT_RECORD,
                    {
                        "seller_id": context.seller_id,
                        "order_id": order_id,
                        "carrier": carrier,
                        "number": number,
                    },
                )
            except IntegrityError as exc:
                raise ConflictError(
                    "this tracking number is already registered", code="tracking_number_taken"
                ) from exc
        try:
            await self._register(
                [
                    TrackingNumber(
                        number=number, carrier=carrier, tag=tag_for(context.seller_id, order_id)
                    )
                ]
            )
        except Exception as exc:  # retried by the refresh job; the record is kept
            _log.warning("registering %s failed, the refresh will retry: %s", number, exc)
        records = await self.for_order(context, order_id)
        return next(r for r in records if r.tracking_number == number and r.carrier == carrier)

    async def for_order(
        self, context: SellerContext, order_id: uuid.UUID
    ) -> list[TrackingRecordView]:
        """The order's tracking records (an order has a handful at most)."""
        async with context.scope() as scope:
            rows = (
                await scope.session.execute(
                    text(
                        "SELECT id, order_id, carrier, tracking_number, status, last_event_at,"
                        " last_checked_at FROM tracking_records WHERE seller_id = :seller_id"
                        " AND order_id = :order_id ORDER BY created_at, id LIMIT 50"
                    ),
                    {"seller_id": context.seller_id, "order_id": order_id},
                )
            ).all()
            if not rows:
                order = (
                    await scope.session.execute(
                        _ORDER, {"seller_id": context.seller_id, "order_id": order_id}
                    )
                ).first()
                if order is None:
                    raise NotFoundError("no such order")
        return [
            TrackingRecordView(
                id=r.id,
                order_id=r.order_id,
                carrier=r.carrier,
                tracking_number=r.tracking_number,
                status=TrackingStatus(r.status),
                last_event_at=r.last_event_at,
                last_checked_at=r.last_checked_at,
            )
            for r in rows
        ]

    async def receive_push(
        self, tracker_id: str, *, body: bytes, headers: Mapping[str, str]
    ) -> int:
        """Verify a push through the tracker plugin and apply it; return records changed.

        Raises :class:`pixecom_core.providers.WebhookVerificationError` for a bad
        signature (nothing is written).
        """
        tracker = self.tracker(tracker_id)
        lowered = {name.lower(): value for name, value in headers.items()}
        updates = await tracker.verify_push(body=body, headers=lowered)
        return await self.apply(updates)

    async def apply(self, updates: Sequence[TrackingUpdate]) -> int:
        """Apply updates (from a push or a poll); return how many records changed.

        The order status changes they cause are announced once the seller's transaction
        committed; a seller whose transaction rolls back announces nothing.
        """
        changed = 0
        by_seller: dict[uuid.UUID, list[TrackingUpdate]] = {}
        for update in updates:
            parsed = parse_tag(update.number.tag)
            if parsed is None:
                _log.warning("tracking update for %s has no tag of ours", update.number.number)
                continue
            by_seller.setdefault(parsed[0], []).append(update)
        for seller_id, seller_updates in by_seller.items():
            status_changes: list[OrderStatusChange] = []
            async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
                for update in seller_updates:
                    changed += await self._apply_one(scope, update, status_changes)
            # Committed (issue 13 item 3: never announce inside a transaction that may
            # still roll back).
            for change in status_changes:
                announce(self._pm, "pixecom_on_order_status_changed", change=change)
        return changed

    async def _apply_one(
        self, scope: SellerScope, update: TrackingUpdate, status_changes: list[OrderStatusChange]
    ) -> int:
        session = scope.session
        parsed = parse_tag(update.number.tag)
        assert parsed is not None  # apply() only passes tagged updates
        # Matched on the order (from our tag) and the number: a tracker may name the
        # carrier its own way (17TRACK sends numeric carrier codes).
        row = (
            await session.execute(
                _APPLY,
                {
                    "seller_id": scope.seller_id,
                    "order_id": parsed[1],
                    "number": update.number.number,
                    "status": update.status.value,
                    "updated_at": update.updated_at,
                    "raw": json.dumps(
                        {
                            "sub_status": update.sub_status,
                            "checkpoints": [
                                c.model_dump(mode="json") for c in update.checkpoints[:20]
                            ],
                        }
                    ),
                },
            )
        ).first()
        if row is None:
            return 0  # unknown number, or not newer than what is stored: nothing changes
        previous = TrackingStatus(row.previous)
        if previous is update.status:
            return 0
        await record_order_event(
            scope,
            order_id=row.order_id,
            event_type=OrderEventType.TRACKING_UPDATED,
            payload={
                "tracking_number": update.number.number,
                "from": previous.value,
                "to": update.status.value,
            },
        )
        change = await self._move_order(scope, row.order_id, update.status)
        if change is not None:
            status_changes.append(change)
        return 1

    async def _move_order(
        self, scope: SellerScope, order_id: uuid.UUID, parcel: TrackingStatus
    ) -> OrderStatusChange | None:
        target = _ORDER_STATUS_FOR.get(parcel)
        if target is None:
            return None
        order = (
            await scope.session.execute(
                _ORDER, {"seller_id": scope.seller_id, "order_id": order_id}
            )
        ).first()
        if order is None or OrderStatus(order.status) not in _MOVABLE[target]:
            return None
        return await change_order_status(
            scope,
            order_id=order_id,
            order_created_at=order.created_at,
            from_status=OrderStatus(order.status),
            to_status=target,
            reason=f"parcel {parcel.value}",
        )

    async def _register(self, numbers: Sequence[TrackingNumber]) -> int:
        tracker = self.tracker()
        accepted = 0
        for start in range(0, len(numbers), tracker.max_batch_size):
            batch = numbers[start : start + tracker.max_batch_size]
            async with self._breakers.guard("tracker", tracker.identifier):
                result = await tracker.register(batch)
            accepted += len(result.accepted)
            for rejected in result.rejected:
                _log.warning("tracker refused %s: %s", rejected.number.number, rejected.reason)
                parsed = parse_tag(rejected.number.tag)
                if not rejected.retryable and parsed is not None:
                    async with open_seller_scope(
                        self._sessions, parsed[0], self._settings
                    ) as scope:
                        await scope.session.execute(
                            _MARK_REJECTED,
                            {
                                "seller_id": parsed[0],
                                "order_id": parsed[1],
                                "number": rejected.number.number,
                                "reason": rejected.reason[:500],
                            },
                        )
        return accepted

    async def refresh_seller(self, seller_id: uuid.UUID) -> RefreshResult:
        """Register and poll the seller's parcels that are due; apply what changed.

        Raises :class:`pixecom_core.providers.ProviderUnavailable` at once when the
        tracker's breaker is open: the job fails fast and is retried at its next slot.
        """
        checked_before = datetime.now(UTC) - timedelta(
            seconds=self._settings.tracking_refresh_seconds
        )
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            rows = (
                await scope.session.execute(
                    _DUE,
                    {
                        "seller_id": seller_id,
                        "checked_before": checked_before,
                        "limit": MAX_REFRESH_RECORDS,
                    },
                )
            ).all()
        if not rows:
            return RefreshResult(registered=0, polled=0, changed=0)
        numbers = [
            TrackingNumber(
                number=r.tracking_number, carrier=r.carrier, tag=tag_for(seller_id, r.order_id)
            )
            for r in rows
        ]
        unregistered = [n for n, r in zip(numbers, rows, strict=True) if r.status == "not_found"]
        registered = await self._register(unregistered) if unregistered else 0
        tracker = self.tracker()
        updates: list[TrackingUpdate] = []
        for start in range(0, len(numbers), tracker.max_batch_size):
            batch = numbers[start : start + tracker.max_batch_size]
            async with self._breakers.guard("tracker", tracker.identifier):
                updates.extend(await tracker.fetch_status(batch))
        changed = await self.apply(updates)
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            await scope.session.execute(
                _TOUCH, {"seller_id": seller_id, "numbers": [n.number for n in numbers]}
            )
        return RefreshResult(registered=registered, polled=len(numbers), changed=changed)
