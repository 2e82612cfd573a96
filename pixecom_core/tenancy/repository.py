"""SellerRepository: the only way core code reads and writes seller-owned rows.

A repository is built from a :class:`SellerScope` and nothing else, adds the seller to
every query it issues (so a missing RLS policy would still not leak) and bounds every
list (SCALE-4). Repositories hold SQL; they never commit — the scope's owner does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, literal, select, tuple_

from pixecom_core.models.base import SellerOwned
from pixecom_core.tenancy.pagination import (
    InvalidCursorError,
    Page,
    PageRequest,
    decode_cursor,
    encode_cursor,
)
from pixecom_core.tenancy.scope import SellerScope

ModelT = TypeVar("ModelT", bound=SellerOwned)


class SellerRepository(Generic[ModelT]):
    """Base repository for one seller-owned table.

    Subclasses set :attr:`model` and, when lists should sort otherwise, :attr:`sort_key`
    (column names ending with a unique column) and :attr:`descending`.
    """

    model: ClassVar[type[Any]]
    sort_key: ClassVar[tuple[str, ...]] = ("created_at", "id")
    descending: ClassVar[bool] = False

    def __init__(self, scope: SellerScope) -> None:
        if not isinstance(scope, SellerScope):
            raise TypeError(
                f"{type(self).__name__} needs a SellerScope (open one with open_seller_scope)"
            )
        self.scope = scope

    @property
    def _seller_filter(self) -> ColumnElement[bool]:
        column: Any = self.model.seller_id
        return column == self.scope.seller_id  # type: ignore[no-any-return]

    def _column(self, name: str) -> Any:
        return getattr(self.model, name)

    async def get(self, id: uuid.UUID) -> ModelT | None:
        """The row with ``id`` if it belongs to the scope's seller, else ``None``."""
        statement = select(self.model).where(self._seller_filter, self._column("id") == id)
        row: ModelT | None = (await self.scope.session.scalars(statement)).first()
        return row

    def add(self, row: ModelT) -> ModelT:
        """Stage ``row`` for insertion as the scope's seller.

        A row carrying another seller's id is refused here, before the database's
        WITH CHECK policy would refuse it at flush time.
        """
        given = getattr(row, "seller_id", None)
        if given is not None and given != self.scope.seller_id:
            raise PermissionError("a row of another seller cannot be written in this scope")
        row.seller_id = self.scope.seller_id
        self.scope.session.add(row)
        return row

    async def delete(self, row: ModelT) -> None:
        """Delete ``row`` (it must have been loaded through this scope)."""
        if row.seller_id != self.scope.seller_id:
            raise PermissionError("a row of another seller cannot be deleted in this scope")
        await self.scope.session.delete(row)

    async def flush(self) -> None:
        """Send staged changes to the database (inside the scope's transaction)."""
        await self.scope.session.flush()

    async def list(self, page: PageRequest, *filters: ColumnElement[bool]) -> Page[ModelT]:
        """One bounded page of rows matching ``filters``, in :attr:`sort_key` order.

        Fetches one row more than the page to know whether another page exists.
        """
        settings = self.scope.settings
        limit = page.effective_limit(
            default=settings.default_page_size, maximum=settings.max_page_size
        )
        statement = self._list_statement(filters, page.cursor).limit(limit + 1)
        rows: list[ModelT] = list((await self.scope.session.scalars(statement)).all())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor([getattr(last, name) for name in self.sort_key])
        return Page(items=rows, next_cursor=next_cursor, limit=limit)

    def _list_statement(
        self, filters: Sequence[ColumnElement[bool]], cursor: str | None
    ) -> Select[Any]:
        columns = [self._column(name) for name in self.sort_key]
        statement = select(self.model).where(self._seller_filter, *filters)
        if cursor is not None:
            values = decode_cursor(cursor, arity=len(columns))
            self._check_cursor_types(columns, values)
            statement = statement.where(self._after(columns, values))
        order = [c.desc() if self.descending else c.asc() for c in columns]
        return statement.order_by(*order)

    @staticmethod
    def _check_cursor_types(columns: Sequence[Any], values: Sequence[object]) -> None:
        # A cursor that decodes but carries another type (forged, or from another list)
        # would reach PostgreSQL as a type error: refuse it as a bad cursor instead.
        for column, value in zip(columns, values, strict=True):
            try:
                expected = column.type.python_type
            except NotImplementedError:
                continue
            if not isinstance(value, expected):
                raise InvalidCursorError("the cursor does not belong to this list")

    def _after(self, columns: Sequence[Any], values: Sequence[object]) -> ColumnElement[bool]:
        # A row comparison, (a, b) > (x, y): PostgreSQL turns it into one range scan of
        # the composite index, whatever the page's depth.
        key = tuple_(*columns)
        bound = tuple_(*[literal(v) for v in values])
        return key < bound if self.descending else key > bound
