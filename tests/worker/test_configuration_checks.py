"""Configuration checks raise errors that say what to do, under ``python -O`` too.

Issue 13 #8: an ``assert`` is removed by ``python -O``, so a worker or scheduler started
without ``REDIS_URL`` would have failed later on ``None`` instead of at start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from taskiq import InMemoryBroker

from pixecom_core.models.sellers import SellerTier
from pixecom_core.settings import Mode, Settings
from pixecom_core.stats.schedule import DueSync
from reference_app.configuration import RedisNotConfiguredError, require_redis_url
from reference_app.worker import scheduler
from reference_app.worker.broker import (
    PROCESS_WEBHOOK,
    Queue,
    TaskNotRegisteredError,
    build_broker,
    kick_process_webhook,
    kick_revenue_refresh,
    kick_sync,
    kick_tracking_refresh,
    registered_task,
)


def settings_without_redis() -> Settings:
    return Settings(mode=Mode.DEV).model_copy(update={"redis_url": None})


@pytest.mark.parametrize("queue", list(Queue))
def test_a_broker_without_redis_is_refused_with_what_to_do(queue: Queue) -> None:
    with pytest.raises(RedisNotConfiguredError, match="REDIS_URL is not set: export it"):
        build_broker(settings_without_redis(), queue)


async def test_the_scheduler_without_redis_is_refused_before_connecting() -> None:
    with pytest.raises(RedisNotConfiguredError, match="REDIS_URL"):
        await scheduler.serve(settings_without_redis())


def test_an_empty_redis_url_counts_as_unset() -> None:
    with pytest.raises(RedisNotConfiguredError, match="pixecom dev"):
        require_redis_url(Settings(mode=Mode.DEV).model_copy(update={"redis_url": ""}))


def test_a_set_redis_url_is_returned() -> None:
    configured = Settings(mode=Mode.DEV).model_copy(update={"redis_url": "redis://h:1/0"})

    assert require_redis_url(configured) == "redis://h:1/0"


async def test_kicking_on_a_broker_without_the_tasks_names_the_builder() -> None:
    settings = Settings(mode=Mode.DEV)
    foreign = InMemoryBroker()
    seller_id = uuid.uuid4()
    due = DueSync(
        seller_id=seller_id,
        tier=SellerTier.LOW,
        days_back=1,
        claim_key="k",
        claim_seconds=1,
        sweep=False,
    )

    for kick in (
        kick_process_webhook(foreign, 1),
        kick_revenue_refresh(foreign, seller_id),
        kick_tracking_refresh(foreign, settings, seller_id),
        kick_sync(foreign, settings, due),
    ):
        with pytest.raises(TaskNotRegisteredError, match="build_broker"):
            await kick


def test_a_registered_task_is_found() -> None:
    broker = build_broker(Settings(mode=Mode.DEV).model_copy(update={"redis_url": "redis://h:1/0"}))

    assert registered_task(broker, PROCESS_WEBHOOK).task_name == PROCESS_WEBHOOK


def test_the_checks_hold_under_python_dash_o() -> None:
    # Run where `assert` statements are compiled away: the errors must still be raised.
    script = textwrap.dedent(
        """
        import asyncio, sys
        assert False, "asserts are on: this check needs python -O"
        from taskiq import InMemoryBroker
        from pixecom_core.settings import Mode, Settings
        from reference_app.configuration import RedisNotConfiguredError
        from reference_app.worker.broker import TaskNotRegisteredError, build_broker
        from reference_app.worker.broker import kick_process_webhook

        try:
            build_broker(Settings(mode=Mode.DEV).model_copy(update={"redis_url": None}))
        except RedisNotConfiguredError as exc:
            print("redis:", exc)
        try:
            asyncio.run(kick_process_webhook(InMemoryBroker(), 1))
        except TaskNotRegisteredError as exc:
            print("task:", exc)
        """
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONOPTIMIZE")}
    done = subprocess.run(
        [sys.executable, "-O", "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "redis: REDIS_URL is not set" in done.stdout
    assert "task: the broker has no task 'pixecom.process_webhook'" in done.stdout
