"""Cursor encoding and page-size clamping (SCALE-4), without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixecom_core.tenancy import InvalidCursorError, PageRequest
from pixecom_core.tenancy.pagination import decode_cursor, encode_cursor

key_values = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.dates(),
    st.uuids(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=40),
)


@given(st.lists(key_values, min_size=1, max_size=4))
def test_cursor_round_trips_every_key_type(values: list[object]) -> None:
    assert decode_cursor(encode_cursor(values), arity=len(values)) == tuple(values)


@pytest.mark.parametrize(
    "cursor",
    ["", "not base64 at all!", "W10", encode_cursor([1, 2]), "WyJ4IiwxXQ", "bnVsbA"],
)
def test_malformed_or_foreign_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor, arity=1)


def test_cursor_refuses_values_it_cannot_restore() -> None:
    with pytest.raises(TypeError):
        encode_cursor([1.5])
    with pytest.raises(TypeError):
        encode_cursor([True])


@pytest.mark.parametrize(
    ("limit", "expected"), [(None, 50), (10_000, 200), (0, 1), (-5, 1), (7, 7), (200, 200)]
)
def test_page_size_is_defaulted_and_clamped(limit: int | None, expected: int) -> None:
    assert PageRequest(limit=limit).effective_limit(default=50, maximum=200) == expected


def test_cursor_keeps_timezone_and_types() -> None:
    moment = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    ident = uuid.uuid4()
    decoded = decode_cursor(encode_cursor([moment, date(2026, 1, 2), ident]), arity=3)
    assert decoded == (moment, date(2026, 1, 2), ident)
    assert isinstance(decoded[0], datetime) and decoded[0].tzinfo is not None
