"""When each seller's sync is due: tiered intervals, start times spread, one kick per slot.

SCALE-5 ("cron-based scheduling will not scale"): instead of every seller at T+0, T+5 …,
each seller has

- an interval by tier — high spenders every minute, medium every 5, low every 30
  (settings) — plus one restatement sweep a day over 28 days;
- a fixed offset inside that interval derived from its id, so starts spread evenly over
  the interval (no stampeding herd) and stay put from one run to the next;
- numbered slots: the sync for slot ``n`` is claimed with ``SET key NX`` in Redis before
  it is queued, so two schedulers (or a restarted one) queue it once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pixecom_core.models.sellers import SellerTier
from pixecom_core.settings import Settings

DAY_SECONDS = 86_400


@dataclass(frozen=True)
class DueSync:
    """A sync to queue now: for whom, over how many days, on which tier's queue, and the
    Redis key that claims its slot."""

    seller_id: uuid.UUID
    tier: SellerTier
    days_back: int
    claim_key: str
    claim_seconds: int
    sweep: bool


def interval_for(tier: SellerTier, settings: Settings) -> int:
    """Seconds between two syncs of a seller of ``tier``."""
    return {
        SellerTier.HIGH: settings.sync_interval_high_seconds,
        SellerTier.MEDIUM: settings.sync_interval_medium_seconds,
        SellerTier.LOW: settings.sync_interval_low_seconds,
    }[tier]


def offset_for(seller_id: uuid.UUID, interval: int) -> int:
    """The seller's fixed start offset within ``interval`` (uniform over sellers)."""
    digest = hashlib.sha256(seller_id.bytes).digest()
    return int.from_bytes(digest[:8]) % interval


def slot(now: datetime, interval: int, offset: int) -> int:
    """The number of the interval ``now`` falls in, for a seller starting at ``offset``."""
    return (int(now.timestamp()) - offset) // interval


#: A sweep slot missed by more than this (scheduler down) waits for the next day.
SWEEP_CATCH_UP_SECONDS = 3_600


def _elapsed(now: datetime, interval: int, offset: int) -> int:
    return (int(now.timestamp()) - offset) % interval


def due_tracking_refreshes(
    sellers: Iterable[uuid.UUID], now: datetime, settings: Settings
) -> list[tuple[uuid.UUID, str, int]]:
    """(seller, claim key, claim seconds) of tracking refreshes whose slot just started,
    every ``tracking_refresh_seconds`` at a per-seller offset."""
    interval = settings.tracking_refresh_seconds
    catch_up = 3 * settings.scheduler_tick_seconds
    due = []
    for seller_id in sellers:
        offset = offset_for(seller_id, interval)
        if _elapsed(now, interval, offset) < catch_up:
            key = (
                f"{settings.redis_key_prefix}schedule:tracking:{seller_id}:"
                f"{slot(now, interval, offset)}"
            )
            due.append((seller_id, key, interval * 2))
    return due


def due_syncs(
    sellers: Iterable[tuple[uuid.UUID, SellerTier]], now: datetime, settings: Settings
) -> list[DueSync]:
    """Syncs whose slot started within the last few scheduler ticks; the caller claims
    each and queues the claimed ones (a slot already claimed was queued before).

    Only a recent slot start counts, so a scheduler (re)starting does not queue every
    seller at once: a seller whose start it missed is synced at its next slot.
    """
    prefix = settings.redis_key_prefix
    catch_up = 3 * settings.scheduler_tick_seconds
    due = []
    for seller_id, tier in sellers:
        interval = interval_for(tier, settings)
        offset = offset_for(seller_id, interval)
        current = slot(now, interval, offset)
        day_offset = offset_for(seller_id, DAY_SECONDS)
        if _elapsed(now, DAY_SECONDS, day_offset) < SWEEP_CATCH_UP_SECONDS:
            day = slot(now, DAY_SECONDS, day_offset)
            due.append(
                DueSync(
                    seller_id=seller_id,
                    tier=SellerTier.LOW,
                    days_back=settings.sweep_window_days,
                    claim_key=f"{prefix}schedule:sweep:{seller_id}:{day}",
                    claim_seconds=DAY_SECONDS * 2,
                    sweep=True,
                )
            )
        if _elapsed(now, interval, offset) >= catch_up:
            continue
        due.append(
            DueSync(
                seller_id=seller_id,
                tier=tier,
                days_back=settings.sync_window_days,
                claim_key=f"{prefix}schedule:sync:{seller_id}:{interval}:{current}",
                claim_seconds=interval * 2,
                sweep=False,
            )
        )
    return due
