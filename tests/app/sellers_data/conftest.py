"""Fixtures for the seller read APIs: two signed-up sellers and their rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tests.app.conftest import NewSeller, SignedUpSeller
from tests.app.sellers_data.rows import Connection, SellerRows


@pytest.fixture
def owner(database_owner_dsn: str) -> Iterator[Connection]:
    """An autocommit owner connection; each helper opens its own scoped transaction."""
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        yield conn


@dataclass(frozen=True)
class Tenant:
    """A seller that acts through the API and whose rows tests arrange directly."""

    api: SignedUpSeller
    rows: SellerRows

    @property
    def headers(self) -> dict[str, str]:
        return self.api.headers


@pytest.fixture
async def seller_a(new_seller: NewSeller, owner: Connection) -> Tenant:
    signed_up = await new_seller()
    return Tenant(api=signed_up, rows=SellerRows(owner, signed_up.seller_id))


@pytest.fixture
async def seller_b(new_seller: NewSeller, owner: Connection) -> Tenant:
    signed_up = await new_seller()
    return Tenant(api=signed_up, rows=SellerRows(owner, signed_up.seller_id))
