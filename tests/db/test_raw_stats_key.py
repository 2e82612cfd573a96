"""``ad_stats_raw`` is keyed by its dedup key, with no foreign key to ``sellers`` (revision
0020, issue 18 item 7), and loses no integrity for it: a seller with raw rows cannot be
deleted, whoever deletes it, and the downgrade restores the surrogate key and the foreign
key over stored rows."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import psycopg
import pytest
from psycopg import errors

from pixecom_core.db import admin
from pixecom_core.testing.databases import TestDatabase, provision_test_database
from tests.conftest import RestrictedOwnerDatabase
from tests.db.tenant_rows import Connection, insert_seller, raw_stats_values, seller_scope

DAY = datetime.now(UTC).date()
FAR_DAY = date(2099, 1, 15)


def _insert_raw(conn: Connection, seller: uuid.UUID, day: date, entity: str) -> None:
    values = {"seller_id": seller, **raw_stats_values(day, entity_id=entity)}
    conn.execute(
        f"INSERT INTO ad_stats_raw ({', '.join(values)})"
        f" VALUES ({', '.join(['%s'] * len(values))})",
        list(values.values()),
    )


def _seller_with_raw_rows(owner: Connection) -> uuid.UUID:
    """A seller with a raw row in a monthly partition and one in the default partition."""
    seller = uuid.uuid4()
    insert_seller(owner, seller)
    with seller_scope(owner, seller):
        _insert_raw(owner, seller, DAY, "ad_1")
        _insert_raw(owner, seller, FAR_DAY, "ad_1")
    return seller


def _seller_exists(owner: Connection, seller: uuid.UUID) -> bool:
    with seller_scope(owner, seller):
        row = owner.execute("SELECT count(*) FROM sellers WHERE id = %s", (seller,)).fetchone()
    return row == (1,)


def _constraints(conn: Connection) -> dict[str, str]:
    rows = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'ad_stats_raw'::regclass AND contype IN ('p', 'u', 'f')"
    ).fetchall()
    return dict(rows)


def _columns(conn: Connection) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = 'ad_stats_raw'"
    ).fetchall()
    return [name for (name,) in rows]


def test_the_dedup_key_is_the_tables_only_key(owner_conn: Connection) -> None:
    assert "id" not in _columns(owner_conn)
    assert _constraints(owner_conn) == {
        "uq_ad_stats_raw_fetch": "UNIQUE (seller_id, network, entity_type, entity_id,"
        " date_start, date_stop, fetched_at)"
    }


def test_deleting_a_seller_with_raw_rows_is_refused(owner_conn: Connection) -> None:
    seller = _seller_with_raw_rows(owner_conn)

    # unbound (the superuser owner sees every seller) and bound to the seller alike
    for bound in (None, seller):
        with pytest.raises(errors.ForeignKeyViolation, match=f"seller {seller} still has raw"):
            with seller_scope(owner_conn, bound):
                owner_conn.execute("DELETE FROM sellers WHERE id = %s", (seller,))
    assert _seller_exists(owner_conn, seller)


def test_a_seller_without_raw_rows_can_still_be_deleted(owner_conn: Connection) -> None:
    # the guard refuses only what the foreign key refused; another seller's rows don't count
    _seller_with_raw_rows(owner_conn)
    seller = uuid.uuid4()
    insert_seller(owner_conn, seller)
    with seller_scope(owner_conn, seller):
        deleted = owner_conn.execute("DELETE FROM sellers WHERE id = %s", (seller,)).rowcount
        binding = owner_conn.execute("SELECT current_setting('app.current_seller_id')").fetchone()
    assert deleted == 1
    assert not _seller_exists(owner_conn, seller)
    # the guard's own binding to the deleted seller ends with it
    assert binding == (str(seller),)


def test_an_owner_under_forced_rls_cannot_delete_a_seller_with_raw_rows(
    restricted_owner_database: RestrictedOwnerDatabase,
) -> None:
    with psycopg.connect(restricted_owner_database.owner_dsn, autocommit=True) as owner:
        seller = _seller_with_raw_rows(owner)
        with pytest.raises(errors.ForeignKeyViolation, match="still has raw"):
            with seller_scope(owner, seller):
                owner.execute("DELETE FROM sellers WHERE id = %s", (seller,))
        assert _seller_exists(owner, seller)


def test_the_downgrade_numbers_stored_rows_and_restores_both_keys(
    servers: tuple[str, str], database: TestDatabase
) -> None:
    role = database.settings.app_role
    with provision_test_database(*servers, app_role=role) as scratch:
        with psycopg.connect(scratch.owner_dsn, autocommit=True) as owner:
            seller = _seller_with_raw_rows(owner)
        admin.downgrade(scratch.owner_dsn, app_role=role, revision="0019_bounded_storage")
        with psycopg.connect(scratch.owner_dsn, autocommit=True) as owner:
            assert set(_constraints(owner)) == {
                "pk_ad_stats_raw",
                "uq_ad_stats_raw_fetch",
                "fk_ad_stats_raw_seller_id_sellers",
            }
            with seller_scope(owner, seller):
                _insert_raw(owner, seller, DAY, "ad_2")
                ids = owner.execute(
                    "SELECT id FROM ad_stats_raw WHERE seller_id = %s ORDER BY id", (seller,)
                ).fetchall()
            # the stored rows were numbered, and the identity continues after them
            assert ids == [(1,), (2,), (3,)]
            with pytest.raises(errors.ForeignKeyViolation):
                with seller_scope(owner, (stranger := uuid.uuid4())):
                    _insert_raw(owner, stranger, DAY, "ad_1")
            forced = owner.execute(
                "SELECT relforcerowsecurity FROM pg_class WHERE relname = 'ad_stats_raw'"
            ).fetchone()
            assert forced == (True,)
        admin.upgrade(scratch.owner_dsn, app_role=role)
        with psycopg.connect(scratch.owner_dsn, autocommit=True) as owner:
            assert "id" not in _columns(owner)
            with seller_scope(owner, seller):
                count = owner.execute("SELECT count(*) FROM ad_stats_raw").fetchone()
            assert count == (3,)
