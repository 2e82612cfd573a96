"""Queue streams trimmed by age, never past a message still to be run.

Issue 18 item 5 ("nothing grows without bound"). taskiq-redis's stream broker
acknowledges a message with XACK, which does not delete it; ``queue_max_length`` bounds a
stream by count when a message is added, so a quiet queue keeps its last 100,000 messages
(task arguments included) for ever. ``pixecom db maintain`` trims every queue's stream of
the entries older than ``queue_retention_days`` with ``XTRIM … MINID``, but never an
entry a consumer group still needs:

- an entry delivered and not acknowledged (XPENDING: its worker may still run it, or it
  will be reclaimed from a dead worker), and
- an entry not yet delivered to the group (after the group's ``last-delivered-id`` in
  XINFO GROUPS).

MINID removes every entry below one id, so the floor is the oldest of: the age cutoff,
each group's oldest pending entry, and the entry right after each group's last delivered
one. A stream no group reads yet is left alone (its entries all wait). A message delivered
or claimed between the reads and the trim only moves the floor up for the next run:
nothing still needed is ever below the floor computed here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from pixecom_core.settings import Settings
from reference_app.configuration import require_redis_url
from reference_app.worker.broker import Queue, stream_name

#: A stream entry id as (milliseconds, sequence).
StreamId = tuple[int, int]


@dataclass(frozen=True)
class StreamTrim:
    """What trimming one queue's stream did.

    :param stream: the stream's key.
    :param trimmed: entries removed.
    :param floor: the MINID used (entries from it on were kept), or ``None`` when the
        stream was left alone (no consumer group yet).
    """

    stream: str
    trimmed: int
    floor: str | None


def parse_stream_id(value: str | bytes) -> StreamId:
    """``"1733580000000-3"`` → ``(1733580000000, 3)``."""
    text = value.decode() if isinstance(value, bytes) else value
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


def format_stream_id(value: StreamId) -> str:
    """``(1733580000000, 3)`` → ``"1733580000000-3"``."""
    return f"{value[0]}-{value[1]}"


def trim_floor(
    cutoff: StreamId,
    groups: Iterable[Mapping[str, Any]],
    oldest_pending: Mapping[str, StreamId | None],
) -> StreamId | None:
    """The lowest entry id every consumer group may still need, capped by ``cutoff``.

    :param groups: XINFO GROUPS entries (``name``, ``last-delivered-id``).
    :param oldest_pending: per group name, its oldest unacknowledged entry (or ``None``).
    :returns: ``None`` when there is no group (nothing may be trimmed).
    """
    floor: StreamId | None = None
    for group in groups:
        name = str(group["name"])
        delivered_ms, delivered_seq = parse_stream_id(group["last-delivered-id"])
        # Entries after the last delivered one were never read by this group.
        candidates = [cutoff, (delivered_ms, delivered_seq + 1)]
        pending = oldest_pending.get(name)
        if pending is not None:
            candidates.append(pending)
        lowest = min(candidates)
        floor = lowest if floor is None else min(floor, lowest)
    return floor


def trim_stream(client: redis.Redis, stream: str, cutoff: StreamId) -> StreamTrim:
    """Trim one stream below the floor :func:`trim_floor` computes for it."""
    if not client.exists(stream):
        return StreamTrim(stream=stream, trimmed=0, floor=None)
    groups: list[dict[str, Any]] = client.xinfo_groups(stream)
    oldest_pending: dict[str, StreamId | None] = {}
    for group in groups:
        summary: dict[str, Any] = client.xpending(stream, group["name"])
        oldest_pending[str(group["name"])] = (
            parse_stream_id(summary["min"]) if summary.get("pending") else None
        )
    floor = trim_floor(cutoff, groups, oldest_pending)
    if floor is None:
        return StreamTrim(stream=stream, trimmed=0, floor=None)
    # Exact, not "~": a daily run on a stream bounded by queue_max_length is cheap.
    trimmed = int(client.xtrim(stream, minid=format_stream_id(floor), approximate=False))
    return StreamTrim(stream=stream, trimmed=trimmed, floor=format_stream_id(floor))


def trim_queue_streams(settings: Settings, *, now: datetime | None = None) -> list[StreamTrim]:
    """Trim every queue's stream of entries older than ``queue_retention_days``.

    :param now: the reference time (now, UTC, when omitted); tests pass their own.
    """
    at = now or datetime.now(UTC)
    cutoff_ms = int((at - timedelta(days=settings.queue_retention_days)).timestamp() * 1000)
    client = redis.Redis.from_url(require_redis_url(settings), decode_responses=True)
    try:
        return [
            trim_stream(client, stream_name(settings, queue), (cutoff_ms, 0)) for queue in Queue
        ]
    finally:
        client.close()
