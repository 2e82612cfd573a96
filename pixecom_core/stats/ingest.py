"""Raw ingest: stream insight rows into ``ad_stats_raw`` with COPY, deduplicated.

``COPY FROM`` is refused for a role under row-level security (PostgreSQL's rule), so rows are
COPYed into a temporary staging table (no RLS, emptied at commit) and moved with one
``INSERT … SELECT … ON CONFLICT DO NOTHING`` inside the seller's scope: the policy's WITH
CHECK still sees every row, and the dedup key ``uq_ad_stats_raw_fetch`` (STORE-2) makes a
retried fetch — same entity, day and ``fetched_at`` — a no-op. The seller id comes from the
scope, never from the rows.

The staging COPY is binary: psycopg's C extension packs each row and the server skips
parsing text, which halves the cost of the stream (SCALE-10). The staging table holds the
currency as ``text`` (binary COPY has no dumper for ``char(n)``); the move casts it.

The staging table lives as long as its connection (``ON COMMIT DELETE ROWS``): creating
and dropping it in every transaction wrote the catalogs twice per batch, a tenth of
PostgreSQL's CPU per ad-account sync (issue 18 item 3). Through PgBouncer's transaction
pooling another client may find it on its server connection: empty, and only ever
written inside one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass

from pixecom_core.providers.ad_networks import InsightRow
from pixecom_core.tenancy import SellerScope

#: The staging table's name. It outlives a deploy on a pooled server connection: a change
#: of its columns must come with a new name.
_STAGING = "pixecom_raw_staging"
_COLUMNS = (
    "network",
    "entity_type",
    "entity_id",
    "date_start",
    "date_stop",
    "fetched_at",
    "spend_micros",
    "impressions",
    "clicks",
    "purchases",
    "purchase_value_micros",
    "currency",
)

_CREATE_STAGING = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} (
    network text NOT NULL,
    entity_type text NOT NULL,
    entity_id text NOT NULL,
    date_start date NOT NULL,
    date_stop date NOT NULL,
    fetched_at timestamptz NOT NULL,
    spend_micros bigint NOT NULL,
    impressions bigint NOT NULL,
    clicks bigint NOT NULL,
    purchases bigint NOT NULL,
    purchase_value_micros bigint NOT NULL,
    currency text NOT NULL
) ON COMMIT DELETE ROWS
"""

_COPY = f"COPY {_STAGING} ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
#: The staging columns' types in ``_COLUMNS`` order: binary COPY sends no type names.
_COPY_TYPES = (
    *("text", "text", "text", "date", "date", "timestamptz"),
    *("int8", "int8", "int8", "int8", "int8", "text"),
)

_MOVE = f"""
INSERT INTO ad_stats_raw (seller_id, ad_account_id, {", ".join(_COLUMNS)})
SELECT %s, %s, {", ".join(_COLUMNS)} FROM {_STAGING}
ON CONFLICT ON CONSTRAINT uq_ad_stats_raw_fetch DO NOTHING
"""


@dataclass(frozen=True)
class IngestReport:
    """Rows received from the provider, and rows new to ``ad_stats_raw``."""

    rows_received: int
    rows_inserted: int

    @property
    def duplicates(self) -> int:
        """Rows that were already stored (a retried fetch)."""
        return self.rows_received - self.rows_inserted


def _record(row: InsightRow) -> tuple[object, ...]:
    return (
        row.network,
        row.entity_type.value,
        row.entity_id,
        row.date_start,
        row.date_stop,
        row.fetched_at,
        row.spend_micros,
        row.impressions,
        row.clicks,
        row.purchases,
        row.purchase_value_micros,
        row.currency,
    )


async def ingest_raw(
    scope: SellerScope,
    rows: AsyncIterable[InsightRow] | Iterable[InsightRow],
    *,
    ad_account_id: uuid.UUID | None = None,
) -> IngestReport:
    """COPY ``rows`` into the scope's seller's ``ad_stats_raw``; duplicates are skipped.

    Runs inside the scope's transaction (the caller commits); ``rows`` may be an async
    generator straight from the provider, consumed as it yields. ``ad_account_id`` names
    the account whose fetch produced the rows; only rows tied to an account can later be
    zeroed by a complete re-fetch that no longer reports them
    (:func:`pixecom_core.stats.aggregate.zero_unreported`).
    """
    conn = await scope.psycopg_connection()
    received = 0
    async with conn.cursor() as cursor:
        await cursor.execute(_CREATE_STAGING)
        async with cursor.copy(_COPY) as copy:
            copy.set_types(_COPY_TYPES)
            if isinstance(rows, AsyncIterable):
                async for row in rows:
                    await copy.write_row(_record(row))
                    received += 1
            else:
                for row in rows:
                    await copy.write_row(_record(row))
                    received += 1
        await cursor.execute(_MOVE, (scope.seller_id, ad_account_id))
        inserted = cursor.rowcount
        # emptied for a next batch in this transaction; a commit empties it anyway
        await cursor.execute(f"DELETE FROM {_STAGING}")
    return IngestReport(rows_received=received, rows_inserted=max(inserted, 0))
