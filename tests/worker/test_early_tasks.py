"""A task queued before any worker of its queue ever started is delivered once one does:
``pixecom dev`` queues the demo's backfills before starting the workers, and on a fresh
deployment the first seller may connect before the backfill worker first ran."""

from __future__ import annotations

import asyncio
import uuid

from pixecom_core.settings import Settings
from reference_app.worker.broker import Queue, build_broker, kick_backfill


async def test_a_backfill_queued_before_its_worker_first_started_is_delivered(
    settings: Settings,
) -> None:
    isolated = settings.model_copy(update={"redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:"})
    seller_id, account_id = uuid.uuid4(), uuid.uuid4()
    # The API's side: its broker is for another queue; the backfill stream's group does
    # not exist yet when the task is queued.
    kicker = build_broker(isolated, Queue.PAYMENTS)
    await kicker.startup()
    try:
        await kick_backfill(kicker, isolated, seller_id, account_id)
    finally:
        await kicker.shutdown()

    worker = build_broker(isolated, Queue.BACKFILL)
    await worker.startup()  # the first worker of the queue declares its group now
    try:
        async with asyncio.timeout(10):
            message = await anext(aiter(worker.listen()))
        delivered = worker.formatter.loads(message.data)
        await message.ack()  # type: ignore[misc]
    finally:
        await worker.shutdown()

    assert delivered.task_name == "pixecom.backfill_account"
    assert delivered.args == [str(seller_id), str(account_id)]
