"""`pixecom fx backfill` and `pixecom fx set` against the test database and the ECB
plugin's sandbox (issue 16 item 1)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from datetime import date

import psycopg
import pytest

from pixecom_core.testing.databases import TestDatabase
from tests.cli.test_jobs_command import env_for
from tests.db.tenant_rows import insert_seller, seller_scope
from tests.stats.test_trustworthy_numbers import Ecb, ecb  # noqa: F401 (fixture)

RunPixecom = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.usefixtures("database")
def test_backfill_stores_every_final_day_and_says_what_it_did(
    run_pixecom: RunPixecom,
    database: TestDatabase,
    ecb: Ecb,  # noqa: F811
) -> None:
    env = {**env_for(database), "PIXECOM_ECB_BASE_URL": f"{ecb.url}/stats/eurofxref"}

    loaded = run_pixecom(
        "fx", "backfill", "--since", "2026-07-01", "--until", "2026-07-12", env=env
    )
    again = run_pixecom("fx", "backfill", "--since", "2026-07-01", "--until", "2026-07-12", env=env)
    reversed_range = run_pixecom(
        "fx", "backfill", "--since", "2026-07-12", "--until", "2026-07-01", env=env
    )

    assert loaded.returncode == 0, loaded.stderr
    # 2026-07-01 … 07-10 are eight TARGET days; the weekend of the 4th and 11th… carried.
    assert "ecb 2026-07-01..2026-07-12: 8 publication day(s), 4 carried" in loaded.stdout
    assert "stored through 2026-07-12" in loaded.stdout
    assert again.returncode == 0 and "0 row(s) changed" in again.stdout
    assert reversed_range.returncode == 2 and "--until is before --since" in reversed_range.stderr
    with psycopg.connect(database.owner_dsn) as conn:
        saturday = conn.execute(
            "SELECT carried_from, source FROM fx_rates WHERE rate_date = %s"
            " AND base_currency = 'EUR' AND quote_currency = 'USD'",
            (date(2026, 7, 11),),
        ).fetchone()
    assert saturday == (date(2026, 7, 10), "ecb")


def test_set_records_a_sellers_rate_with_its_audit(
    run_pixecom: RunPixecom, database: TestDatabase
) -> None:
    seller_id = uuid.uuid4()
    with psycopg.connect(database.owner_dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
    env = env_for(database)
    args = ("fx", "set", "--seller", str(seller_id), "2026-07-01", "EUR", "VND")

    set_rate = run_pixecom(*args, "27000.25", "--note", "bank", env=env)
    same_currency = run_pixecom(
        "fx", "set", "--seller", str(seller_id), "2026-07-01", "EUR", "EUR", "1", env=env
    )
    removed = run_pixecom(*args, "none", env=env)
    removed_again = run_pixecom(*args, "none", env=env)

    assert set_rate.returncode == 0, set_rate.stderr
    assert "EUR/VND on 2026-07-01: 27000.25" in set_rate.stdout
    assert same_currency.returncode == 2 and "two different currencies" in same_currency.stderr
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert removed_again.returncode == 1
    with psycopg.connect(database.owner_dsn) as conn, seller_scope(conn, seller_id):
        audit = conn.execute(
            "SELECT old_rate, new_rate, note, changed_by LIKE 'cli:%%' FROM"
            " seller_fx_rate_changes WHERE seller_id = %s ORDER BY created_at",
            (seller_id,),
        ).fetchall()
    assert [(a[0] is None, a[1] is None, a[2], a[3]) for a in audit] == [
        (True, False, "bank", True),
        (False, True, None, True),
    ]


def test_reaggregate_marks_every_day_with_money_of_the_chosen_sellers(
    run_pixecom: RunPixecom, database: TestDatabase
) -> None:
    chosen, other = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(database.owner_dsn, autocommit=True) as conn:
        for seller_id in (chosen, other):
            insert_seller(conn, seller_id)
            with seller_scope(conn, seller_id):
                for day in (date(2024, 2, 1), date(2025, 9, 30)):
                    conn.execute(
                        "INSERT INTO ad_stats_daily (seller_id, network, entity_type, entity_id,"
                        " stat_date, snapshot_fetched_at, spend_micros, impressions, clicks,"
                        " purchases, purchase_value_micros, currency) VALUES (%s, 'net',"
                        " 'campaign', 'c1', %s, now(), 1000000, 1, 1, 0, 0, 'USD')",
                        (seller_id, day),
                    )
    env = env_for(database)

    ranged = run_pixecom(
        "stats", "reaggregate", "--seller", str(chosen), "--since", "2025-01-01", env=env
    )
    everything = run_pixecom("stats", "reaggregate", "--seller", str(chosen), env=env)
    bad = run_pixecom("stats", "reaggregate", "--seller", "not-an-id", env=env)

    assert ranged.returncode == 0, ranged.stderr
    assert "1 day(s) of 1 seller(s) marked" in ranged.stdout
    # The day marked already is not counted twice.
    assert "1 day(s) of 1 seller(s) marked" in everything.stdout
    assert bad.returncode == 2
    with psycopg.connect(database.owner_dsn) as conn:
        for seller_id, expected in ((chosen, 2), (other, 0)):
            with seller_scope(conn, seller_id):
                count = conn.execute(
                    "SELECT count(*) FROM seller_stats_daily WHERE seller_id = %s"
                    " AND needs_reaggregation",
                    (seller_id,),
                ).fetchone()
            assert count == (expected,), seller_id
