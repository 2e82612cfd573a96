"""The taskiq broker and the tasks the reference deployment runs.

One acknowledging broker (``RedisStreamBroker``: XREADGROUP / XACK, unacknowledged messages
reclaimed with XAUTOCLAIM) per queue, so a task whose worker dies is delivered again
rather than lost; delivery is therefore at least once and every task is idempotent.
Stream names carry ``redis_key_prefix``, so deployments (and test runs) sharing a Redis do
not read each other's queues.

Tasks are registered on a broker built from settings (no import-time globals): the API
builds one to kick tasks, ``pixecom worker`` builds one to run them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import (
    AckableMessage,
    AsyncBroker,
    AsyncTaskiqDecoratedTask,
    Context,
    TaskiqDepends,
    TaskiqEvents,
    TaskiqState,
)
from taskiq_redis import RedisStreamBroker

from pixecom_core.conversions import SEND_CONVERSIONS_TASK
from pixecom_core.ledger import ProcessResult
from pixecom_core.models.sellers import SellerTier
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers.errors import ProviderUnavailable
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.aggregate import MAX_DIRTY_DAYS_PER_CYCLE, refresh_dirty_days
from pixecom_core.stats.backfill import BACKFILL_TASK, BackfillJobs
from pixecom_core.stats.backfill import JobOutcome as BackfillOutcome
from pixecom_core.stats.jobs import SYNC_TASK, SyncJobs
from pixecom_core.stats.schedule import DueSync
from pixecom_core.stats.sync import StatsSync
from pixecom_core.tenancy import SellerContext
from reference_app.configuration import require_redis_url
from reference_app.services import Services, open_services

_log = logging.getLogger(__name__)

PROCESS_WEBHOOK = "pixecom.process_webhook"
REFRESH_TRACKING = "pixecom.refresh_tracking"
REFRESH_REVENUE = "pixecom.refresh_revenue"
SEND_CONVERSIONS = SEND_CONVERSIONS_TASK
#: While a seller's revenue refresh is queued and not started, new facts queue no other;
#: the marker expires after this long in case the task was lost with Redis.
REVENUE_REFRESH_PENDING_SECONDS = 300

#: redis-py 8 times blocking reads out after 5 s by default; XREADGROUP blocks for
#: ``xread_block`` ms, so the socket must wait longer or workers restart in a loop.
XREAD_BLOCK_MS = 2000
SOCKET_TIMEOUT_SECONDS = 30
#: Waits between reconnection attempts while Redis is unreachable (doubling, capped).
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 15.0
#: How often a worker looks for messages a dead worker left unacknowledged.
RECLAIM_EVERY_SECONDS = 1.0


def command_retry() -> Retry:
    """Retries of one Redis command on a lost connection.

    ``Redis.from_url`` retries nothing by default, so after a Redis restart the first
    command on every pooled (now dead) connection failed: a lock, an acknowledgement, a
    kick. A retry reconnects; a Redis that stays down still fails within about 3 s.
    """
    return Retry(ExponentialWithJitterBackoff(base=0.2, cap=2.0), retries=3)


class Queue(StrEnum):
    """Queues by purpose and seller tier (SCALE-5, "shard queues"): payments are real-time;
    stats syncs go to the queue of the seller's spend tier, so a backlog of small sellers
    never delays a big one. Run at least one worker per queue."""

    PAYMENTS = "payments"
    #: Parcel tracking: its own queue, so a slow tracker never delays stats or payments.
    TRACKING = "tracking"
    STATS_HIGH = "stats-high"
    STATS_MEDIUM = "stats-medium"
    STATS_LOW = "stats-low"
    #: History backfills of newly connected ad accounts (issue 14 item 4): low priority
    #: and its own workers, so a backfill never delays a regular sync on a tier queue.
    BACKFILL = "backfill"


TIER_QUEUES = {
    SellerTier.HIGH: Queue.STATS_HIGH,
    SellerTier.MEDIUM: Queue.STATS_MEDIUM,
    SellerTier.LOW: Queue.STATS_LOW,
}


def stream_name(settings: Settings, queue: Queue) -> str:
    """The Redis stream a queue lives in."""
    return f"{settings.redis_key_prefix}queue:{queue.value}"


class PixecomStreamBroker(RedisStreamBroker):
    """``RedisStreamBroker`` whose worker side survives Redis going away.

    taskiq-redis 1.2.4's ``listen`` raises on a lost connection, and taskiq's receiver
    loop restarts it at once, without a pause: a worker whose Redis is down spins and
    floods its log. Here the listener waits with a doubling backoff (capped), logs one
    clear line per attempt, and resumes on the same consumer group when Redis is back;
    if Redis came back empty (no persistence), it declares the group again from the start
    of the stream, so messages queued since are not skipped. It also looks for messages a
    dead worker left unacknowledged even while no new message arrives (upstream only does
    so after a read that returned messages, so on an idle queue they waited for the next
    kick). SCALE-2: several workers, any of which may die, share the queues.

    It relies on taskiq-redis internals — the attributes ``RedisStreamBroker.__init__``
    sets, the private ``_ack_generator`` and the ``data`` field ``kick`` writes — so
    taskiq-redis is pinned to the 1.2 series, and
    ``tests/worker/test_taskiq_redis_contract.py`` fails, naming what moved, on another.
    """

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Messages from the queue (new, then reclaimed), across Redis outages."""
        delay = RECONNECT_MIN_SECONDS
        while True:
            connected_at = time.monotonic()
            try:
                async for message in self._listen_connected():
                    delay = RECONNECT_MIN_SECONDS
                    yield message
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if time.monotonic() - connected_at > 2 * RECONNECT_MAX_SECONDS:
                    delay = RECONNECT_MIN_SECONDS  # a new outage, not the same one
                _log.warning(
                    "queue %s: Redis unreachable (%s); reconnecting in %.1f s",
                    self.queue_name,
                    exc,
                    delay,
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                _log.error(
                    "queue %s: consumer group %s is gone (Redis restarted without its data?);"
                    " declaring it again from the start of the stream",
                    self.queue_name,
                    self.consumer_group_name,
                )
                await self._redeclare_group()
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _redeclare_group(self) -> None:
        with suppress(RedisError):
            async with redis.Redis(connection_pool=self.connection_pool) as connection:
                for stream in (self.queue_name, *self.additional_streams):
                    with suppress(ResponseError):  # BUSYGROUP: another worker was first
                        await connection.xgroup_create(
                            stream, self.consumer_group_name, id="0", mkstream=True
                        )

    async def _listen_connected(self) -> AsyncGenerator[AckableMessage, None]:
        streams = [self.queue_name, *self.additional_streams]
        last_reclaim = 0.0
        async with redis.Redis(connection_pool=self.connection_pool) as connection:
            while True:
                wanted: dict[str, str] = {self.queue_name: ">"}
                wanted.update({name: str(start) for name, start in self.additional_streams.items()})
                # [(stream, [(id, fields), …]), …]; a dict of the same under RESP3.
                reply: Any = await connection.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    wanted,  # type: ignore[arg-type]
                    block=self.block,
                    count=self.count,
                )
                fetched: list[Any] = list(reply.items() if isinstance(reply, dict) else reply or [])
                for stream, messages in fetched:
                    for message_id, fields in messages:
                        yield self._ackable(stream, message_id, fields)
                if time.monotonic() - last_reclaim < RECLAIM_EVERY_SECONDS:
                    continue
                last_reclaim = time.monotonic()
                for name in streams:
                    # XAUTOCLAIM is atomic and resets the idle time of what it claims, so
                    # two workers never reclaim the same message at once.
                    reply = await connection.xautoclaim(
                        name,
                        self.consumer_group_name,
                        self.consumer_name,
                        min_idle_time=self.idle_timeout,
                        count=self.unacknowledged_batch_size,
                    )
                    for message_id, fields in reply[1]:
                        if fields:  # trimmed from the stream meanwhile: nothing to run
                            _log.warning("queue %s: redelivering %s", name, message_id)
                            yield self._ackable(name, message_id, fields)

    def _ackable(self, stream: object, message_id: object, fields: object) -> AckableMessage:
        stream_name = stream.decode() if isinstance(stream, bytes) else str(stream)
        return AckableMessage(
            data=fields[b"data"],  # type: ignore[index]
            ack=self._ack_generator(id=message_id, queue_name=stream_name),  # type: ignore[arg-type]
        )


@dataclass
class WorkerResources:
    """What tasks use, opened when a worker starts and closed when it stops: the services
    the API shares (:mod:`reference_app.services`) and the worker's own."""

    services: Services
    sync_jobs: SyncJobs
    #: The broker tasks queue others through (the payments queue's in a process that
    #: consumes several queues; kicks to other queues name theirs).
    broker: AsyncBroker
    sweeper: asyncio.Task[None] | None = None
    releaser: asyncio.Task[None] | None = None
    #: History backfills (the ``backfill`` queue's task).
    backfill_jobs: BackfillJobs | None = None


def worker_resources(context: Context) -> WorkerResources:
    """The resources of the worker running a task (``state.pixecom``).

    Tasks read everything from here, never from module globals, so a test can run one
    with resources of its own: put them on a broker's ``state`` and call the task.
    """
    resources: WorkerResources | None = getattr(context.state, "pixecom", None)
    if resources is None:
        raise RuntimeError(
            "no worker resources on the broker's state: run tasks in a worker whose broker"
            " came from build_broker, or set state.pixecom to a WorkerResources in a test"
        )
    return resources


async def process_webhook(inbox_id: int, context: Annotated[Context, TaskiqDepends()]) -> str:
    """Turn one stored webhook delivery into ledger facts (idempotent)."""
    services = worker_resources(context).services
    async with asyncio.timeout(services.settings.webhook_task_timeout_seconds):
        result = await services.inbox.process(inbox_id)
    _log.info("webhook %s: %s", inbox_id, result.value)
    return result.value


async def sync_seller(
    seller_id: str, days_back: int, context: Annotated[Context, TaskiqDepends()]
) -> str:
    """Sync one seller's ad accounts and re-aggregate its days (one at a time per
    seller; bounded; retried; dead-lettered when it keeps failing)."""
    resources = worker_resources(context)
    result = await resources.sync_jobs.run(
        uuid.UUID(seller_id), days_back=days_back, task_id=context.message.task_id
    )
    _log.info("sync of %s (%s days): %s", seller_id, days_back, result.outcome.value)
    return result.outcome.value


async def backfill_account(
    seller_id: str, ad_account_id: str, context: Annotated[Context, TaskiqDepends()]
) -> str:
    """Fetch the next chunk of an ad account's history backfill (planning it on the first
    run), then queue the next chunk until the backfill is complete. One job per account at
    a time (its own lock, never the seller's sync lock); see
    :mod:`pixecom_core.stats.backfill`."""
    resources = worker_resources(context)
    if resources.backfill_jobs is None:
        raise RuntimeError("no backfill jobs on the worker's resources: set backfill_jobs")
    next_task_id = uuid.uuid4().hex
    result = await resources.backfill_jobs.run(
        uuid.UUID(seller_id),
        uuid.UUID(ad_account_id),
        task_id=context.message.task_id,
        next_task_id=next_task_id,
    )
    chunk = result.chunk
    _log.info(
        "backfill of ad account %s: %s (%s, done through %s)",
        ad_account_id,
        result.outcome.value,
        chunk.outcome.value if chunk else "-",
        chunk.done_through if chunk else "-",
    )
    if result.outcome is BackfillOutcome.CONTINUE:
        settings = resources.services.settings
        await kick_backfill(
            resources.broker,
            settings,
            uuid.UUID(seller_id),
            uuid.UUID(ad_account_id),
            task_id=next_task_id,
        )
    return result.outcome.value


async def refresh_tracking(seller_id: str, context: Annotated[Context, TaskiqDepends()]) -> str:
    """Register and poll one seller's undelivered parcels. Fails fast (and is tried
    again at the next slot) while the tracker's breaker is open."""
    services = worker_resources(context).services
    try:
        async with asyncio.timeout(services.settings.webhook_task_timeout_seconds):
            result = await services.tracking.refresh_seller(uuid.UUID(seller_id))
    except ProviderUnavailable as exc:
        _log.warning("tracking refresh of %s skipped: %s", seller_id, exc)
        return "tracker_unavailable"
    _log.info("tracking of %s: %s polled, %s changed", seller_id, result.polled, result.changed)
    return "done"


async def refresh_revenue(seller_id: str, context: Annotated[Context, TaskiqDepends()]) -> int:
    """Recompute a seller's days marked for re-aggregation, so revenue shows seconds after
    the payment instead of at the tier's next sync (low tier: 30 minutes), and a link, a
    rate that arrived or a new reporting currency shows over its whole range. Queued by
    the payments worker, the API and the rate load, at most one waiting per seller.

    Days are recomputed oldest first, :data:`MAX_DIRTY_DAYS_PER_CYCLE` per transaction,
    until none is left or the task's time is up; then the task queues itself again, so
    years of history (a new reporting currency) never make one long transaction."""
    resources = worker_resources(context)
    services = resources.services
    settings = services.settings
    # Facts recorded from now on queue a new refresh: this one may read before them. That
    # one waits for the spacing counted from now (issue 18 item 2), so the mark of this
    # start goes in before the pending marker goes out.
    if settings.revenue_refresh_spacing_seconds > 0:
        await services.redis.set(
            revenue_refresh_started_key(settings, seller_id),
            "1",
            px=max(1, round(settings.revenue_refresh_spacing_seconds * 1000)),
        )
    await services.redis.delete(revenue_refresh_key(settings, seller_id))
    seller = SellerContext(
        seller_id=uuid.UUID(seller_id), sessions=services.sessions, settings=settings
    )
    deadline = asyncio.get_running_loop().time() + settings.webhook_task_timeout_seconds / 2
    refreshed = 0
    async with asyncio.timeout(settings.webhook_task_timeout_seconds):
        while True:
            async with seller.scope() as scope:
                aggregation = await refresh_dirty_days(scope)
            refreshed += len(aggregation.days)
            if len(aggregation.days) < MAX_DIRTY_DAYS_PER_CYCLE:
                break
            if asyncio.get_running_loop().time() > deadline:
                await queue_revenue_refreshes(resources, {uuid.UUID(seller_id)})
                break
    _log.info("revenue of %s refreshed: %s days", seller_id, refreshed)
    return refreshed


async def send_conversions(seller_id: str, context: Annotated[Context, TaskiqDepends()]) -> int:
    """Send the seller's due conversion events (issue 17 item 4): queued after the
    transaction that made orders PAID committed, and by the inbox sweep for retries whose
    wait is over. Returns how many were sent."""
    services = worker_resources(context).services
    async with asyncio.timeout(services.settings.webhook_task_timeout_seconds):
        report = await services.conversions.send_due(uuid.UUID(seller_id))
    if report.sent or report.retried or report.failed:
        _log.info(
            "conversions of %s: %s sent, %s to retry, %s failed",
            seller_id,
            report.sent,
            report.retried,
            report.failed,
        )
    return report.sent


async def kick_send_conversions(broker: AsyncBroker, seller_id: uuid.UUID) -> None:
    """Queue the sending of a seller's due conversion events on the payments queue."""
    task = registered_task(broker, SEND_CONVERSIONS)
    await task.kiq(str(seller_id))


async def queue_revenue_refreshes(resources: WorkerResources, seller_ids: set[uuid.UUID]) -> None:
    """Queue a revenue refresh for each seller that has none waiting.

    A seller whose last refresh started less than ``revenue_refresh_spacing_seconds`` ago
    gets its refresh when that time is over: the seller goes into a sorted set by due
    time, which the payments worker's :func:`release_deferred_revenue_refreshes` empties
    into the queue (issue 18 item 2: in a burst of payments every fact queued a recomputation
    of its seller's days, a quarter of a second of PostgreSQL each, back to back). The
    pending marker stays set meanwhile, so later facts queue nothing more; nothing is
    lost if Redis is, since the days stay marked in the database and the seller's next
    sync recomputes them."""
    services = resources.services
    settings = services.settings
    for seller_id in seller_ids:
        pending = revenue_refresh_key(settings, seller_id)
        if not await services.redis.set(pending, "1", nx=True, ex=REVENUE_REFRESH_PENDING_SECONDS):
            continue
        wait_ms = await services.redis.pttl(revenue_refresh_started_key(settings, seller_id))
        if wait_ms > 0:
            await services.redis.zadd(
                deferred_revenue_refreshes_key(settings),
                {str(seller_id): time.time() + wait_ms / 1000},
                nx=True,
            )
        else:
            await kick_revenue_refresh(resources.broker, seller_id)


async def release_deferred_revenue_refreshes(
    client: redis.Redis, broker: AsyncBroker, settings: Settings, now: float | None = None
) -> int:
    """Queue the deferred revenue refreshes (:func:`queue_revenue_refreshes`) whose time
    has come; the payments worker runs it every second. Each is taken out of the sorted
    set with ``ZREM`` before it is queued, so two workers queue it once. Returns how many."""
    key = deferred_revenue_refreshes_key(settings)
    due: list[bytes] = await client.zrangebyscore(  # type: ignore[assignment]
        key, "-inf", time.time() if now is None else now
    )
    released = 0
    for member in due:
        if await client.zrem(key, member):
            await kick_revenue_refresh(broker, uuid.UUID(member.decode()), settings)
            released += 1
    return released


def build_broker(
    settings: Settings,
    queue: Queue = Queue.PAYMENTS,
    *,
    registry: ProviderRegistry | None = None,
    own_resources: bool = True,
) -> AsyncBroker:
    """A broker for ``queue`` with every PixEcom task registered.

    A worker's startup opens the services (:func:`reference_app.services.open_services`)
    into ``state.pixecom``; its shutdown closes them.

    :param registry: the providers tasks dispatch to; built from the installed plugins
        (``PIXECOM_LOAD_PLUGINS``, ``PIXECOM_PLUGIN_MODULES``) when not given.
    :param own_resources: ``False`` for a broker that is one of several in a worker
        process: its startup opens nothing, and the process puts the resources it opened
        once (:func:`open_worker_resources`) on every broker (:func:`share_resources`).
    """
    redis_url = require_redis_url(settings)
    # Stats syncs run for seconds to minutes: a worker takes one message per read, so
    # what it has fetched it is about to run and idle workers get the rest (taskiq-redis
    # reads 100 at a time by default, and one worker would hoard a whole cycle).
    batch = 1 if queue in (*TIER_QUEUES.values(), Queue.BACKFILL) else 10
    broker = PixecomStreamBroker(
        redis_url,
        queue_name=stream_name(settings, queue),
        consumer_group_name=f"{settings.redis_key_prefix}workers",
        xread_block=XREAD_BLOCK_MS,
        xread_count=batch,
        unacknowledged_batch_size=batch,
        retry=command_retry(),
        maxlen=settings.queue_max_length,
        idle_timeout=int(settings.worker_redelivery_after_seconds * 1000),
        unacknowledged_lock_timeout=settings.worker_redelivery_after_seconds,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        # A group declared for the first time reads the stream from its start: tasks
        # queued before any worker of the queue ever started (pixecom dev's demo
        # backfills, a connect on a fresh deployment) are delivered, not skipped. An
        # existing group keeps its position (declaring it again is a no-op).
        consumer_id="0",
    )
    broker.register_task(process_webhook, task_name=PROCESS_WEBHOOK)
    broker.register_task(sync_seller, task_name=SYNC_TASK)
    broker.register_task(backfill_account, task_name=BACKFILL_TASK)
    broker.register_task(refresh_tracking, task_name=REFRESH_TRACKING)
    broker.register_task(refresh_revenue, task_name=REFRESH_REVENUE)
    broker.register_task(send_conversions, task_name=SEND_CONVERSIONS)

    if own_resources:

        async def on_worker_startup(state: TaskiqState) -> None:
            exits = AsyncExitStack()
            resources = await exits.enter_async_context(
                open_worker_resources(
                    settings,
                    broker,
                    registry=registry,
                    application_name=f"pixecom-worker-{queue}",
                    sweep_inbox=queue is Queue.PAYMENTS,
                )
            )
            share_resources(broker, resources)
            state.pixecom_exits = exits

        async def on_worker_shutdown(state: TaskiqState) -> None:
            exits: AsyncExitStack | None = getattr(state, "pixecom_exits", None)
            if exits is not None:
                await exits.aclose()

        broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, on_worker_startup)
        broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, on_worker_shutdown)
    # Issue 7: the slow-query watch, queued by the scheduler (imported here: that module
    # needs this one's queue names).
    from reference_app.worker.metrics import register_observability_tasks

    register_observability_tasks(broker, settings)
    return broker


@asynccontextmanager
async def open_worker_resources(
    settings: Settings,
    broker: AsyncBroker,
    *,
    registry: ProviderRegistry | None = None,
    application_name: str,
    sweep_inbox: bool,
) -> AsyncIterator[WorkerResources]:
    """Open what a worker process's tasks use — one engine, one Redis pool, one set of
    services, however many queues the process consumes — and close it when the block ends.

    :param broker: the broker tasks queue follow-up work through (revenue refreshes,
        conversions, deliveries the sweep finds): the payments queue's when the process
        consumes it; kicks name their queue, or go to this broker's own.
    :param registry: the providers tasks dispatch to; built from the installed plugins
        when not given.
    :param application_name: labels the process's PostgreSQL connections.
    :param sweep_inbox: run the inbox sweep (:func:`_sweep_inbox`) and the release of
        deferred revenue refreshes (:func:`release_deferred_revenue_refreshes`) while
        open: the process that consumes the payments queue does.
    """
    providers = registry or ProviderRegistry(create_plugin_manager())
    resources: WorkerResources | None = None

    async def refresh_revenue_soon(seller_ids: set[uuid.UUID]) -> None:
        if resources is None:  # cannot happen: no task runs before the block is entered
            raise RuntimeError("payment facts recorded before the worker's resources opened")
        await queue_revenue_refreshes(resources, seller_ids)
        # After the commit that may have made orders PAID: their conversion events.
        for seller_id in seller_ids:
            await kick_send_conversions(broker, seller_id)

    async with open_services(
        # Issue 13 item 6: the configured tracker, else the only installed one.
        settings.with_chosen_providers(providers),
        providers,
        application_name=application_name,
        redis_socket_timeout=SOCKET_TIMEOUT_SECONDS,
        redis_retry=command_retry(),
        on_recorded=refresh_revenue_soon,
    ) as services:
        stats_sync = StatsSync(
            services.sessions,
            services.settings,
            providers,
            SecretBox(settings.token_encryption_keys),
            providers.plugin_manager,
        )
        resources = WorkerResources(
            services=services,
            sync_jobs=SyncJobs(stats_sync, services.sessions, services.settings, services.redis),
            broker=broker,
            backfill_jobs=BackfillJobs(
                stats_sync, services.sessions, services.settings, services.redis
            ),
        )
        if sweep_inbox:
            resources.sweeper = asyncio.create_task(_sweep_inbox(resources))
            resources.releaser = asyncio.create_task(_release_revenue_refreshes(resources))
        try:
            yield resources
        finally:
            for background in (resources.sweeper, resources.releaser):
                if background is not None:
                    background.cancel()
                    with suppress(asyncio.CancelledError):
                        await background
            # Providers' pools (HTTP, Meta's shared pacing in Redis) go with the process.
            await providers.aclose()


def share_resources(broker: AsyncBroker, resources: WorkerResources) -> None:
    """Let ``broker``'s tasks use ``resources`` (``state.pixecom``, and the engine the
    slow-query watch reads as ``state.pixecom_engine``)."""
    broker.state.pixecom = resources
    broker.state.pixecom_engine = resources.services.engine


class TaskNotRegisteredError(LookupError):
    """A task was kicked on a broker that does not know it (not built by
    :func:`build_broker`)."""


def registered_task(broker: AsyncBroker, task_name: str) -> AsyncTaskiqDecoratedTask[Any, Any]:
    """The task ``task_name`` on ``broker``, or :class:`TaskNotRegisteredError`.

    Issue 13 #8: an explicit check rather than an ``assert`` that ``python -O`` removes.
    """
    task = broker.find_task(task_name)
    if task is None:
        raise TaskNotRegisteredError(
            f"the broker has no task {task_name!r}: build it with"
            " reference_app.worker.broker.build_broker(settings, queue)"
        )
    return task


class TaskKicker:
    """Queues tasks from a process that does not run them (the API).

    The broker is started on first use, not at process start: the API must come up (and
    answer its probes) while Redis is down, and a kick that fails then is recovered by the
    worker's inbox sweep.
    """

    def __init__(self, broker: AsyncBroker) -> None:
        self.broker = broker
        self._started = False
        self._lock = asyncio.Lock()

    async def _ensure_started(self) -> None:
        if self._started:
            return
        async with self._lock:
            if not self._started:
                # Declares the consumer group, so no message queued before the first
                # worker starts is skipped.
                await self.broker.startup()
                self._started = True

    async def process_webhook(self, inbox_id: int) -> None:
        """Queue the processing of one stored delivery."""
        await self._ensure_started()
        await kick_process_webhook(self.broker, inbox_id)

    async def backfill_account(
        self, settings: Settings, seller_id: uuid.UUID, ad_account_id: uuid.UUID
    ) -> None:
        """Queue the history backfill of a newly connected ad account."""
        await self._ensure_started()
        await kick_backfill(self.broker, settings, seller_id, ad_account_id)

    async def refresh_revenue(self, seller_id: uuid.UUID) -> None:
        """Queue the recomputation of a seller's days marked for re-aggregation (after a
        campaign link, a manual rate or a new reporting currency)."""
        await self._ensure_started()
        await kick_revenue_refresh(self.broker, seller_id)

    async def close(self) -> None:
        """Release the broker's connections."""
        if self._started:
            await self.broker.shutdown()


async def kick_sync(broker: AsyncBroker, settings: Settings, due: DueSync) -> None:
    """Queue a seller's sync on its tier's queue (the broker routes by the label)."""
    task = registered_task(broker, SYNC_TASK)
    queue = TIER_QUEUES[due.tier]
    await (
        task.kicker()
        .with_labels(queue_name=stream_name(settings, queue))
        .kiq(str(due.seller_id), due.days_back)
    )


async def kick_backfill(
    broker: AsyncBroker,
    settings: Settings,
    seller_id: uuid.UUID,
    ad_account_id: uuid.UUID,
    *,
    task_id: str | None = None,
) -> None:
    """Queue the history backfill of an ad account on the backfill queue (the connect
    flow calls this for each account it connected; the job plans the window if the
    account has none, and queues one job per chunk until it is done). Kicking an account
    whose backfill is complete, or already under way, does nothing more.

    :param task_id: the job's id; the previous chunk names its successor this way.
    """
    task = registered_task(broker, BACKFILL_TASK)
    kicker = task.kicker().with_labels(queue_name=stream_name(settings, Queue.BACKFILL))
    if task_id is not None:
        kicker = kicker.with_task_id(task_id)
    await kicker.kiq(str(seller_id), str(ad_account_id))


async def kick_tracking_refresh(
    broker: AsyncBroker, settings: Settings, seller_id: uuid.UUID
) -> None:
    """Queue a seller's tracking refresh on the tracking queue."""
    task = registered_task(broker, REFRESH_TRACKING)
    await (
        task.kicker()
        .with_labels(queue_name=stream_name(settings, Queue.TRACKING))
        .kiq(str(seller_id))
    )


def revenue_refresh_key(settings: Settings, seller_id: uuid.UUID | str) -> str:
    """The Redis key marking a seller's revenue refresh as queued and not started."""
    return f"{settings.redis_key_prefix}revenue-refresh:{seller_id}"


def revenue_refresh_started_key(settings: Settings, seller_id: uuid.UUID | str) -> str:
    """The Redis key a seller's revenue refresh sets when it starts; it lives
    ``revenue_refresh_spacing_seconds``, the time a next refresh waits."""
    return f"{settings.redis_key_prefix}revenue-refresh-started:{seller_id}"


def deferred_revenue_refreshes_key(settings: Settings) -> str:
    """The sorted set of sellers whose revenue refresh waits for its spacing, scored by
    the Unix time it is due."""
    return f"{settings.redis_key_prefix}revenue-refresh-deferred"


async def kick_revenue_refresh(
    broker: AsyncBroker, seller_id: uuid.UUID, settings: Settings | None = None
) -> None:
    """Queue a seller's revenue refresh on the payments queue, where the webhooks that
    caused it are (its SQL recomputes the marked days: a tenth to a quarter of a second
    for a seller with hundreds of orders a day).

    :param settings: name the payments queue from these; without them the refresh goes
        to ``broker``'s own queue, which must then be the payments queue's (the API's and
        the payments worker's brokers are).
    """
    task = registered_task(broker, REFRESH_REVENUE)
    if settings is None:
        await task.kiq(str(seller_id))
        return
    await (
        task.kicker()
        .with_labels(queue_name=stream_name(settings, Queue.PAYMENTS))
        .kiq(str(seller_id))
    )


async def kick_process_webhook(broker: AsyncBroker, inbox_id: int) -> None:
    """Queue the processing of one stored delivery on a started broker."""
    task = registered_task(broker, PROCESS_WEBHOOK)
    await task.kiq(inbox_id)


#: How often the payments worker queues the deferred revenue refreshes that are due.
REVENUE_RELEASE_SECONDS = 1.0


async def _release_revenue_refreshes(resources: WorkerResources) -> None:
    """Every :data:`REVENUE_RELEASE_SECONDS`: queue the revenue refreshes whose spacing
    is over (:func:`queue_revenue_refreshes` deferred them). Each is claimed with ``ZREM``,
    so several payments workers queue it once."""
    services = resources.services
    while True:
        await asyncio.sleep(REVENUE_RELEASE_SECONDS)
        try:
            await release_deferred_revenue_refreshes(
                services.redis, resources.broker, services.settings
            )
        except Exception:  # the loop must outlive a Redis hiccup
            _log.exception("deferred revenue refreshes not released; retrying")


async def _sweep_inbox(resources: WorkerResources) -> None:
    """Every ``inbox_sweep_seconds``: queue deliveries that are due and have no live task
    (the kick was lost, or a deferred delivery's retry time came), and settle refunds left
    open (:meth:`~pixecom_core.orders.refunds.RefundService.settle_open`). One worker
    sweeps per interval (a Redis lock), so several workers do not queue the same work."""
    services = resources.services
    settings = services.settings
    lock_key = f"{settings.redis_key_prefix}lock:inbox-sweep"
    interval = settings.inbox_sweep_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            if not await services.redis.set(lock_key, "1", nx=True, px=int(interval * 900)):
                continue
            for inbox_id in await services.inbox.due(grace_seconds=interval):
                await kick_process_webhook(resources.broker, inbox_id)
            # Issue 15: refunds whose gateway answer never came, or still pending.
            await services.refunds.settle_open(quiet_seconds=interval)
            # Issue 17: conversion events whose retry is due, or whose kick was lost.
            for seller_id in await services.conversions.due_sellers():
                await kick_send_conversions(resources.broker, seller_id)
        except Exception:  # the sweeper must outlive a database or Redis hiccup
            _log.exception("inbox sweep failed; retrying at the next interval")


__all__ = [
    "BACKFILL_TASK",
    "PROCESS_WEBHOOK",
    "REFRESH_REVENUE",
    "SEND_CONVERSIONS",
    "ProcessResult",
    "PixecomStreamBroker",
    "Queue",
    "TaskKicker",
    "TaskNotRegisteredError",
    "WorkerResources",
    "backfill_account",
    "build_broker",
    "kick_backfill",
    "kick_process_webhook",
    "kick_revenue_refresh",
    "kick_send_conversions",
    "kick_sync",
    "kick_tracking_refresh",
    "open_worker_resources",
    "process_webhook",
    "queue_revenue_refreshes",
    "refresh_revenue",
    "refresh_tracking",
    "release_deferred_revenue_refreshes",
    "send_conversions",
    "registered_task",
    "share_resources",
    "sync_seller",
    "worker_resources",
    "stream_name",
]
