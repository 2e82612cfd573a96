"""The inbox, dead letters and sync runs under forced row-level security (issue 12 item 3,
migration 0010): the app role reaches rows of no seller only through the owner functions
that each handle one delivery, and the operator's listings are the owner's alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import errors

from pixecom_core.testing.databases import TestDatabase
from tests.conftest import RestrictedOwnerDatabase
from tests.db.tenant_rows import Connection, TwoSellers, insert_unattributed_rows, seller_scope

OPERATOR_CALLS = (
    "SELECT * FROM pixecom_inbox_problems(NULL, 10)",
    "SELECT * FROM pixecom_dead_letters(true, NULL, 10)",
    "SELECT pixecom_resolve_dead_letter(1)",
)


def test_the_app_role_writes_the_inbox_only_through_its_functions(
    app_conn: Connection, two_sellers: TwoSellers
) -> None:
    for statement in (
        "INSERT INTO webhook_inbox (gateway, event_id, body) VALUES ('fakepay', 'evt_x', 'b')",
        "UPDATE webhook_inbox SET status = 'PROCESSED'",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            with seller_scope(app_conn, two_sellers.a):
                app_conn.execute(statement)


@pytest.mark.parametrize("call", OPERATOR_CALLS)
def test_the_app_role_cannot_call_the_operators_listings(app_conn: Connection, call: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        with seller_scope(app_conn, None):
            app_conn.execute(call)


def test_the_switch_the_owner_functions_use_opens_nothing_to_the_app_role(
    app_conn: Connection, owner_conn: Connection, two_sellers: TwoSellers
) -> None:
    insert_unattributed_rows(owner_conn)
    with seller_scope(app_conn, two_sellers.a):
        # The policy that admits the functions' queries names the owner role only.
        app_conn.execute("SELECT set_config('pixecom.unscoped_rows', 'on', true)")
        for table in ("webhook_inbox", "dead_letters", "sync_runs"):
            others = app_conn.execute(
                f"SELECT count(*) FROM {table} WHERE seller_id IS DISTINCT FROM %s",
                (two_sellers.a,),
            ).fetchone()
            assert others == (0,), table
    # Nor can a scope write a row of no seller, or of another seller.
    for seller in (None, two_sellers.b):
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            with seller_scope(app_conn, two_sellers.a):
                app_conn.execute(
                    "INSERT INTO dead_letters (task_name, task_id, seller_id, error, attempts)"
                    " VALUES ('t', %s, %s, 'e', 1)",
                    (uuid.uuid4().hex, seller),
                )


def test_inbox_functions_work_for_an_owner_under_forced_rls(
    restricted_owner_database: RestrictedOwnerDatabase,
) -> None:
    """On managed PostgreSQL the owner is no superuser: FORCE ROW LEVEL SECURITY applies
    to it, and only the functions' switch lets their one statement through."""
    db = restricted_owner_database
    received_at = datetime.now(UTC) - timedelta(minutes=1)
    with psycopg.connect(db.app_dsn, autocommit=True) as app:
        receive = (
            "SELECT inbox_id, duplicate FROM pixecom_inbox_receive('fakepay', 'evt_1',"
            " 'charge.refunded', '{}'::jsonb, 'body'::bytea, %s)"
        )
        first = app.execute(receive, (received_at,)).fetchone()
        again = app.execute(receive, (received_at,)).fetchone()
        assert first is not None and first[1] is False and again == (first[0], True)
        inbox_id = first[0]
        assert app.execute("SELECT count(*) FROM webhook_inbox").fetchone() == (0,)
        assert app.execute("SELECT * FROM pixecom_inbox_due(0, 10)").fetchall() == [(inbox_id,)]
        with app.transaction():
            claimed = app.execute(
                "SELECT inbox_id, body FROM pixecom_inbox_claim(%s)", (inbox_id,)
            ).fetchone()
            assert claimed == (inbox_id, b"body")
            assert app.execute(
                "SELECT pixecom_inbox_retry_later(%s, 'FAILED', 1, 'boom', now(), NULL)",
                (inbox_id,),
            ).fetchone() == (True,)
        # Parked: no longer claimable, due or settable by the app role.
        assert app.execute("SELECT * FROM pixecom_inbox_claim(%s)", (inbox_id,)).fetchall() == []
        assert app.execute("SELECT * FROM pixecom_inbox_due(0, 10)").fetchall() == []
        assert app.execute("SELECT pixecom_inbox_processed(%s, NULL)", (inbox_id,)).fetchone() == (
            False,
        )
        states = {
            status: count
            for status, count, _ in app.execute("SELECT * FROM pixecom_inbox_states()")
        }
        assert states["FAILED"] == 1 and states.get("RECEIVED", 0) == 0
        with pytest.raises(errors.InvalidParameterValue):
            app.execute(
                "SELECT pixecom_inbox_retry_later(%s, 'PROCESSED', 1, '', now(), NULL)", (inbox_id,)
            )
    with psycopg.connect(db.owner_dsn, autocommit=True) as owner:
        # The owner's own connection stays under FORCE RLS; its listing function reads.
        assert owner.execute("SELECT count(*) FROM webhook_inbox").fetchone() == (0,)
        listed = owner.execute(
            "SELECT inbox_id, status, seller_id, last_error FROM pixecom_inbox_problems(NULL, 10)"
        ).fetchall()
        assert listed == [(inbox_id, "FAILED", None, "boom")]
        assert owner.execute(
            "SELECT current_setting('pixecom.unscoped_rows', true)"
        ).fetchone() in (
            ("off",),
            (None,),
            ("",),
        )


def test_the_sweeper_page_is_bounded(database: TestDatabase) -> None:
    with psycopg.connect(database.app_dsn, autocommit=True) as app:
        rows = app.execute("SELECT count(*) FROM pixecom_inbox_due(0, 1000000)").fetchone()
    assert rows is not None and rows[0] <= 5000
