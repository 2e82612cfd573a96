"""Raw ingest: stream insight rows into ``ad_stats_raw`` with COPY, deduplicated.

``COPY FROM`` is refused for a role under row-level security (PostgreSQL's rule), so rows are
COPYed into a temporary staging table (no RLS, emptied at commit) and moved with one
``INSERT … SELECT … ON CONFLICT DO NOTHING`` inside the seller's scope: the policy's WITH
CHECK still sees every row, and the dedup key ``uq_ad_stats_raw_fetch`` (STORE-2) makes a
retried fetch — same entity, day and ``fetched_at`` — a no-op. The seller id comes from the
scope, never from the rows.

``ad_stats_raw`` has no surrogate id and no foreign key to ``sellers`` (revision 0020: each
cost the move a share of its CPU per row, issue 18 item 7). The move checks the seller once
per batch instead: it locks the seller's row ``FOR KEY SHARE`` — the foreign-key check's
lock — and joins it, so a batch for a seller that does not exist stores nothing and raises
:class:`UnknownSellerError`; the trigger on ``sellers`` refuses deleting a seller that still
has raw rows.

The staging COPY is binary: psycopg's C extension packs each row and the server skips
parsing text, which halves the cost of the stream (SCALE-10). The staging table holds the
currency as ``text`` (binary COPY has no dumper for ``char(n)``); the move casts it.

The move first tries a plain ``INSERT`` under a savepoint: a sync's fetch carries a new
``fetched_at``, so it almost never meets a stored row, and ``ON CONFLICT`` costs a probe of
the dedup key and a speculative insertion for every row (about a third of the move's
CPU in ``bench.stats_pipeline``, issue 18 item 7). When a row is already stored — a retried
fetch, a batch repeating a row, a concurrent writer of the same fetch — the unique key
refuses the plain insert, the savepoint is rolled back and the ``ON CONFLICT DO NOTHING``
move runs: what is stored is the same either way (STORE-2), only a retried batch costs
more. The savepoint and the insert travel as one simple query, as do the release and the
emptying of the staging table: no round trip is added. Each call opens one subtransaction;
the sync writes one batch per transaction (:mod:`pixecom_core.stats.sync`), far below the
64 a backend keeps in shared memory before other sessions pay for looking them up.

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
from typing import Any

import psycopg
from psycopg import errors, sql

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

_SAVEPOINT = "pixecom_raw_ingest"
#: ``ad_stats_raw`` has no foreign key to ``sellers`` (revision 0020): the move locks the
#: seller's row as a foreign-key check would, once for the batch, and joins it, so a seller
#: that does not exist gets no row (the caller is told, see ``_move``). The lock makes a
#: concurrent ``DELETE`` of the seller wait for this transaction, whose rows its trigger
#: then sees.
_INSERT = f"""
WITH seller AS MATERIALIZED (SELECT FROM sellers WHERE id = {{seller_id}} FOR KEY SHARE)
INSERT INTO ad_stats_raw (seller_id, ad_account_id, {", ".join(_COLUMNS)})
SELECT {{seller_id}}, {{ad_account_id}}, {", ".join(_COLUMNS)} FROM seller, {_STAGING}
"""
#: The common case: no staged row is stored yet (one simple query, two statements).
_SAVEPOINT_AND_INSERT = f"SAVEPOINT {_SAVEPOINT};{_INSERT}"
#: After a refused plain insert: skip the rows already stored (STORE-2's dedup key).
_MOVE_DEDUPLICATED = f"{_INSERT}ON CONFLICT ON CONSTRAINT uq_ad_stats_raw_fetch DO NOTHING"
_RELEASE_AND_EMPTY = f"RELEASE SAVEPOINT {_SAVEPOINT}; DELETE FROM {_STAGING}"


class UnknownSellerError(LookupError):
    """The scope's seller does not exist, so no raw row was stored for it.

    ``ad_stats_raw`` keeps no foreign key to ``sellers`` (revision 0020); the ingest checks
    the seller once per batch instead. Open the scope for an existing seller.
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

    :raises UnknownSellerError: the scope's seller does not exist (nothing was stored).
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
        inserted = await _move(cursor, scope.seller_id, ad_account_id)
        if inserted == 0 and received > 0 and not await _seller_exists(cursor, scope.seller_id):
            raise UnknownSellerError(f"seller {scope.seller_id} does not exist")
        # the staging table is emptied for a next batch in this transaction (a commit
        # empties it anyway)
        await cursor.execute(_RELEASE_AND_EMPTY)
    return IngestReport(rows_received=received, rows_inserted=max(inserted, 0))


async def _move(
    cursor: psycopg.AsyncCursor[Any], seller_id: uuid.UUID, ad_account_id: uuid.UUID | None
) -> int:
    """Move the staged rows into ``ad_stats_raw``; answer how many were new.

    The ids are sent as literals (a simple query carries no parameters); both are
    ``uuid.UUID`` values or ``None``, quoted by psycopg.
    """
    ids = {"seller_id": sql.Literal(seller_id), "ad_account_id": sql.Literal(ad_account_id)}
    try:
        await cursor.execute(sql.SQL(_SAVEPOINT_AND_INSERT).format(**ids))
    except errors.UniqueViolation:
        await cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        await cursor.execute(sql.SQL(_MOVE_DEDUPLICATED).format(**ids))
        return cursor.rowcount
    # the first result is the SAVEPOINT's; the insert's row count is the second's
    cursor.nextset()
    return cursor.rowcount


async def _seller_exists(cursor: psycopg.AsyncCursor[Any], seller_id: uuid.UUID) -> bool:
    """Whether the seller's row exists: asked only when a batch stored no row at all."""
    await cursor.execute("SELECT EXISTS (SELECT FROM sellers WHERE id = %s)", (seller_id,))
    row = await cursor.fetchone()
    return bool(row and row[0])
