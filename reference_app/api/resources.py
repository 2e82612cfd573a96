"""Process-wide resources the API opens at startup and closes at shutdown.

They live in the lifespan state (not module globals), so every app built by
:func:`reference_app.api.app.create_app` — one per test, say — owns its own pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis.asyncio as redis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.settings import Settings


@dataclass(frozen=True)
class AppResources:
    """What request handlers may use: settings, the app-role engine, a Redis client.

    The engine connects as the application role, which owns nothing, so PostgreSQL's
    row-level security applies to every query the API makes.
    """

    settings: Settings
    engine: AsyncEngine
    redis: redis.Redis


def get_resources(request: Request) -> AppResources:
    """The resources opened by the lifespan of the app serving ``request``."""
    resources: AppResources = request.state.resources
    return resources


ResourcesDep = Annotated[AppResources, Depends(get_resources)]
