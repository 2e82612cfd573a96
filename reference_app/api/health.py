"""Liveness and readiness probes.

``/healthz`` answers as long as the process can serve HTTP (a supervisor restarts the
process when it stops answering). ``/readyz`` answers 200 only when the dependencies a
request needs — PostgreSQL and Redis — respond within a short timeout, so a load balancer
or systemd unit stops routing traffic to an instance that would only time out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import redis.asyncio as redis
from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.api.resources import ResourcesDep

_log = logging.getLogger(__name__)

#: Each check gets this long; the checks run concurrently, so a probe answers within it.
READINESS_TIMEOUT_SECONDS = 2.0

router = APIRouter(tags=["health"])


class LivenessReport(BaseModel):
    """The process is up and its event loop answers."""

    status: Literal["alive"] = "alive"


class CheckResult(BaseModel):
    """The outcome of one dependency check."""

    status: Literal["ok", "failed"]
    duration_ms: float = Field(description="How long the check took, in milliseconds.")
    error: str | None = Field(
        default=None,
        description=(
            "Why the check failed: the error's kind only. Details (host names, addresses) "
            "go to the server log, not to whoever can reach the probe."
        ),
    )


class ReadinessReport(BaseModel):
    """Whether this instance can serve requests, with one entry per dependency."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckResult]


async def _ping_database(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _ping_redis(client: redis.Redis) -> None:
    # Any reply that is not an error means the server is alive and accepting commands.
    await client.ping()


async def _run_check(
    name: str, probe: Callable[[], Awaitable[None]], timeout: float
) -> CheckResult:
    started = time.perf_counter()
    error: str | None = None
    try:
        async with asyncio.timeout(timeout):
            await probe()
    except TimeoutError:
        error = f"timed out after {timeout:g} s"
        _log.warning("readiness check %s timed out after %s s", name, timeout)
    except Exception as exc:  # a probe must report, never raise
        error = type(exc).__name__
        _log.warning("readiness check %s failed: %r", name, exc)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    if error is None:
        return CheckResult(status="ok", duration_ms=elapsed_ms)
    return CheckResult(status="failed", duration_ms=elapsed_ms, error=error)


async def check_readiness(
    engine: AsyncEngine, client: redis.Redis, *, timeout: float = READINESS_TIMEOUT_SECONDS
) -> ReadinessReport:
    """Ping PostgreSQL (``SELECT 1`` as the app role) and Redis (``PING``) concurrently."""
    database, cache = await asyncio.gather(
        _run_check("database", lambda: _ping_database(engine), timeout),
        _run_check("redis", lambda: _ping_redis(client), timeout),
    )
    checks = {"database": database, "redis": cache}
    ready = all(check.status == "ok" for check in checks.values())
    return ReadinessReport(status="ready" if ready else "not_ready", checks=checks)


@router.get("/healthz", response_model=LivenessReport, summary="Liveness probe")
async def healthz() -> LivenessReport:
    """Always 200 while the process serves HTTP; touches no dependency."""
    return LivenessReport()


@router.get(
    "/readyz",
    response_model=ReadinessReport,
    summary="Readiness probe",
    responses={
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "model": ReadinessReport,
            "description": "A dependency did not answer; `checks` says which.",
        }
    },
)
async def readyz(resources: ResourcesDep, response: Response) -> ReadinessReport:
    """200 when PostgreSQL and Redis answer within the timeout, else 503."""
    report = await check_readiness(resources.engine, resources.redis)
    if report.status != "ready":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report
