"""Shapes shared by routers: the bounded page, PATCH fields that may not be null, and
dates and times that are only ever written as ISO 8601."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field
from pydantic.json_schema import SkipJsonSchema

from pixecom_core.tenancy import Page

ItemT = TypeVar("ItemT")

NotNull = SkipJsonSchema[None]
"""For a PATCH field that may be left out but not sent as ``null``:
``status: ProductStatus | NotNull = omittable()``. Python sees ``None`` (left out); the
OpenAPI document does not offer ``null``, because the route refuses it (issue 12 item 7:
the document said nullable while the API answered 422)."""


_RFC3339_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})"
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _written_as(pattern: re.Pattern[str], example: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, str) and pattern.fullmatch(value):
            return value
        raise ValueError(f"must be written like {example}")

    return check


IsoDateTime = Annotated[
    AwareDatetime,
    BeforeValidator(_written_as(_RFC3339_DATE_TIME, "2026-01-31T23:00:00Z")),
]
"""A date-time with its offset, written as RFC 3339 (the OpenAPI ``date-time`` format).

pydantic alone also reads ``0.5`` or ``1700000000`` as Unix time; the document says
``date-time``, so those are refused (issue 12 item 7: ``created_to=0.5`` was accepted)."""

IsoDate = Annotated[date, BeforeValidator(_written_as(_ISO_DATE, "2026-01-31"))]
"""A calendar day written ``YYYY-MM-DD`` (the OpenAPI ``date`` format), never a number."""


def _without_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omittable() -> Any:
    """The ``Field`` of a :data:`NotNull` field: absent by default, no ``default: null``
    in the document. Constraints go on the type, not here (``Annotated[str,
    Field(max_length=…)] | NotNull``): on the union they would be applied to ``None``."""
    return Field(default=None, json_schema_extra=_without_default)


class PageOut(BaseModel, Generic[ItemT]):
    """One page of a list (SCALE-4: never more than the maximum page size)."""

    items: list[ItemT]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
    limit: int = Field(description="The page size applied (requested, clamped to the maximum).")

    @classmethod
    def of(cls, page: Page[Any], convert: Callable[[Any], ItemT]) -> PageOut[ItemT]:
        """Convert a core :class:`Page` item by item."""
        return cls(
            items=[convert(item) for item in page.items],
            next_cursor=page.next_cursor,
            limit=page.limit,
        )
