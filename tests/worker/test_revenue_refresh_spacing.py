"""A seller's revenue refreshes are spaced (issue 18 item 2): payment facts that arrive
within ``revenue_refresh_spacing_seconds`` of a refresh's start are picked up by one more
refresh that the payments worker queues when the spacing is over — not by one refresh
per fact. Real Redis; the task runs alone on the worker's resources (as in
``test_tasks_alone``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from taskiq import InMemoryBroker

from pixecom_core.settings import Settings
from reference_app.worker import broker as broker_module
from reference_app.worker.broker import (
    REFRESH_REVENUE,
    REVENUE_RELEASE_SECONDS,
    WorkerResources,
    deferred_revenue_refreshes_key,
    open_worker_resources,
    queue_revenue_refreshes,
    refresh_revenue,
    release_deferred_revenue_refreshes,
    revenue_refresh_key,
)
from tests.worker.test_tasks_alone import broker_on, context_on

SPACING = 30.0


class Kicks:
    """The revenue refreshes queued, in order (the broker's kick, recorded)."""

    def __init__(self) -> None:
        self.sellers: list[uuid.UUID] = []

    async def __call__(
        self, _broker: object, seller_id: uuid.UUID, _settings: object = None
    ) -> None:
        self.sellers.append(seller_id)


@pytest.fixture
def kicks(monkeypatch: pytest.MonkeyPatch) -> Kicks:
    recorded = Kicks()
    monkeypatch.setattr(broker_module, "kick_revenue_refresh", recorded)
    return recorded


@pytest.fixture
async def spaced(settings: Settings) -> AsyncIterator[InMemoryBroker]:
    async with broker_on(settings, revenue_refresh_spacing_seconds=SPACING) as broker:
        yield broker


@pytest.fixture
async def unspaced(settings: Settings) -> AsyncIterator[InMemoryBroker]:
    async with broker_on(settings, revenue_refresh_spacing_seconds=0.0) as broker:
        yield broker


async def test_facts_during_the_spacing_wait_for_one_refresh_queued_when_it_is_over(
    spaced: InMemoryBroker, kicks: Kicks
) -> None:
    resources: WorkerResources = spaced.state.pixecom
    services = resources.services
    seller, other = uuid.uuid4(), uuid.uuid4()

    # The first fact of a quiet seller: its refresh is queued at once.
    await queue_revenue_refreshes(resources, {seller})
    assert kicks.sellers == [seller]
    started = time.time()
    await refresh_revenue(str(seller), context_on(spaced, REFRESH_REVENUE))
    assert await services.redis.exists(revenue_refresh_key(services.settings, seller)) == 0

    # Three more facts right after that refresh started; another seller's at once.
    for _ in range(3):
        await queue_revenue_refreshes(resources, {seller, other})
    assert kicks.sellers == [seller, other]
    deferred: list[tuple[bytes, float]] = await services.redis.zrange(  # type: ignore[assignment]
        deferred_revenue_refreshes_key(services.settings), 0, -1, withscores=True
    )
    assert [member.decode() for member, _ in deferred] == [str(seller)]
    due = deferred[0][1]
    assert started + SPACING - 2 <= due <= time.time() + SPACING

    # Before its time nothing is queued; after it, the refresh once, even with a second
    # worker releasing too.
    assert (
        await release_deferred_revenue_refreshes(
            services.redis, spaced, services.settings, now=due - 1
        )
        == 0
    )
    assert (
        await release_deferred_revenue_refreshes(
            services.redis, spaced, services.settings, now=due + 1
        )
        == 1
    )
    assert (
        await release_deferred_revenue_refreshes(
            services.redis, spaced, services.settings, now=due + 1
        )
        == 0
    )
    assert kicks.sellers == [seller, other, seller]
    # Still pending until that refresh starts: more facts queue nothing.
    await queue_revenue_refreshes(resources, {seller})
    assert kicks.sellers == [seller, other, seller]


async def test_without_spacing_each_refresh_after_the_last_started_is_queued_at_once(
    unspaced: InMemoryBroker, kicks: Kicks
) -> None:
    resources: WorkerResources = unspaced.state.pixecom
    services = resources.services
    seller = uuid.uuid4()

    await queue_revenue_refreshes(resources, {seller})
    await queue_revenue_refreshes(resources, {seller})  # pending: nothing more
    await refresh_revenue(str(seller), context_on(unspaced, REFRESH_REVENUE))
    await queue_revenue_refreshes(resources, {seller})

    assert kicks.sellers == [seller, seller]
    assert await services.redis.zcard(deferred_revenue_refreshes_key(services.settings)) == 0


async def test_the_payments_worker_releases_a_due_refresh_on_its_own(
    settings: Settings, kicks: Kicks
) -> None:
    isolated = settings.model_copy(update={"redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:"})
    due, later = uuid.uuid4(), uuid.uuid4()
    async with open_worker_resources(
        isolated,
        InMemoryBroker(),
        application_name="pixecom-test-release",
        sweep_inbox=True,  # as the process consuming the payments queue
    ) as resources:
        client = resources.services.redis
        key = deferred_revenue_refreshes_key(isolated)
        await client.zadd(key, {str(due): time.time() - 1, str(later): time.time() + 3600})
        deadline = time.monotonic() + 10 * REVENUE_RELEASE_SECONDS
        while not kicks.sellers and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        waiting = await client.zrange(key, 0, -1)

    assert kicks.sellers == [due]
    assert waiting == [str(later).encode()]
