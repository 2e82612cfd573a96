"""Every route's handler and dependencies run on the event loop, never in a thread.

FastAPI runs a plain ``def`` handler or dependency in a worker thread. For code that never
blocks, that hand-off is pure cost: a profile of the API under the simulation's load put
a tenth of its CPU in the thread pool's queue. A sync function that really must block
(file I/O, a C library) belongs in an explicit ``run_in_threadpool``, not here.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from pixecom_core.settings import Settings
from reference_app.api import create_app


def runs_on_the_loop(call: Any) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one (HTTPBearer)."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 (a class instance's __call__, not callable())
    )


def calls(dependant: Dependant) -> Iterator[Any]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from calls(sub)


def test_no_route_hands_work_to_a_thread(app_settings: Settings) -> None:
    app = create_app(app_settings)
    # Each route as included (with its routers' dependencies), at its full path.
    routes = [
        (context.path, context.dependant)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and context.dependant is not None
    ]
    assert len(routes) > 40  # the whole API, not an empty app

    in_threads = sorted(
        {
            f"{path}: {getattr(call, '__qualname__', repr(call))}"
            for path, dependant in routes
            for call in calls(dependant)
            if not runs_on_the_loop(call)
        }
    )

    assert in_threads == []
