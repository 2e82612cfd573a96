"""Meta pacing is shared by every worker (issue 18 item 4): two worker processes, each with
the ad network the plugin's hook builds from the environment, sync one ad account of the
sandbox while it throttles that account.

The sandbox throttles the account's next insights call without naming a wait, so the
plugin holds the account back for ``PIXECOM_META_THROTTLE_BACKOFF_SECONDS`` (a few seconds,
to keep the test short). Worker 1 is throttled; worker 2 is told to sync right after. The
sandbox's request log then says when each worker called the account (each syncs its own
day, so its calls are told apart by their ``time_range``):

- with the deployment's Redis, worker 2 does not call the account until worker 1's wait has
  passed, or refuses the sync without calling when it may not wait that long;
- with each process pacing from its own memory, worker 2 calls the throttled account at
  once, which is what the shared state exists to prevent (so the first test can fail).
"""

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from meta_ads_support import SandboxHandle

ACCOUNT = "1002"
TODAY = date(2026, 3, 15)
FIRST_DAY, SECOND_DAY = TODAY - timedelta(days=3), TODAY - timedelta(days=2)
#: How long the plugin holds the account back after a throttle that names no wait.
BACKOFF_SECONDS = 3.0
WORKER = Path(__file__).with_name("pacing_worker.py")
#: Generous: a worker imports the plugin, then syncs a day (or sleeps through a backoff).
STEP_TIMEOUT_SECONDS = 60.0


@dataclass
class Worker:
    """A worker process: says ``ready``, syncs when told ``go``, reports one JSON line."""

    process: asyncio.subprocess.Process

    async def report(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), STEP_TIMEOUT_SECONDS)
        assert line, f"the worker exited ({await self.process.wait()}) without reporting"
        report: dict[str, Any] = json.loads(line)
        return report

    async def go(self) -> float:
        """Tell it to sync now; return when (epoch seconds)."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()
        return time.time()


@asynccontextmanager
async def workers(environment: Mapping[str, str], *days: date) -> AsyncIterator[list[Worker]]:
    """One worker process per day, all built and ready; killed if still running at the end."""
    inherited = {name: value for name, value in os.environ.items() if "PIXECOM" not in name}
    inherited.pop("REDIS_URL", None)
    started = [
        Worker(
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                ACCOUNT,
                day.isoformat(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env={**inherited, **environment},
            )
        )
        for day in days
    ]
    try:
        for worker in started:
            assert (await worker.report())["event"] == "ready"
        yield started
    finally:
        for worker in started:
            if worker.process.returncode is None:
                worker.process.kill()
            await worker.process.wait()


def worker_environment(
    sandbox: SandboxHandle, redis_url: str | None, prefix: str, **overrides: str
) -> dict[str, str]:
    environment = {
        "PIXECOM_META_GRAPH_BASE": sandbox.url,
        "PIXECOM_META_THROTTLE_BACKOFF_SECONDS": str(BACKOFF_SECONDS),
        # both workers sleep through a wait this short, as production does up to 30 s
        "PIXECOM_META_MAX_INLINE_WAIT_SECONDS": "10",
        # only the block holds calls back: no pause for the 100 % usage the throttle reports
        "PIXECOM_META_MAX_PACE_DELAY_SECONDS": "0",
        "PIXECOM_REDIS_KEY_PREFIX": prefix,
        **overrides,
    }
    if redis_url is not None:
        environment["REDIS_URL"] = redis_url
    return environment


async def throttle_the_account(sandbox: SandboxHandle) -> None:
    await sandbox.change_account(ACCOUNT, today=TODAY.isoformat())
    # the next insights call of the account is refused as over Meta's rate limit, its
    # headers naming no wait
    await sandbox.fault(
        "throttled", code=80000, scope=ACCOUNT, operation="insights", retry_after_seconds=0
    )


async def throttled_call(sandbox: SandboxHandle) -> dict[str, Any]:
    """The sandbox's log entry of worker 1's throttled call, once it was made."""
    for _ in range(int(STEP_TIMEOUT_SECONDS / 0.02)):
        calls = await sandbox.requests("/insights")
        if calls:
            assert FIRST_DAY.isoformat() in calls[0]["params"]["time_range"]
            return calls[0]
        await asyncio.sleep(0.02)
    raise AssertionError("worker 1 never called the sandbox")


async def block_in_redis(client: redis.Redis, key: str) -> float:
    """``blocked_until`` as worker 1 saved it, once saved."""
    for _ in range(int(STEP_TIMEOUT_SECONDS / 0.02)):
        blocked_until = await client.hget(key, "blocked_until")
        if blocked_until:
            return float(blocked_until)
        await asyncio.sleep(0.02)
    raise AssertionError(f"worker 1 never saved a block under {key}")


async def calls_for(sandbox: SandboxHandle, day: date) -> list[float]:
    """When the account's insights were asked for ``day`` (epoch seconds)."""
    return [
        call["at"]
        for call in await sandbox.requests("/insights")
        if day.isoformat() in call["params"]["time_range"]
    ]


async def test_the_second_worker_waits_out_the_block_the_first_was_told_about(
    sandbox: SandboxHandle, redis_url: str, redis_key_prefix: str, redis_client: redis.Redis
) -> None:
    await throttle_the_account(sandbox)
    environment = worker_environment(sandbox, redis_url, redis_key_prefix)

    async with workers(environment, FIRST_DAY, SECOND_DAY) as (first, second):
        await first.go()
        throttled = await throttled_call(sandbox)
        blocked_until = await block_in_redis(
            redis_client, f"{redis_key_prefix}meta:pacing:{ACCOUNT}"
        )
        told_at = await second.go()
        first_report, second_report = await first.report(), await second.report()

    # worker 2 was told to sync well inside worker 1's wait …
    assert blocked_until - BACKOFF_SECONDS >= throttled["at"]
    assert told_at < blocked_until - 1
    # … and its one call reached the account only once the wait had passed
    [second_call] = await calls_for(sandbox, SECOND_DAY)
    assert second_call >= blocked_until
    assert second_call - throttled["at"] >= BACKOFF_SECONDS
    # worker 1 retried after the same wait; both read their day in full
    first_calls = await calls_for(sandbox, FIRST_DAY)
    assert len(first_calls) == 2 and first_calls[1] >= blocked_until
    assert first_report["event"] == second_report["event"] == "synced"
    assert first_report["rows"] == second_report["rows"] == 3


async def test_a_worker_that_may_not_wait_that_long_refuses_without_calling(
    sandbox: SandboxHandle, redis_url: str, redis_key_prefix: str, redis_client: redis.Redis
) -> None:
    await throttle_the_account(sandbox)
    environment = worker_environment(sandbox, redis_url, redis_key_prefix)
    impatient = {**environment, "PIXECOM_META_MAX_INLINE_WAIT_SECONDS": "0"}

    async with (
        workers(environment, FIRST_DAY) as [first],
        workers(impatient, SECOND_DAY) as [second],
    ):
        await first.go()
        await throttled_call(sandbox)
        blocked_until = await block_in_redis(
            redis_client, f"{redis_key_prefix}meta:pacing:{ACCOUNT}"
        )
        told_at = await second.go()
        second_report = await second.report()
        assert (await first.report())["event"] == "synced"

    assert second_report["event"] == "throttled"
    # the time left of worker 1's block, not a wait of its own
    assert 0 < second_report["retry_after_seconds"] <= blocked_until - told_at + 0.1
    assert await calls_for(sandbox, SECOND_DAY) == []


async def test_without_a_shared_state_the_second_worker_calls_the_throttled_account(
    sandbox: SandboxHandle, redis_key_prefix: str
) -> None:
    # the same workers pacing from their own memory: what the shared state prevents
    await throttle_the_account(sandbox)
    environment = worker_environment(sandbox, None, redis_key_prefix)

    async with workers(environment, FIRST_DAY, SECOND_DAY) as (first, second):
        await first.go()
        throttled = await throttled_call(sandbox)
        await asyncio.sleep(0.3)  # worker 1 has read the answer and noted its block
        await second.go()
        first_report, second_report = await first.report(), await second.report()

    [second_call] = await calls_for(sandbox, SECOND_DAY)
    assert second_call - throttled["at"] < BACKOFF_SECONDS
    assert first_report["event"] == second_report["event"] == "synced"
