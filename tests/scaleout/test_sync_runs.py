"""The sync run log and the lock hand-over a redelivered task relies on (in process).

What the multi-process tests assert from ``sync_runs`` is checked here at the unit: a run
is opened only by the job that holds the seller's lock and closed with its outcome; a
task redelivered after its worker died takes over the lock its dead delivery held, while
any other task is still turned away; old runs are pruned per seller.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
import redis.asyncio as redis
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.jobs import JobOutcome, SyncJobs
from pixecom_core.testing.databases import TestDatabase
from tests.scaleout.conftest import sync_runs
from tests.stats.fakeads import FakeAdNetwork
from tests.stats.test_jobs import make_jobs
from tests.stats.test_sync import seller_with_accounts


@pytest.fixture
async def client(database: TestDatabase) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(database.redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture
def jobs(app_engine: AsyncEngine, settings: Settings, client: redis.Redis) -> SyncJobs:
    prefixed = settings.model_copy(update={"redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:"})
    return make_jobs(app_engine, prefixed, FakeAdNetwork(), client)


def new_seller(dsn: str, settings: Settings) -> uuid.UUID:
    return seller_with_accounts(dsn, SecretBox(settings.token_encryption_keys), "acct").seller_id


async def test_a_run_is_recorded_with_its_worker_and_outcome(
    jobs: SyncJobs, settings: Settings, database_owner_dsn: str
) -> None:
    seller = new_seller(database_owner_dsn, settings)

    result = await jobs.run(seller, days_back=2, task_id="task-1")

    assert result.outcome is JobOutcome.DONE
    [run] = sync_runs(database_owner_dsn, [seller])
    assert (run.task_id, run.days_back, run.finished, run.outcome) == ("task-1", 2, True, "done")
    assert run.worker.endswith(f":{os.getpid()}")


async def test_a_redelivered_task_takes_over_its_own_lock_and_no_other(
    jobs: SyncJobs, settings: Settings, client: redis.Redis, database_owner_dsn: str
) -> None:
    seller = new_seller(database_owner_dsn, settings)
    # The lock as a worker killed mid-sync of task "task-7" left it.
    await client.set(jobs.lock_name(seller), "task-7", px=60_000)

    other = await jobs.run(seller, days_back=1, task_id="task-8")
    assert other.outcome is JobOutcome.SKIPPED_RUNNING
    assert sync_runs(database_owner_dsn, [seller]) == []  # a skipped job is not a run

    again = await jobs.run(seller, days_back=1, task_id="task-7")
    assert again.outcome is JobOutcome.DONE
    assert [(r.task_id, r.outcome) for r in sync_runs(database_owner_dsn, [seller])] == [
        ("task-7", "done")
    ]
    assert await client.exists(jobs.lock_name(seller)) == 0  # released after the run


async def test_old_runs_are_pruned_per_seller(
    jobs: SyncJobs, settings: Settings, database_owner_dsn: str
) -> None:
    seller, neighbour = (new_seller(database_owner_dsn, settings) for _ in range(2))
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        for owner in (seller, neighbour):
            conn.execute(
                "INSERT INTO sync_runs (seller_id, task_id, days_back, worker, started_at,"
                " finished_at, outcome) VALUES (%s, 'old', 3, 'w:1', now() - interval '30 days',"
                " now() - interval '30 days', 'done')",
                (owner,),
            )

    await jobs.run(seller, days_back=1, task_id="fresh")

    assert [r.task_id for r in sync_runs(database_owner_dsn, [seller])] == ["fresh"]
    # Another seller's history is pruned only when its own runs finish.
    assert [r.task_id for r in sync_runs(database_owner_dsn, [neighbour])] == ["old"]
