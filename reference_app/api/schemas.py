"""Response shapes shared by routers: the bounded page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from pixecom_core.tenancy import Page

ItemT = TypeVar("ItemT")


class PageOut(BaseModel, Generic[ItemT]):
    """One page of a list (audit B4: never more than the maximum page size)."""

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
