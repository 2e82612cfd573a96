"""Cursor (keyset) pagination with a hard maximum page size (SCALE-4).

Offsets get slower with every page and skip or repeat rows while data changes; a keyset
cursor carries the sort key of the last row returned, so each page is one index range
scan whatever its depth. The cursor is opaque to clients (URL-safe base64 of JSON).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

ItemT = TypeVar("ItemT")

_DECODERS: dict[str, Callable[[Any], object]] = {
    "dt": datetime.fromisoformat,
    "d": date.fromisoformat,
    "u": uuid.UUID,
    "s": str,
    "i": int,
}


class InvalidCursorError(ValueError):
    """A cursor that this service did not issue (or that was altered)."""


def _encode_value(value: object) -> list[Any]:
    if isinstance(value, datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, date):
        return ["d", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"cannot put a {type(value).__name__} into a cursor")
    return ["i" if isinstance(value, int) else "s", value]


def encode_cursor(values: Sequence[object]) -> str:
    """Encode the sort-key values of the last row of a page."""
    payload = json.dumps([_encode_value(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, arity: int) -> tuple[object, ...]:
    """Decode a cursor made by :func:`encode_cursor` for a key of ``arity`` columns."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        items = json.loads(raw)
        if not isinstance(items, list) or len(items) != arity:
            raise ValueError("wrong number of key values")
        return tuple(_DECODERS[tag](value) for tag, value in items)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InvalidCursorError("the cursor is malformed; restart from the first page") from exc


@dataclass(frozen=True)
class PageRequest:
    """What a caller asks for: at most ``limit`` items after ``cursor``.

    ``limit`` is clamped to the deployment's maximum page size rather than refused, so a
    client asking for 10,000 rows gets a full page and a cursor, never an unbounded scan.
    """

    limit: int | None = None
    cursor: str | None = None

    def effective_limit(self, *, default: int, maximum: int) -> int:
        """The number of rows to return: the request's, defaulted and clamped."""
        requested = default if self.limit is None else self.limit
        return max(1, min(requested, maximum))


@dataclass(frozen=True)
class Page(Generic[ItemT]):
    """One page of results; ``next_cursor`` is ``None`` on the last page."""

    items: list[ItemT]
    next_cursor: str | None
    limit: int
