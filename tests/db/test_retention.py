"""Issue 18 item 5, "nothing grows without bound": the webhook inbox by month with its
retention, replay protection across months, and job records pruned by age.

Every test runs on a database of its own (``scratch_database``: maintenance drops
partitions) and names its own days: the clock is fixed, or every date is relative to the
day the test runs, so the outcome is the same on any day.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from pixecom_core.db import admin
from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.db.partitions import MaintenanceReport, add_months, maintain_partitions
from pixecom_core.db.retention import prune_job_records
from pixecom_core.ledger import Ledger, ProcessResult, WebhookInbox
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import PaymentEventKind
from pixecom_core.testing.databases import TestDatabase, provision_test_database
from reference_app.database import describe_maintenance
from tests.conftest import RestrictedOwnerDatabase
from tests.db.tenant_rows import Connection, insert_seller, seller_scope
from tests.ledger import fakepay
from tests.ledger.conftest import insert_order

RECEIVE = (
    "SELECT inbox_id, duplicate FROM pixecom_inbox_receive("
    "'fakepay', %s, 'fake.facts', '{}'::jsonb, 'body'::bytea, %s)"
)


@pytest.fixture
def owner(scratch_database: TestDatabase) -> Iterator[Connection]:
    """The schema owner. Afterwards every delivery the test left waiting is settled: an
    unsettled delivery holds its month (and later ones) back from retention."""
    with psycopg.connect(scratch_database.owner_dsn, autocommit=True) as conn:
        yield conn
        conn.execute("UPDATE webhook_inbox SET status = 'PROCESSED' WHERE status <> 'PROCESSED'")


@pytest.fixture
def app(scratch_database: TestDatabase) -> Iterator[Connection]:
    """The application role, which stores deliveries through the owner function only."""
    with psycopg.connect(scratch_database.app_dsn, autocommit=True) as conn:
        yield conn


def receive(app: Connection, event_id: str, at: datetime) -> tuple[int, bool]:
    row = app.execute(RECEIVE, (event_id, at)).fetchone()
    assert row is not None
    return int(row[0]), bool(row[1])


def home_of(owner: Connection, inbox_id: int) -> str:
    row = owner.execute(
        "SELECT tableoid::regclass::text FROM webhook_inbox WHERE id = %s", (inbox_id,)
    ).fetchone()
    assert row is not None, inbox_id
    return str(row[0])


def inbox_partitions(owner: Connection) -> set[str]:
    rows = owner.execute(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'webhook_inbox'::regclass"
    ).fetchall()
    return {str(name) for (name,) in rows}


def maintain(
    db: TestDatabase, today: date, *, inbox_retention_days: int = 180, months_ahead: int = 1
) -> MaintenanceReport:
    return maintain_partitions(
        db.owner_dsn,
        months_ahead=months_ahead,
        raw_retention_days=10_000,
        inbox_retention_days=inbox_retention_days,
        today=today,
    )


# -- partitions by month --------------------------------------------------------------


def test_each_month_has_its_partition_and_a_delivery_lands_in_its_month(
    scratch_database: TestDatabase, owner: Connection, app: Connection
) -> None:
    maintain_partitions(
        scratch_database.owner_dsn,
        months_ahead=2,
        raw_retention_days=10_000,
        inbox_retention_days=10_000,
        today=date(2041, 1, 10),
    )
    assert {"webhook_inbox_p204101", "webhook_inbox_p204102", "webhook_inbox_p204103"} <= (
        inbox_partitions(owner)
    )

    last_second = datetime(2041, 1, 31, 23, 59, 59, tzinfo=UTC)
    january, _ = receive(app, f"evt_{uuid.uuid4().hex}", last_second)
    february, _ = receive(app, f"evt_{uuid.uuid4().hex}", last_second + timedelta(seconds=1))
    # A month with no partition yet: the delivery waits in the default partition.
    far, _ = receive(app, f"evt_{uuid.uuid4().hex}", datetime(2041, 9, 2, tzinfo=UTC))

    assert home_of(owner, january) == "webhook_inbox_p204101"
    assert home_of(owner, february) == "webhook_inbox_p204102"
    assert home_of(owner, far) == "webhook_inbox_default"
    # Ids stay one sequence across the months (queued tasks name a delivery by its id).
    assert january < february < far


def test_the_app_role_cannot_read_an_inbox_partition_directly(
    owner: Connection, app: Connection
) -> None:
    for partition in sorted(inbox_partitions(owner)):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(f"SELECT 1 FROM {partition} LIMIT 1")


# -- replay protection across months ------------------------------------------------------


def test_a_replay_in_a_later_month_is_not_stored_twice(
    scratch_database: TestDatabase, owner: Connection, app: Connection
) -> None:
    maintain(scratch_database, date(2042, 3, 1))
    event = f"evt_{uuid.uuid4().hex}"
    first_at = datetime(2042, 3, 31, 23, 59, 59, tzinfo=UTC)

    first = receive(app, event, first_at)
    replay = receive(app, event, first_at + timedelta(seconds=2))
    much_later = receive(app, event, first_at + timedelta(days=100))

    assert first == (first[0], False)
    assert replay == (first[0], True)
    assert much_later == (first[0], True)
    rows = owner.execute(
        "SELECT tableoid::regclass::text FROM webhook_inbox WHERE event_id = %s", (event,)
    ).fetchall()
    assert rows == [("webhook_inbox_p204203",)]


def test_two_concurrent_deliveries_of_one_event_store_one_row(
    scratch_database: TestDatabase, owner: Connection
) -> None:
    event = f"evt_{uuid.uuid4().hex}"
    at = datetime(2042, 5, 31, 23, 59, 59, tzinfo=UTC)
    second_result: list[tuple[int, bool]] = []
    with psycopg.connect(scratch_database.app_dsn) as first:
        # The first delivery is stored but not committed: the second waits for its lock...
        first_id, first_duplicate = receive(first, event, at)
        second = threading.Thread(
            target=lambda: second_result.append(
                _receive_in_own_connection(
                    scratch_database.app_dsn, event, at + timedelta(seconds=2)
                )
            )
        )
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive(), "the second delivery did not wait for the first"
        first.commit()
    second.join(timeout=10.0)

    # ...then finds the committed row, in the earlier month, and stores nothing.
    assert (first_id, first_duplicate) == (first_id, False)
    assert second_result == [(first_id, True)]
    count = owner.execute(
        "SELECT count(*) FROM webhook_inbox WHERE event_id = %s", (event,)
    ).fetchone()
    assert count == (1,)


def _receive_in_own_connection(dsn: str, event: str, at: datetime) -> tuple[int, bool]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return receive(conn, event, at)


def _ledger_rows(
    owner: Connection, seller: uuid.UUID, order_id: uuid.UUID
) -> list[tuple[object, ...]]:
    with seller_scope(owner, seller):
        return owner.execute(
            "SELECT gateway_reference, event_type, amount_minor FROM payment_events"
            " WHERE order_id = %s ORDER BY recorded_at",
            (order_id,),
        ).fetchall()


async def test_a_replay_after_its_first_month_was_dropped_records_no_money_twice(
    scratch_database: TestDatabase, owner: Connection
) -> None:
    settings = scratch_database.settings
    engine = create_engine(settings, role="app")
    try:
        sessions = create_sessionmaker(engine)
        registry = ProviderRegistry(
            create_plugin_manager(load_entry_points=False, plugins=[fakepay])
        )
        inbox = WebhookInbox(sessions, settings, registry, Ledger(sessions, settings))
        seller = uuid.uuid4()
        insert_seller(owner, seller)
        order = insert_order(owner, seller, total_minor=10_000)
        event = f"evt_{uuid.uuid4().hex}"
        body, headers = fakepay.delivery(
            [fakepay.fact(order.payment, "ch_1", PaymentEventKind.CAPTURED, 10_000)],
            event_id=event,
        )
        first = await inbox.receive("fakepay", body=body, headers=headers)
        assert await inbox.process(first.inbox_id) is ProcessResult.PROCESSED
        recorded = _ledger_rows(owner, seller, order.order_id)
        assert recorded == [("ch_1", "CAPTURED", 10_000)]

        # The first delivery arrived a year ago, in a month of its own.
        today = datetime.now(UTC).date()
        a_year_ago = datetime.combine(add_months(today, -12), datetime.min.time(), UTC)
        owner.execute(
            "UPDATE webhook_inbox SET received_at = %s WHERE id = %s",
            (a_year_ago + timedelta(days=3), first.inbox_id),
        )
        old_month = f"webhook_inbox_p{a_year_ago:%Y%m}"

        # While its month is kept, the replay is the same delivery: nothing is stored.
        replay = await inbox.receive("fakepay", body=body, headers=headers)
        assert (replay.inbox_id, replay.duplicate) == (first.inbox_id, True)
        assert await inbox.process(replay.inbox_id) is ProcessResult.SKIPPED
        assert _ledger_rows(owner, seller, order.order_id) == recorded

        report = maintain(scratch_database, today)
        assert old_month in report.dropped

        # Past the inbox's retention the replay is stored again, and the ledger's own key
        # (the gateway's money object and kind) records its fact once.
        late = await inbox.receive("fakepay", body=body, headers=headers)
        assert late.duplicate is False and late.inbox_id != first.inbox_id
        assert await inbox.process(late.inbox_id) is ProcessResult.PROCESSED
        assert _ledger_rows(owner, seller, order.order_id) == recorded
        with seller_scope(owner, seller):
            status = owner.execute(
                "SELECT status FROM orders WHERE id = %s", (order.order_id,)
            ).fetchone()
            paid_events = owner.execute(
                "SELECT count(*) FROM order_events WHERE order_id = %s AND to_status = 'PAID'",
                (order.order_id,),
            ).fetchone()
        assert status == ("PAID",)
        assert paid_events == (1,)
    finally:
        await engine.dispose()


# -- retention ------------------------------------------------------------------------------


def test_months_past_retention_are_dropped_younger_ones_kept_and_a_rerun_does_nothing(
    scratch_database: TestDatabase, owner: Connection, app: Connection
) -> None:
    today = date(2043, 12, 15)  # retention 180 days: the cutoff is 2043-06-18
    maintain(scratch_database, date(2043, 1, 1), inbox_retention_days=10_000)
    old, _ = receive(app, f"evt_{uuid.uuid4().hex}", datetime(2043, 5, 31, 23, tzinfo=UTC))
    young, _ = receive(app, f"evt_{uuid.uuid4().hex}", datetime(2043, 6, 1, 1, tzinfo=UTC))
    for inbox_id in (old, young):
        owner.execute("UPDATE webhook_inbox SET status = 'PROCESSED' WHERE id = %s", (inbox_id,))

    report = maintain(scratch_database, today)

    assert "webhook_inbox_p204305" in report.dropped
    assert "webhook_inbox_p204306" not in report.dropped
    remaining = inbox_partitions(owner)
    assert "webhook_inbox_p204305" not in remaining
    assert {"webhook_inbox_p204306", "webhook_inbox_default"} <= remaining
    ids = {row[0] for row in owner.execute("SELECT id FROM webhook_inbox").fetchall()}
    assert young in ids and old not in ids
    for name in remaining - {"webhook_inbox_default"}:  # no whole month before the cutoff
        assert add_months(datetime.strptime(name[-6:], "%Y%m").date(), 1) > date(2043, 6, 18)

    again = maintain(scratch_database, today)
    assert not again.changed
    assert inbox_partitions(owner) == remaining


def test_a_month_holding_a_parked_delivery_is_kept_until_it_is_settled(
    scratch_database: TestDatabase, owner: Connection, app: Connection
) -> None:
    today = date(2045, 12, 15)
    maintain(scratch_database, date(2045, 1, 1), inbox_retention_days=10_000, months_ahead=5)
    parked, _ = receive(app, f"evt_{uuid.uuid4().hex}", datetime(2045, 3, 10, tzinfo=UTC))
    earlier, _ = receive(app, f"evt_{uuid.uuid4().hex}", datetime(2045, 2, 10, tzinfo=UTC))
    owner.execute("UPDATE webhook_inbox SET status = 'PROCESSED' WHERE id = %s", (earlier,))
    owner.execute(
        "UPDATE webhook_inbox SET status = 'FAILED', last_error = 'no order' WHERE id = %s",
        (parked,),
    )
    try:
        report = maintain(scratch_database, today)

        # An operator must still see the parked delivery (`pixecom webhooks failed`):
        # its month and the later ones past retention stay, and say so.
        assert "webhook_inbox_p204502" in report.dropped
        assert report.held_back == (
            "webhook_inbox_p204503",
            "webhook_inbox_p204504",
            "webhook_inbox_p204505",
        )
        assert home_of(owner, parked) == "webhook_inbox_p204503"
        # `pixecom db maintain` says so, on this run and on the next ones.
        assert (
            "kept 3 inbox partitions past retention: a delivery in it or later still waits"
            " or is parked (`pixecom webhooks failed`)"
        ) in describe_maintenance(report)
        unchanged = maintain(scratch_database, today)
        assert describe_maintenance(unchanged) == [
            "nothing to do: every partition needed already exists",
            "kept 3 inbox partitions past retention: a delivery in it or later still waits"
            " or is parked (`pixecom webhooks failed`)",
            "  webhook_inbox_p204503",
            "  webhook_inbox_p204504",
            "  webhook_inbox_p204505",
        ]
    finally:
        owner.execute("UPDATE webhook_inbox SET status = 'PROCESSED' WHERE id = %s", (parked,))

    settled = maintain(scratch_database, today)
    assert set(settled.dropped) >= {
        "webhook_inbox_p204503",
        "webhook_inbox_p204504",
        "webhook_inbox_p204505",
    }
    assert settled.held_back == ()


# -- dead letters and sync runs ----------------------------------------------------------------


NOW = datetime(2044, 6, 15, 12, tzinfo=UTC)


def _dead_letter(
    owner: Connection, seller: uuid.UUID | None, failed_days_ago: int, resolved_days_ago: int | None
) -> int:
    row = owner.execute(
        "INSERT INTO dead_letters (task_name, task_id, seller_id, error, attempts, failed_at,"
        " resolved_at) VALUES ('pixecom.sync_seller', %s, %s, 'boom', 5, %s, %s) RETURNING id",
        (
            uuid.uuid4().hex,
            seller,
            NOW - timedelta(days=failed_days_ago),
            None if resolved_days_ago is None else NOW - timedelta(days=resolved_days_ago),
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _sync_run(owner: Connection, seller: uuid.UUID, started_days_ago: int, *, done: bool) -> int:
    started = NOW - timedelta(days=started_days_ago)
    row = owner.execute(
        "INSERT INTO sync_runs (seller_id, task_id, days_back, worker, started_at, finished_at,"
        " outcome) VALUES (%s, %s, 3, 'host:1', %s, %s, %s) RETURNING id",
        (seller, uuid.uuid4().hex, started, started if done else None, "synced" if done else None),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_old_resolved_dead_letters_and_old_sync_runs_go_open_and_recent_ones_stay(
    scratch_database: TestDatabase, owner: Connection
) -> None:
    seller = uuid.uuid4()
    insert_seller(owner, seller)
    owner.execute("DELETE FROM dead_letters")
    owner.execute("DELETE FROM sync_runs")
    open_and_old = _dead_letter(owner, seller, failed_days_ago=400, resolved_days_ago=None)
    resolved_long_ago = [
        _dead_letter(owner, seller, failed_days_ago=90, resolved_days_ago=31),
        _dead_letter(owner, None, failed_days_ago=60, resolved_days_ago=45),
        _dead_letter(owner, seller, failed_days_ago=50, resolved_days_ago=40),
    ]
    resolved_lately = _dead_letter(owner, None, failed_days_ago=60, resolved_days_ago=29)
    old_runs = [
        _sync_run(owner, seller, 15, done=True),
        _sync_run(owner, seller, 30, done=False),  # cut short by a dead worker, long ago
    ]
    recent_run = _sync_run(owner, seller, 13, done=True)

    report = prune_job_records(
        scratch_database.owner_dsn,
        dead_letter_retention_days=30,
        sync_run_retention_days=14,
        now=NOW,
        batch_size=2,  # several batches
    )

    assert (report.dead_letters, report.sync_runs) == (len(resolved_long_ago), len(old_runs))
    letters = {row[0] for row in owner.execute("SELECT id FROM dead_letters").fetchall()}
    assert letters == {open_and_old, resolved_lately}
    runs = {row[0] for row in owner.execute("SELECT id FROM sync_runs").fetchall()}
    assert runs == {recent_run}

    again = prune_job_records(
        scratch_database.owner_dsn,
        dead_letter_retention_days=30,
        sync_run_retention_days=14,
        now=NOW,
    )
    assert not again.changed


def test_pruning_reaches_every_sellers_rows_for_an_owner_under_forced_rls(
    restricted_owner_database: RestrictedOwnerDatabase,
) -> None:
    with psycopg.connect(restricted_owner_database.owner_dsn, autocommit=True) as owner:
        seller = uuid.uuid4()
        insert_seller(owner, seller)
        with owner.transaction():
            owner.execute("SELECT set_config('pixecom.unscoped_rows', 'on', true)")
            _dead_letter(owner, None, failed_days_ago=90, resolved_days_ago=60)
            _dead_letter(owner, seller, failed_days_ago=90, resolved_days_ago=60)
            _sync_run(owner, seller, 20, done=True)
        # FORCE applies to this owner: outside the owner functions it sees no row.
        assert owner.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)

        report = prune_job_records(
            restricted_owner_database.owner_dsn,
            dead_letter_retention_days=30,
            sync_run_retention_days=14,
            now=NOW,
        )

        assert (report.dead_letters, report.sync_runs) == (2, 1)
        with owner.transaction():
            owner.execute("SELECT set_config('pixecom.unscoped_rows', 'on', true)")
            left = owner.execute(
                "SELECT (SELECT count(*) FROM dead_letters), (SELECT count(*) FROM sync_runs)"
            ).fetchone()
        assert left == (0, 0)


# -- the migration keeps every delivery, both ways ----------------------------------------


def _inbox_rows(conn: Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT id, gateway, event_id, status, received_at, seller_id FROM webhook_inbox"
        " ORDER BY id"
    ).fetchall()


def _relkind(conn: Connection) -> object:
    row = conn.execute("SELECT relkind FROM pg_class WHERE oid = 'webhook_inbox'::regclass")
    found = row.fetchone()
    assert found is not None
    return found[0]


def test_0019_keeps_every_delivery_and_its_id_down_and_up(
    servers: tuple[str, str], database: TestDatabase
) -> None:
    role = database.settings.app_role
    with provision_test_database(*servers, app_role=role) as db:
        with (
            psycopg.connect(db.owner_dsn, autocommit=True) as owner,
            psycopg.connect(db.app_dsn, autocommit=True) as app,
        ):
            seller = uuid.uuid4()
            insert_seller(owner, seller)
            now = datetime.now(UTC)
            ids = [
                receive(app, "evt_a", now - timedelta(days=40)),
                receive(app, "evt_b", now),
                receive(app, "evt_c", now + timedelta(days=400)),  # the default partition
            ]
            owner.execute(
                "UPDATE webhook_inbox SET status = 'FAILED', seller_id = %s WHERE id = %s",
                (seller, ids[1][0]),
            )
            before = _inbox_rows(owner)
            assert _relkind(owner) == "p"

            admin.downgrade(db.owner_dsn, app_role=role, revision="0018_conversions")
            assert _relkind(owner) == "r"
            assert _inbox_rows(owner) == before
            # The unique key is back, and ids continue after the highest one.
            assert receive(app, "evt_b", now) == (ids[1][0], True)
            fourth = receive(app, "evt_d", now)
            assert fourth[0] > ids[2][0] and fourth[1] is False
            kept = _inbox_rows(owner)

            admin.upgrade(db.owner_dsn, app_role=role)
            assert _relkind(owner) == "p"
            assert _inbox_rows(owner) == kept
            assert receive(app, "evt_a", now) == (ids[0][0], True)
            assert receive(app, "evt_e", now)[0] > fourth[0]
            # The app role still reads only its seller's attributed rows, in its scope.
            with seller_scope(app, seller):
                visible = app.execute("SELECT id FROM webhook_inbox").fetchall()
            assert visible == [(ids[1][0],)]
            assert app.execute("SELECT count(*) FROM webhook_inbox").fetchone() == (0,)
