"""An order's status and its timeline: the one place that writes them.

Every change of ``orders.status`` goes through :func:`change_order_status`, which writes
the ``STATUS_CHANGED`` row of the order's timeline in the same statement batch; every
other timeline row (``CREATED``, ``PAYMENT_RECORDED``, ``TRACKING_UPDATED``) through
:func:`record_order_event`. Both run inside the caller's seller scope and never commit:
the caller owns the transaction, and announces the returned
:class:`~pixecom_core.providers.OrderStatusChange` only after it committed
(:func:`pixecom_core.events.announce`). Issue 13 item 4: this SQL used to be copied in the
ledger, tracking and checkout.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import text

from pixecom_core.dashboard_cache import DashboardPart, dashboard_changed_on_commit
from pixecom_core.models.orders import OrderEventType, OrderStatus
from pixecom_core.providers import OrderStatusChange
from pixecom_core.tenancy import SellerScope

# clock_timestamp(), not now(): now() is the transaction's start, so the events one
# transaction writes (PAYMENT_RECORDED, then STATUS_CHANGED) would tie and lose their order.
_INSERT_ORDER_EVENT = text(
    """
    INSERT INTO order_events
        (seller_id, created_at, order_id, event_type, from_status, to_status, payload)
    VALUES (:seller_id, clock_timestamp(), :order_id, :event_type, :from_status, :to_status,
            CAST(:payload AS jsonb))
    RETURNING created_at
    """
)
_SET_STATUS = text(
    "UPDATE orders SET status = :status, updated_at = now()"
    " WHERE seller_id = :seller_id AND id = :order_id AND created_at = :created_at"
)


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


async def record_order_event(
    scope: SellerScope,
    *,
    order_id: uuid.UUID,
    event_type: OrderEventType,
    payload: Mapping[str, Any],
    from_status: OrderStatus | None = None,
    to_status: OrderStatus | None = None,
) -> datetime:
    """Append one row to the order's timeline; return its time.

    :param payload: what the row says, as JSON (values ``json`` cannot encode are written
        as their ``str``).
    """
    # Issue 18: every change of an order is on its timeline; the seller's cached orders
    # list is stale once it commits. The stats read roll-ups only, which the ledger's
    # re-aggregation marks make stale (pixecom_core.stats.aggregate).
    dashboard_changed_on_commit(scope, {DashboardPart.ORDERS})
    created_at: datetime = (
        await scope.session.execute(
            _INSERT_ORDER_EVENT,
            {
                "seller_id": scope.seller_id,
                "order_id": order_id,
                "event_type": event_type.value,
                "from_status": None if from_status is None else from_status.value,
                "to_status": None if to_status is None else to_status.value,
                "payload": _json(payload),
            },
        )
    ).scalar_one()
    return created_at


async def change_order_status(
    scope: SellerScope,
    *,
    order_id: uuid.UUID,
    order_created_at: datetime,
    from_status: OrderStatus,
    to_status: OrderStatus,
    reason: str,
) -> OrderStatusChange:
    """Move the order from ``from_status`` to ``to_status`` and write why on its timeline.

    The caller has locked the order row (or read it in the transaction that writes) and
    decided the move; this writes it. Returns the change to announce after commit.

    :param order_created_at: the order's ``created_at`` (part of its key: orders are
        partitioned by it).
    :param reason: why, in words a seller reads on the timeline and plugins receive.
    """
    await scope.session.execute(
        _SET_STATUS,
        {
            "seller_id": scope.seller_id,
            "order_id": order_id,
            "created_at": order_created_at,
            "status": to_status.value,
        },
    )
    changed_at = await record_order_event(
        scope,
        order_id=order_id,
        event_type=OrderEventType.STATUS_CHANGED,
        payload={"reason": reason},
        from_status=from_status,
        to_status=to_status,
    )
    return OrderStatusChange(
        seller_id=scope.seller_id,
        order_id=order_id,
        previous_status=from_status.value,
        new_status=to_status.value,
        changed_at=changed_at,
        reason=reason,
    )


__all__ = ["change_order_status", "record_order_event"]
