"""`pixecom webhooks failed`: the operator's list of deferred and failed deliveries,
attributed or not (issue 12 item 6), against the test database."""

from __future__ import annotations

import uuid

import psycopg

from pixecom_core.testing.databases import TestDatabase
from tests.cli.test_jobs_command import RunPixecom, env_for
from tests.db.tenant_rows import insert_seller, seller_scope


def test_failed_and_deferred_deliveries_are_listed_page_by_page(
    run_pixecom: RunPixecom, database: TestDatabase
) -> None:
    seller = uuid.uuid4()
    tag = uuid.uuid4().hex[:10]
    with psycopg.connect(database.owner_dsn, autocommit=True) as conn:
        insert_seller(conn, seller)
        ids: list[int] = []
        for status, owner, error in (
            ("FAILED", None, "KeyError: 'data'\nparser line"),
            ("PROCESSED", None, None),  # done: not listed
            ("DEFERRED", seller, "no order is known for fakepay payment 'fp_1'; will retry"),
            ("FAILED", seller, "ConnectionError: pool"),
        ):
            with seller_scope(conn, owner if owner is not None else None):
                conn.execute("SELECT set_config('pixecom.unscoped_rows', 'on', true)")
                row = conn.execute(
                    "INSERT INTO webhook_inbox (gateway, event_id, event_type, body, headers,"
                    " status, attempts, last_error, seller_id) VALUES ('fakepay', %s,"
                    " 'charge.refunded', 'shopper@example.com', '{\"stripe-signature\": \"s\"}',"
                    " %s, 2, %s, %s) RETURNING id",
                    (f"evt_{tag}_{len(ids)}", status, error, owner),
                ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
    env = env_for(database)

    first = run_pixecom("webhooks", "failed", "--after", str(ids[0] - 1), "--limit", "2", env=env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    listed = [int(line.split("\t")[0]) for line in lines if line[:1].isdigit()]
    assert listed == [ids[0], ids[2]]  # oldest first; the processed one is not a problem
    unattributed = lines[0].split("\t")
    assert unattributed[3:6] == ["charge.refunded", f"evt_{tag}_0", "FAILED"]
    assert "seller=unattributed" in lines[0] and "KeyError: 'data' parser line" in lines[0]
    assert f"seller={seller}" in lines[1] and "DEFERRED" in lines[1]
    assert lines[-1] == f"next page: pixecom webhooks failed --after {ids[2]}"
    # Bodies and headers carry shoppers' data: never printed.
    assert "shopper@example.com" not in first.stdout and "stripe-signature" not in first.stdout

    second = run_pixecom("webhooks", "failed", "--after", str(ids[2]), "--limit", "2", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[0].startswith(f"{ids[3]}\t")

    nothing = run_pixecom("webhooks", "failed", "--after", str(ids[3] + 10**9), env=env)
    assert nothing.returncode == 0 and "no deferred or failed" in nothing.stdout
    too_many = run_pixecom("webhooks", "failed", "--limit", "5000", env=env)
    assert too_many.returncode == 2  # bounded page (SCALE-4)
