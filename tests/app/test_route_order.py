"""The app matches its busiest routers first (issue 18: a storefront read spent 0.8 ms
finding its route behind the seller API's); that must change no answer and no document."""

from __future__ import annotations

import re
import uuid

import httpx
from fastapi.routing import APIRoute
from starlette.routing import Match

from reference_app.api.routes import MATCH_ORDER, ROUTERS

_PARAMETER = re.compile(r"\{(\w+)(?::(\w+))?\}")


def concrete(path: str) -> str:
    """A request path the route template matches (uuids where the converter asks)."""
    return _PARAMETER.sub(lambda m: str(uuid.uuid4()) if m[2] == "uuid" else f"value-{m[1]}", path)


def test_the_match_order_holds_every_router_once() -> None:
    assert len(MATCH_ORDER) == len(ROUTERS)
    assert {id(r) for r in MATCH_ORDER} == {id(r) for r in ROUTERS}


def test_no_request_is_matched_by_routes_of_two_routers() -> None:
    clashes = []
    for index, router in enumerate(ROUTERS):
        for route in router.routes:
            assert isinstance(route, APIRoute)
            for method in sorted(route.methods or ()):
                scope = {"type": "http", "method": method, "path": concrete(route.path)}
                scope["root_path"] = ""
                assert route.matches(scope)[0] is Match.FULL, route.path  # the probe works
                for other_index, other in enumerate(ROUTERS):
                    if other_index == index:
                        continue
                    for candidate in other.routes:
                        match, _ = candidate.matches(scope)
                        if match is Match.FULL:
                            clashes.append((method, route.path, candidate.path))  # type: ignore[attr-defined]
    assert clashes == []


async def test_the_document_lists_paths_in_the_routers_reading_order(
    api_client: httpx.AsyncClient,
) -> None:
    document = (await api_client.get("/openapi.json")).json()
    reading: list[str] = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            path = _PARAMETER.sub(r"{\1}", route.path)
            if route.include_in_schema and path not in reading:
                reading.append(path)

    listed = [path for path in document["paths"] if path in reading]

    assert listed == reading
    assert list(MATCH_ORDER) != list(ROUTERS)  # the order really differs from the document's
