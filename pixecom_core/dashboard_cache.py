"""Sellers' dashboard reads, cached in Redis per seller, made stale by the writes that
change them (SCALE-6: every dashboard read hit PostgreSQL; issue 18 item 1).

A dashboard read (the stats overview, sellpages, entities, a campaign's days, the orders
list) is answered from the exact response bytes cached under the seller, the route and
its normalised query, so a repeated read costs one Redis round trip, no SQL and no
serialisation. Invalidation is per seller and cannot be undone by a slow reader, the same
way as the storefront's (:mod:`pixecom_core.catalog.storefront`):

- each seller has a *generation token* in Redis per :class:`DashboardPart` (its orders,
  its campaigns, its stats); every entry records the token of its route's part it was
  computed under, and an entry whose token is not the current one is a miss;
- a write that changes what a dashboard shows gives the seller a fresh random token once
  its transaction has committed — never before: a reader could otherwise compute the old
  state after the change and store it under the new token;
- a reader takes the token *before* it reads the database, so a body computed from data
  older than a change is stored under the old token and never served.

How a write says so — both only ever take effect after the commit:

- inside the transaction that writes, :func:`dashboard_changed_on_commit` (``scope``,
  and the parts it changed; every part when not said): when that transaction commits,
  the seller's tokens of those parts are replaced; on a rollback nothing happens. The
  ledger (a payment fact, an order status change: the orders), checkout (a new order:
  the orders), the stats' re-aggregation marks and roll-ups (the stats), linking a
  campaign and the sync's naming of entities (every part) call it. A plugin that writes
  rows a dashboard reads calls it the same way.
- after a commit, with the cache at hand: ``await cache.sellers_changed({seller_id})``
  (every part; the API does this for every successful write of the acting seller, so
  their own next read is fresh whatever it changed).

Parts exist for scenario C's shoppers (issue 18 item 2): a checkout changes the seller's
orders list several times a second at peak, and made every one of their dashboard reads
— the stats and campaigns too, which no order row feeds — a miss recomputed in
PostgreSQL.

The mark reaches the cache through the session: :meth:`DashboardCache.watch` puts the
cache in the ``info`` of every session the process's session factory makes, and one
``after_commit`` listener starts the replacement of the marked sellers' tokens.
:meth:`DashboardCache.settle` waits for the replacements started so far (the API does
before it answers a write, so the writer's next read is fresh).

Entries live at most ``settings.dashboard_cache_seconds`` (0 turns the cache off): that
bounds Redis memory and what a lost invalidation (Redis down at the moment of a write) or
a read replica's lag could show. A Redis failure never fails a read or a write: a read
then computes its answer, a write's invalidation is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import redis.asyncio as redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from pixecom_core.settings import Settings
from pixecom_core.tenancy import SellerScope

_log = logging.getLogger(__name__)

#: How long a generation token lives without a write; an expired token costs one miss.
GENERATION_TTL_SECONDS: Final = 86_400
#: ``Session.info`` keys: the process's cache, and the sellers a transaction changed.
_CACHE_INFO_KEY: Final = "pixecom.dashboard_cache"
_CHANGED_INFO_KEY: Final = "pixecom.dashboard_changed"


class DashboardPart(StrEnum):
    """What a dashboard read is computed from; each part has its own generation token,
    so a write makes stale only the reads of the parts it changed."""

    #: ``/orders``: orders, their status, payment ids (every order event).
    ORDERS = "orders"
    #: ``/campaigns``: campaigns, their names, statuses and sellpage links.
    CAMPAIGNS = "campaigns"
    #: ``/stats/…``: the roll-ups and their re-aggregation marks, with the names of the
    #: sellpages and entities they show.
    STATS = "stats"


#: Every part: what a write that does not say changed.
ALL_PARTS: Final = frozenset(DashboardPart)


def part_of_route(route: str) -> DashboardPart:
    """The part a cached read's route is computed from: ``orders``, ``campaigns`` and
    every ``stats/…`` route; ValueError for a route of no part (it must not be cached
    under a token no write replaces)."""
    head = route.split("/", 1)[0]
    try:
        return DashboardPart(head)
    except ValueError:
        raise ValueError(f"dashboard route {route!r} belongs to no DashboardPart") from None


def dashboard_changed_on_commit(
    scope: SellerScope, parts: Collection[DashboardPart] = ALL_PARTS
) -> None:
    """Make the scope's seller's cached dashboard reads of ``parts`` stale once this
    transaction commits (nothing happens if it rolls back).

    Call it inside the transaction of any write that changes what a dashboard shows:
    orders, payment facts, stats rows, campaign links; name the parts only when sure the
    write changes no other (every part by default). Cheap: it only records the seller
    on the session; sessions made by a factory nobody :meth:`~DashboardCache.watch`\\ es
    (a CLI run, a test's own) invalidate nothing.
    """
    changed: dict[uuid.UUID, set[DashboardPart]] = scope.session.info.setdefault(
        _CHANGED_INFO_KEY, {}
    )
    changed.setdefault(scope.seller_id, set()).update(parts)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    changed: dict[uuid.UUID, set[DashboardPart]] | None = session.info.pop(_CHANGED_INFO_KEY, None)
    cache = session.info.get(_CACHE_INFO_KEY)
    if changed and isinstance(cache, DashboardCache):
        cache.parts_changed_soon(changed)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # A rolled-back transaction changed nothing: forget its marks. A savepoint's rollback
    # keeps them (the outer transaction may have marked before it); at worst its commit
    # then invalidates once more than needed.
    if previous_transaction.parent is None:
        session.info.pop(_CHANGED_INFO_KEY, None)


@dataclass(frozen=True)
class DashboardLookup:
    """What the cache holds for one read: the body on a hit, else the seller's current
    generation token, to be recorded with whatever the reader computes and stores."""

    body: bytes | None
    generation: str | None = None


class DashboardCache:
    """Response bodies of dashboard reads in Redis, per seller, with generation-token
    invalidation (see the module docstring).

    :param client: the process's Redis client.
    :param settings: ``redis_key_prefix`` starts every key; ``dashboard_cache_seconds``
        bounds an entry's life (0: :attr:`enabled` is false and nothing is cached).
    """

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._redis = client
        self._prefix = f"{settings.redis_key_prefix}dashboard:"
        self.ttl_seconds = settings.dashboard_cache_seconds
        self._pending: set[asyncio.Task[None]] = set()
        #: Misses being computed in this process: (entry key, token) → the body to come.
        self._computing: dict[tuple[str, str], asyncio.Future[bytes]] = {}

    @property
    def enabled(self) -> bool:
        """Whether reads are cached at all (``dashboard_cache_seconds`` > 0)."""
        return self.ttl_seconds > 0

    def watch(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Make the sessions ``sessions`` creates carry this cache, so a transaction that
        called :func:`dashboard_changed_on_commit` invalidates here once it commits."""
        info = dict(sessions.kw.get("info") or {})
        info[_CACHE_INFO_KEY] = self
        sessions.configure(info=info)

    def entry_key(self, seller_id: uuid.UUID, route: str, query: str) -> str:
        """The key of one read: the seller, the route and a hash of its normalised query
        (a cursor can be long; the hash keeps keys short). The seller id is the key's
        hash tag, so an entry and its seller's token share a Redis Cluster slot (one
        ``MGET`` reads both) while sellers spread over the cluster."""
        digest = hashlib.sha256(query.encode()).hexdigest()[:32]
        return f"{self._prefix}{{{seller_id}}}:{route}:{digest}"

    def generation_key(self, seller_id: uuid.UUID, part: DashboardPart) -> str:
        """The key of the seller's generation token of ``part`` (same hash tag as its
        entries)."""
        return f"{self._prefix}{{{seller_id}}}:generation:{part.value}"

    def lookup_keys(self, seller_id: uuid.UUID, route: str, query: str) -> list[str]:
        """The keys :meth:`lookup` reads, in the order :meth:`lookup_from` takes their
        values: a caller that reads them in a round trip of its own (the API, with the
        request's quota) then needs none here on a hit."""
        return [
            self.entry_key(seller_id, route, query),
            self.generation_key(seller_id, part_of_route(route)),
        ]

    # -- reading ------------------------------------------------------------------------

    async def lookup(self, seller_id: uuid.UUID, route: str, query: str) -> DashboardLookup:
        """The cached body of this read if it was computed under the seller's current
        token; otherwise the current token (created when the seller has none). One
        round trip on a hit. Redis failing is a miss without a token."""
        try:
            raw, token = await self._redis.mget(self.lookup_keys(seller_id, route, query))
        except redis.RedisError:
            _log.warning("dashboard cache unavailable; reading the database", exc_info=True)
            return DashboardLookup(body=None)
        return await self.lookup_from(seller_id, route, raw, token)

    async def lookup_from(
        self, seller_id: uuid.UUID, route: str, raw: object, token: object
    ) -> DashboardLookup:
        """:meth:`lookup`'s answer from the values of :meth:`lookup_keys` read already
        (the entry, the token); a round trip only on a miss of a seller with no token."""
        current = _text(token)
        if current is not None and isinstance(raw, bytes):
            entry = _Entry.decode(raw)
            if (
                entry is not None
                and entry.generation == current
                and entry.seller_id == str(seller_id)
            ):
                return DashboardLookup(body=entry.body)
        if current:
            return DashboardLookup(body=None, generation=current)
        try:
            part = part_of_route(route)
            return DashboardLookup(body=None, generation=await self._create(seller_id, part))
        except redis.RedisError:
            _log.warning("dashboard cache unavailable; reading the database", exc_info=True)
            return DashboardLookup(body=None)

    async def _create(self, seller_id: uuid.UUID, part: DashboardPart) -> str:
        key = self.generation_key(seller_id, part)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, uuid.uuid4().hex, nx=True, ex=GENERATION_TTL_SECONDS)
            pipe.get(key)
            _, token = await pipe.execute()
        # Expired between the two commands: a token nobody holds cannot match again.
        return _text(token) or uuid.uuid4().hex

    async def store(
        self, seller_id: uuid.UUID, route: str, query: str, body: bytes, *, generation: str
    ) -> None:
        """Keep ``body`` for this read under the token :meth:`lookup` gave before the
        database was read. A Redis failure is logged: the answer was computed anyway."""
        entry = _Entry(seller_id=str(seller_id), generation=generation, body=body)
        try:
            await self._redis.set(
                self.entry_key(seller_id, route, query), entry.encode(), ex=self.ttl_seconds
            )
        except redis.RedisError:
            _log.warning("dashboard read not cached", exc_info=True)

    async def compute_once(
        self,
        seller_id: uuid.UUID,
        route: str,
        query: str,
        compute: Callable[[], Awaitable[bytes]],
        *,
        generation: str,
    ) -> bytes:
        """The body of a missed read, computed once per process for each entry and token:
        the first miss runs ``compute()`` and :meth:`store`\\ s its body; a miss of the same
        read under the same token meanwhile waits for that body instead of computing its
        own (issue 18 item 2: after an invalidation, concurrent reads of a busy seller's
        dashboard each recomputed it). Answering with it is what a hit on the entry the
        first one stores would answer. When the first one fails or is cancelled, each
        waiting read computes its own (an error is answered to each as usual)."""
        flight = (self.entry_key(seller_id, route, query), generation)
        running = self._computing.get(flight)
        if running is not None:
            await asyncio.wait({running})
            if not running.cancelled() and running.exception() is None:
                return running.result()
            return await compute()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._computing[flight] = future
        try:
            body = await compute()
        except BaseException:
            future.cancel()
            raise
        finally:
            if self._computing.get(flight) is future:
                del self._computing[flight]
        future.set_result(body)
        await self.store(seller_id, route, query, body, generation=generation)
        return body

    # -- invalidation -------------------------------------------------------------------

    async def sellers_changed(
        self, seller_ids: Iterable[uuid.UUID], parts: Collection[DashboardPart] = ALL_PARTS
    ) -> None:
        """Make the cached dashboard reads of ``parts`` (every part by default) of
        ``seller_ids`` stale. Call after the change committed. Never raises: a Redis
        failure is logged, and entries expire within ``dashboard_cache_seconds`` anyway."""
        await self.parts_changed(dict.fromkeys(seller_ids, parts))

    async def parts_changed(self, changes: Mapping[uuid.UUID, Collection[DashboardPart]]) -> None:
        """:meth:`sellers_changed` for several sellers, each with its own parts, in one
        round trip."""
        ids = sorted(seller_id for seller_id, parts in changes.items() if parts)
        if not ids:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for seller_id in ids:
                    for part in sorted(changes[seller_id]):
                        pipe.set(
                            self.generation_key(seller_id, part),
                            uuid.uuid4().hex,
                            ex=GENERATION_TTL_SECONDS,
                        )
                await pipe.execute()
        except redis.RedisError:
            _log.exception("dashboard cache not invalidated for sellers %s", ids)

    def sellers_changed_soon(
        self, seller_ids: Collection[uuid.UUID], parts: Collection[DashboardPart] = ALL_PARTS
    ) -> None:
        """Start :meth:`sellers_changed` on the running event loop (from a synchronous
        callback such as the session's ``after_commit``); :meth:`settle` waits for it.
        Without a running loop nothing can be awaited: the entries expire on their own."""
        self.parts_changed_soon(dict.fromkeys(seller_ids, parts))

    def parts_changed_soon(self, changes: Mapping[uuid.UUID, Collection[DashboardPart]]) -> None:
        """Start :meth:`parts_changed` on the running event loop (see
        :meth:`sellers_changed_soon`)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _log.warning("no event loop: dashboard cache of %s left to expire", list(changes))
            return
        task = loop.create_task(
            self.parts_changed({seller: frozenset(parts) for seller, parts in changes.items()})
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle(self) -> None:
        """Wait until every invalidation :meth:`sellers_changed_soon` started is done."""
        while self._pending:
            await asyncio.gather(*self._pending)


@dataclass(frozen=True)
class _Entry:
    seller_id: str
    generation: str
    body: bytes

    def encode(self) -> bytes:
        header = {"seller_id": self.seller_id, "generation": self.generation}
        # Compact JSON never contains a raw newline, so the first one ends the header.
        return json.dumps(header, separators=(",", ":")).encode() + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> _Entry | None:
        header_bytes, _, body = raw.partition(b"\n")
        try:
            header: dict[str, Any] = json.loads(header_bytes)
            return cls(
                seller_id=str(header["seller_id"]),
                generation=str(header["generation"]),
                body=body,
            )
        except (ValueError, KeyError, TypeError):
            return None  # written by another version: a miss


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


__all__ = [
    "ALL_PARTS",
    "GENERATION_TTL_SECONDS",
    "DashboardCache",
    "DashboardLookup",
    "DashboardPart",
    "dashboard_changed_on_commit",
    "part_of_route",
]
