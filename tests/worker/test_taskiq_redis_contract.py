"""What :class:`reference_app.worker.broker.PixecomStreamBroker` takes from taskiq-redis
beyond its documented surface, checked so an upgrade that moves it fails here, by name,
instead of in a worker that stops acknowledging messages.

``PixecomStreamBroker.listen`` replaces upstream's loop (see its docstring), so it reads
the broker's attributes, builds acknowledgements with the private
``RedisStreamBroker._ack_generator`` and reads the ``data`` field ``kick`` writes.
Issue 13 #8: no private taskiq-redis API without a pinned version and a test that fails
when it moves. Pin: ``taskiq-redis>=1.2.4,<1.3`` (and ``taskiq>=0.13,<0.14`` for the
``Receiver`` that ``pixecom worker`` drives).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from taskiq import BrokerMessage
from taskiq.receiver import Receiver
from taskiq_redis import RedisStreamBroker

from pixecom_core.settings import Mode, Settings
from reference_app.worker.broker import (
    SOCKET_TIMEOUT_SECONDS,
    XREAD_BLOCK_MS,
    PixecomStreamBroker,
    Queue,
    build_broker,
)

#: The taskiq-redis minor version PixecomStreamBroker was read against.
TESTED_TASKIQ_REDIS = (1, 2)
#: The taskiq minor version ``reference_app.worker.run`` drives ``Receiver`` of.
TESTED_TASKIQ = (0, 13)

#: Attributes of ``RedisStreamBroker`` (set in its ``__init__``, undocumented) that
#: ``PixecomStreamBroker.listen`` reads.
READ_ATTRIBUTES = (
    "queue_name",
    "consumer_group_name",
    "consumer_name",
    "additional_streams",
    "connection_pool",
    "block",
    "count",
    "idle_timeout",
    "unacknowledged_batch_size",
)

RECHECK = (
    "re-read PixecomStreamBroker.listen and _ackable in reference_app/worker/broker.py"
    " against the new taskiq-redis, then update this test and the pin"
)


def minor(distribution: str) -> tuple[int, int]:
    major, minor_version = importlib.metadata.version(distribution).split(".")[:2]
    return int(major), int(minor_version)


def test_the_installed_taskiq_redis_is_the_tested_minor() -> None:
    installed = importlib.metadata.version("taskiq-redis")

    assert minor("taskiq-redis") == TESTED_TASKIQ_REDIS, (
        f"taskiq-redis {installed} is installed; PixecomStreamBroker relies on internals of"
        f" {'.'.join(map(str, TESTED_TASKIQ_REDIS))}.x: {RECHECK}"
    )


def test_the_installed_taskiq_is_the_tested_minor() -> None:
    installed = importlib.metadata.version("taskiq")

    assert minor("taskiq") == TESTED_TASKIQ, (
        f"taskiq {installed} is installed; pixecom worker drives taskiq.receiver.Receiver"
        f" of {'.'.join(map(str, TESTED_TASKIQ))}.x: re-read reference_app/worker/run.py"
    )


def test_the_private_ack_generator_keeps_its_signature() -> None:
    generator = getattr(RedisStreamBroker, "_ack_generator", None)

    assert callable(generator), f"RedisStreamBroker._ack_generator is gone: {RECHECK}"
    parameters = list(inspect.signature(generator).parameters)
    assert parameters == ["self", "id", "queue_name"], (
        f"RedisStreamBroker._ack_generator now takes {parameters}: {RECHECK}"
    )


def test_the_attributes_listen_reads_carry_what_build_broker_passed() -> None:
    settings = Settings(mode=Mode.DEV).model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    broker = build_broker(settings, Queue.STATS_LOW)

    assert isinstance(broker, PixecomStreamBroker)
    missing = [name for name in READ_ATTRIBUTES if not hasattr(broker, name)]
    assert not missing, f"RedisStreamBroker no longer sets {missing}: {RECHECK}"
    assert broker.block == XREAD_BLOCK_MS, f"xread_block no longer lands in .block: {RECHECK}"
    assert broker.count == 1, f"xread_count no longer lands in .count: {RECHECK}"
    assert broker.unacknowledged_batch_size == 1
    assert broker.idle_timeout == int(settings.worker_redelivery_after_seconds * 1000), (
        f"idle_timeout no longer lands in .idle_timeout: {RECHECK}"
    )
    assert broker.additional_streams == {}
    assert broker.connection_pool.connection_kwargs["socket_timeout"] == SOCKET_TIMEOUT_SECONDS


def test_the_receiver_pixecom_worker_builds_takes_its_arguments() -> None:
    parameters = inspect.signature(Receiver.__init__).parameters
    used = {"broker", "executor", "run_startup", "max_async_tasks", "wait_tasks_timeout"}

    assert used <= set(parameters), (
        f"taskiq's Receiver lost {sorted(used - set(parameters))}: re-read"
        " reference_app/worker/run.py"
    )
    assert list(inspect.signature(Receiver.listen).parameters) == ["self", "finish_event"]


@pytest.fixture
async def stream_broker(servers: tuple[str, str]) -> AsyncIterator[PixecomStreamBroker]:
    """A started broker on its own stream and consumer group in the test Redis."""
    settings = Settings(mode=Mode.DEV).model_copy(
        update={"redis_url": servers[1], "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:"}
    )
    broker = build_broker(settings, Queue.PAYMENTS)
    assert isinstance(broker, PixecomStreamBroker)
    await broker.startup()
    try:
        yield broker
    finally:
        async with redis.Redis(connection_pool=broker.connection_pool) as connection:
            await connection.delete(broker.queue_name)
        await broker.shutdown()


async def test_a_kicked_message_is_read_and_acknowledged_by_the_overridden_listen(
    stream_broker: PixecomStreamBroker,
) -> None:
    message = BrokerMessage(
        task_id=uuid.uuid4().hex, task_name="pixecom.contract", message=b"payload", labels={}
    )
    await stream_broker.kick(message)

    listening = stream_broker.listen()
    received = await anext(listening)
    await listening.aclose()
    assert received.data == b"payload", f"kick no longer writes the b'data' field: {RECHECK}"
    assert received.ack is not None

    async with redis.Redis(connection_pool=stream_broker.connection_pool) as connection:
        group = stream_broker.consumer_group_name
        before = await connection.xpending(stream_broker.queue_name, group)
        acknowledgement = received.ack()
        assert acknowledgement is not None, "the acknowledgement is no longer awaitable"
        await acknowledgement
        after = await connection.xpending(stream_broker.queue_name, group)
    assert before["pending"] == 1
    assert after["pending"] == 0, (
        f"the acknowledgement from _ack_generator acked nothing: {RECHECK}"
    )
