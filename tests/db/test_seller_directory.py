"""The seller directory lists seller ids, pages bounded, and opens nothing else."""

from __future__ import annotations

import uuid

import psycopg

from tests.conftest import RestrictedOwnerDatabase
from tests.db.tenant_rows import insert_seller, insert_seller_rows


def test_directory_pages_every_seller_for_the_app_role(
    restricted_owner_database: RestrictedOwnerDatabase,
) -> None:
    db = restricted_owner_database
    with psycopg.connect(db.owner_dsn, autocommit=True) as owner:
        sellers = sorted(uuid.uuid4() for _ in range(5))
        for seller_id in sellers:
            insert_seller(owner, seller_id)

    with psycopg.connect(db.app_dsn, autocommit=True) as app:
        first = app.execute("SELECT seller_id FROM pixecom_seller_directory(NULL, 2)").fetchall()
        rest = app.execute(
            "SELECT seller_id FROM pixecom_seller_directory(%s, 100)", (first[-1][0],)
        ).fetchall()
        # The page size is capped whatever the caller asks.
        huge = app.execute("SELECT count(*) FROM pixecom_seller_directory(NULL, 1000000)")
        assert huge.fetchone() == (5,)
        # Outside the function the app role still sees no seller.
        assert app.execute("SELECT count(*) FROM sellers").fetchone() == (0,)

    assert [row[0] for row in first + rest] == sellers


def test_directory_opens_no_seller_data_and_leaves_no_setting_behind(
    restricted_owner_database: RestrictedOwnerDatabase,
) -> None:
    db = restricted_owner_database
    seller_id = uuid.uuid4()
    with psycopg.connect(db.owner_dsn, autocommit=True) as owner:
        insert_seller_rows(owner, seller_id)

    with psycopg.connect(db.owner_dsn) as owner, owner.transaction():
        owner.execute("SELECT * FROM pixecom_seller_directory(NULL, 10)").fetchall()
        # Same transaction, after the call: the owner is back under FORCE RLS.
        assert owner.execute("SELECT count(*) FROM sellers").fetchone() == (0,)
        assert owner.execute("SELECT count(*) FROM products").fetchone() == (0,)
        assert owner.execute(
            "SELECT current_setting('pixecom.seller_directory', true)"
        ).fetchone() == ("off",)
