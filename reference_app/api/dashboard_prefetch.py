"""A dashboard read's cache entry, read in the round trip that admits its request
(issue 18 item 1).

An authenticated request already makes one Redis round trip before its route runs: the
script that checks its login's revocation and counts the seller's quota
(:func:`reference_app.api.dependencies.access_claims`). A cached dashboard read used to
make a second one for its entry. The entry's key, though, depends on the route's
*validated, normalised* query (:func:`reference_app.api.dashboard_reads.normalized_query`),
which does not exist before the route runs. So each process remembers, per path and raw
query string, the cache route and normalised query its last answer used
(:func:`learn`); on the next request with the same path and query string the admission
script reads that entry and the seller's token with it (:func:`prefetch_keys`,
:func:`keep_prefetched`).

The remembered mapping is only a guess about which key the route will compute. The
route still computes its key from its own validated query, and uses the values read
with the admission only when they were read for exactly that key (:func:`prefetched`);
otherwise — a first request, a default that changed with the date — it reads the cache
itself, as before. The key always carries the seller id of the verified token, so no
guess can ever name another seller's entry (TENANT-1).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import NamedTuple

from starlette.routing import BaseRoute
from starlette.types import Scope

from pixecom_core.dashboard_cache import DashboardCache

#: The request state entry holding the prefetched values: (entry key, [entry, token]).
PREFETCH_STATE = "dashboard_prefetch"


class ReadGuess(NamedTuple):
    """What a request with a given path and query string read when it was last answered
    here: the cache route, the normalised query, and the app's route that served it."""

    route: str
    query: str
    #: The route object (labels a read answered before routing in metrics and logs).
    endpoint_route: BaseRoute | None


#: (path, raw query string) → what the read last answered here used.
_read_keys: dict[tuple[str, bytes], ReadGuess] = {}
#: Reads remembered at most; past it the memory starts over (a guess is cheap to relearn).
MAX_REMEMBERED_READS = 10_000


def _request_key(scope: Scope) -> tuple[str, bytes] | None:
    if scope.get("method") != "GET":
        return None
    query_string: bytes = scope.get("query_string", b"")
    return scope["path"], query_string


def learn(scope: Scope, route: str, query: str) -> None:
    """Remember that a request with ``scope``'s path and query string read the entry of
    ``route`` and normalised ``query``."""
    request = _request_key(scope)
    if request is None:
        return
    known = _read_keys.get(request)
    if known is not None and known.route == route and known.query == query:
        return
    if len(_read_keys) >= MAX_REMEMBERED_READS:
        _read_keys.clear()
    _read_keys[request] = ReadGuess(route, query, scope.get("route"))


def guess(scope: Scope) -> ReadGuess | None:
    """The read a request with ``scope``'s path and query string made when last answered
    here; None for one not seen yet (or not a GET)."""
    request = _request_key(scope)
    return _read_keys.get(request) if request is not None else None


def prefetch_keys(scope: Scope, cache: DashboardCache, seller_id: uuid.UUID) -> list[str]:
    """The cache keys to read with the request's admission: the entry a request like
    this one read last time, and the seller's token; none when there is no guess."""
    known = guess(scope)
    if known is None or not cache.enabled:
        return []
    return cache.lookup_keys(seller_id, known.route, known.query)


def keep_prefetched(scope: Scope, keys: Sequence[str], values: Sequence[object]) -> None:
    """Keep the values read for :func:`prefetch_keys`'s ``keys`` for the route."""
    if keys:
        state = scope.setdefault("state", {})
        state[PREFETCH_STATE] = (keys[0], list(values))


def prefetched(scope: Scope, entry_key: str) -> tuple[object, object] | None:
    """The (entry, token) values read with the admission, if they were read for
    ``entry_key``; None otherwise."""
    kept = (scope.get("state") or {}).get(PREFETCH_STATE)
    if not isinstance(kept, tuple) or kept[0] != entry_key or len(kept[1]) != 2:
        return None
    raw, token = kept[1]
    return raw, token


__all__ = [
    "MAX_REMEMBERED_READS",
    "PREFETCH_STATE",
    "ReadGuess",
    "guess",
    "keep_prefetched",
    "learn",
    "prefetch_keys",
    "prefetched",
]
