"""A missed dashboard read is computed once per process for each entry and token (issue 18
item 2): reads of the same entry under the same token meanwhile get that body; under
another token, or after the first computation failed, each read computes its own."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.app.catalog.conftest import InstrumentedApi


class Computation:
    """A body computed on demand, held until released; counts its runs."""

    def __init__(self, body: bytes, *, fails: bool = False) -> None:
        self.body = body
        self.fails = fails
        self.runs = 0
        self.release = asyncio.Event()

    async def __call__(self) -> bytes:
        self.runs += 1
        await self.release.wait()
        if self.fails:
            raise LookupError("no such campaign")
        return self.body


async def test_concurrent_misses_under_one_token_share_one_computation_and_store_it(
    api: InstrumentedApi,
) -> None:
    cache = api.resources.dashboards
    seller = uuid.uuid4()
    token = (await cache.lookup(seller, "orders", "limit=50")).generation
    assert token is not None
    first, second = Computation(b'{"items":[1]}'), Computation(b'{"items":[2]}')

    reads = [
        asyncio.create_task(cache.compute_once(seller, "orders", "limit=50", c, generation=token))
        for c in (first, second)
    ]
    await asyncio.sleep(0)
    first.release.set()
    second.release.set()
    bodies = await asyncio.gather(*reads)

    assert bodies == [b'{"items":[1]}', b'{"items":[1]}']
    assert (first.runs, second.runs) == (1, 0)
    assert (await cache.lookup(seller, "orders", "limit=50")).body == b'{"items":[1]}'


async def test_another_token_or_query_computes_its_own(api: InstrumentedApi) -> None:
    cache = api.resources.dashboards
    seller = uuid.uuid4()
    old = Computation(b"old")
    newer, other_query = Computation(b"new"), Computation(b"other")

    reads = [
        asyncio.create_task(cache.compute_once(seller, "orders", "q", old, generation="t1")),
        asyncio.create_task(cache.compute_once(seller, "orders", "q", newer, generation="t2")),
        asyncio.create_task(
            cache.compute_once(seller, "orders", "r", other_query, generation="t1")
        ),
    ]
    await asyncio.sleep(0)
    for computation in (old, newer, other_query):
        computation.release.set()

    assert await asyncio.gather(*reads) == [b"old", b"new", b"other"]
    assert (old.runs, newer.runs, other_query.runs) == (1, 1, 1)


async def test_when_the_first_computation_fails_each_waiting_read_computes_its_own(
    api: InstrumentedApi,
) -> None:
    cache = api.resources.dashboards
    seller = uuid.uuid4()
    failing, waiting = Computation(b"", fails=True), Computation(b"fresh")

    leader = asyncio.create_task(
        cache.compute_once(seller, "orders", "q", failing, generation="t1")
    )
    follower = asyncio.create_task(
        cache.compute_once(seller, "orders", "q", waiting, generation="t1")
    )
    await asyncio.sleep(0)
    failing.release.set()
    waiting.release.set()

    with pytest.raises(LookupError):
        await leader
    assert await follower == b"fresh"
    assert (failing.runs, waiting.runs) == (1, 1)
