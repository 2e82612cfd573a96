"""Arrange a seller's ad-side and order rows as the schema owner, inside its scope.

There is no create API for campaigns, assets or orders (networks, uploads and checkout
write them), so tests insert them the way ``tests/db/tenant_rows.py`` does: as the owner,
in a transaction whose ``app.current_seller_id`` is the seller, so the row-level-security
WITH CHECK still vets every row.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg

from tests.db.tenant_rows import seller_scope

Connection = psycopg.Connection[tuple[Any, ...]]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an error in the one shape, with ``status`` and ``code``."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["request_id"]
    return error


class SellerRows:
    """Insert and read one seller's rows behind the API's back."""

    def __init__(self, conn: Connection, seller_id: uuid.UUID) -> None:
        self.conn = conn
        self.seller_id = seller_id

    def insert(self, table: str, **values: Any) -> uuid.UUID:
        """One row of ``table`` for this seller; its id."""
        values = {"seller_id": self.seller_id, **values}
        columns = ", ".join(values)
        placeholders = ", ".join(["%s"] * len(values))
        with seller_scope(self.conn, self.seller_id):
            row = self.conn.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING id",
                list(values.values()),
            ).fetchone()
        assert row is not None
        identifier: uuid.UUID = row[0]
        return identifier

    def fetch_one(self, query: str, *params: Any) -> tuple[Any, ...] | None:
        """One row of ``query``, run in this seller's scope."""
        with seller_scope(self.conn, self.seller_id):
            return self.conn.execute(query, params).fetchone()

    def fetch_all(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Every row of ``query``, run in this seller's scope."""
        with seller_scope(self.conn, self.seller_id):
            return self.conn.execute(query, params).fetchall()

    # -- catalog ------------------------------------------------------------------------

    def sellpage(self) -> uuid.UUID:
        """A product and a sellpage selling it."""
        tag = uuid.uuid4().hex[:12]
        product = self.insert("products", sku=f"SKU-{tag}", name="Widget")
        return self.insert("sellpages", slug=f"page-{tag}", title="Widget", product_id=product)

    # -- ad side ------------------------------------------------------------------------

    def ad_account(self, *, token_ciphertext: bytes | None = None) -> uuid.UUID:
        tag = uuid.uuid4().hex[:12]
        return self.insert(
            "ad_accounts",
            network="meta",
            external_id=f"act_{tag}",
            name="Main account",
            timezone="UTC",
            currency="USD",
            token_ciphertext=token_ciphertext,
            token_key_version=1 if token_ciphertext is not None else None,
        )

    def campaign(
        self,
        ad_account_id: uuid.UUID,
        *,
        status: str = "ACTIVE",
        sellpage_id: uuid.UUID | None = None,
        name: str = "Campaign",
    ) -> uuid.UUID:
        return self.insert(
            "campaigns",
            ad_account_id=ad_account_id,
            external_id=f"cmp_{uuid.uuid4().hex[:12]}",
            name=name,
            status=status,
            sellpage_id=sellpage_id,
        )

    def adset(self, campaign_id: uuid.UUID, *, status: str = "ACTIVE") -> uuid.UUID:
        return self.insert(
            "adsets",
            campaign_id=campaign_id,
            external_id=f"as_{uuid.uuid4().hex[:12]}",
            name="Ad set",
            status=status,
        )

    def ad(
        self,
        adset_id: uuid.UUID,
        *,
        status: str = "ACTIVE",
        creative_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        return self.insert(
            "ads",
            adset_id=adset_id,
            creative_id=creative_id,
            external_id=f"ad_{uuid.uuid4().hex[:12]}",
            name="Ad",
            status=status,
        )

    def creative(self, *, status: str = "DRAFT", name: str = "Creative") -> uuid.UUID:
        return self.insert("creatives", name=name, status=status)

    def asset(self, *, status: str = "READY", content_type: str = "image/png") -> uuid.UUID:
        tag = uuid.uuid4().hex
        return self.insert(
            "assets",
            sha256=tag + uuid.uuid4().hex,
            storage_key=f"assets/{tag}",
            content_type=content_type,
            size_bytes=2048,
            status=status,
        )

    def creative_asset(
        self,
        creative_id: uuid.UUID,
        asset_id: uuid.UUID,
        *,
        role: str = "PRIMARY",
        position: int = 0,
    ) -> uuid.UUID:
        return self.insert(
            "creative_assets",
            creative_id=creative_id,
            asset_id=asset_id,
            role=role,
            position=position,
        )

    # -- orders -------------------------------------------------------------------------

    def order(
        self,
        created_at: datetime,
        *,
        status: str = "PAID",
        sellpage_id: uuid.UUID | None = None,
        total_minor: int = 1999,
    ) -> uuid.UUID:
        return self.insert(
            "orders",
            created_at=created_at,
            status=status,
            sellpage_id=sellpage_id,
            currency="USD",
            subtotal_minor=total_minor,
            total_minor=total_minor,
            customer_email="shopper@example.com",
        )

    def orders(
        self, count: int, *, newest: datetime, step: timedelta, per_moment: int = 3
    ) -> list[tuple[datetime, uuid.UUID]]:
        """``count`` orders going back from ``newest`` by ``step``, ``per_moment`` of them
        sharing each ``created_at`` (so the id must break ties); (created_at, id) each."""
        with seller_scope(self.conn, self.seller_id):
            rows = self.conn.execute(
                "INSERT INTO orders (seller_id, created_at, status, currency, subtotal_minor,"
                " total_minor, customer_email)"
                " SELECT %s, %s - (g / %s) * %s, 'PAID', 'USD', 100, 100, 'bulk@example.com'"
                " FROM generate_series(0, %s - 1) AS g"
                " RETURNING created_at, id",
                (self.seller_id, newest, per_moment, step, count),
            ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def order_event(
        self,
        order_id: uuid.UUID,
        created_at: datetime,
        *,
        event_type: str = "STATUS_CHANGED",
        from_status: str | None = None,
        to_status: str | None = None,
    ) -> uuid.UUID:
        return self.insert(
            "order_events",
            order_id=order_id,
            created_at=created_at,
            event_type=event_type,
            from_status=from_status,
            to_status=to_status,
        )
