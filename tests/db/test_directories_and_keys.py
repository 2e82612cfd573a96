"""The two pre-scope directories (login, public slugs) and composite tenant keys."""

from __future__ import annotations

import uuid

import pytest
from psycopg import errors

from tests.db.tenant_rows import Connection, TwoSellers, insert_seller, seller_scope


def _add_user(conn: Connection, seller: uuid.UUID, email: str) -> uuid.UUID:
    with seller_scope(conn, seller):
        row = conn.execute(
            "INSERT INTO users (seller_id, email, password_hash) VALUES (%s, %s, 'h') RETURNING id",
            (seller, email),
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


@pytest.fixture
def seller(owner_conn: Connection) -> uuid.UUID:
    seller_id = uuid.uuid4()
    insert_seller(owner_conn, seller_id)
    return seller_id


def _find_login(conn: Connection, email: str) -> list[tuple[object, ...]]:
    with seller_scope(conn, None):
        return conn.execute("SELECT * FROM pixecom_find_login(%s)", (email,)).fetchall()


def test_login_is_found_before_any_scope(app_conn: Connection, seller: uuid.UUID) -> None:
    email = f"Owner-{uuid.uuid4().hex[:8]}@Example.com"
    user = _add_user(app_conn, seller, email)
    # Lookup normalises case and surrounding spaces, and needs no seller scope.
    assert _find_login(app_conn, f"  {email.upper()} ") == [(seller, user)]
    assert _find_login(app_conn, "nobody@example.com") == []


def test_the_login_directory_itself_is_unreadable(app_conn: Connection) -> None:
    for statement in (
        "SELECT * FROM login_identities",
        "INSERT INTO login_identities"
        " VALUES ('x@example.com', gen_random_uuid(), gen_random_uuid())",
        "DELETE FROM login_identities",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            with seller_scope(app_conn, None):
                app_conn.execute(statement)


def test_login_directory_follows_email_changes_and_deletes(
    app_conn: Connection, seller: uuid.UUID
) -> None:
    old = f"old-{uuid.uuid4().hex[:8]}@example.com"
    new = f"new-{uuid.uuid4().hex[:8]}@example.com"
    user = _add_user(app_conn, seller, old)
    with seller_scope(app_conn, seller):
        app_conn.execute("UPDATE users SET email = %s WHERE id = %s", (new, user))
    assert _find_login(app_conn, old) == []
    assert _find_login(app_conn, new) == [(seller, user)]
    with seller_scope(app_conn, seller):
        app_conn.execute("DELETE FROM users WHERE id = %s", (user,))
    assert _find_login(app_conn, new) == []


def test_an_email_signs_in_to_one_seller_only(
    app_conn: Connection, owner_conn: Connection, seller: uuid.UUID
) -> None:
    email = f"shared-{uuid.uuid4().hex[:8]}@example.com"
    _add_user(app_conn, seller, email)
    other = uuid.uuid4()
    insert_seller(owner_conn, other)
    with pytest.raises(errors.UniqueViolation, match="login_identities"):
        _add_user(app_conn, other, email.upper())


def test_find_login_is_executable_by_the_app_role_only(
    owner_conn: Connection, database_app_role: str
) -> None:
    rows = owner_conn.execute(
        "SELECT has_function_privilege('public', 'pixecom_find_login(text)', 'EXECUTE'),"
        " has_function_privilege(%s, 'pixecom_find_login(text)', 'EXECUTE'),"
        " (SELECT prosecdef FROM pg_proc WHERE oid = 'pixecom_find_login(text)'::regprocedure),"
        " (SELECT proconfig FROM pg_proc WHERE oid = 'pixecom_find_login(text)'::regprocedure)",
        (database_app_role,),
    ).fetchone()
    assert rows is not None
    public_may, app_may, security_definer, config = rows
    assert (public_may, app_may, security_definer) == (False, True, True)
    assert any(str(item).startswith("search_path=") for item in config)


def test_maintenance_functions_are_not_executable_by_the_app_role(
    owner_conn: Connection, database_app_role: str
) -> None:
    rows = owner_conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p"
        " JOIN pg_namespace AS n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public' AND p.proname LIKE 'pixecom\\_%%'"
        # The directories the app role is meant to call (login, seller ids, payments),
        # the sync lag per tier (aggregates only, for worker metrics) and the webhook
        # inbox's one-delivery steps and state counts (migration 0010: the inbox has
        # forced RLS, and a delivery not attributed yet is reached only through these),
        # the backfills to resume (ids only, for the scheduler; migration 0014), the open
        # refunds (ids only, for the payments worker; 0015), the connected gateway
        # accounts (one account in, one row out; migration 0016) and the sellers whose
        # days wait for a rate (ids only, for the rate load; 0017) and those with conversion
        # events due (ids only, for the payments worker; 0018).
        " AND p.proname NOT IN"
        " ('pixecom_find_login', 'pixecom_seller_directory', 'pixecom_find_payment',"
        "  'pixecom_sync_lag_by_tier', 'pixecom_inbox_receive', 'pixecom_inbox_claim',"
        "  'pixecom_inbox_processed', 'pixecom_inbox_retry_later', 'pixecom_inbox_due',"
        "  'pixecom_inbox_states', 'pixecom_backfills_to_resume',"
        "  'pixecom_find_payment_account', 'pixecom_open_refunds',"
        "  'pixecom_sellers_waiting_for_rates', 'pixecom_due_conversions')"
        " AND has_function_privilege(%s, p.oid, 'EXECUTE')",
        (database_app_role,),
    ).fetchall()
    assert rows == []


def test_public_slugs_are_readable_and_claimed_once(
    app_conn: Connection, two_sellers: TwoSellers, owner_conn: Connection
) -> None:
    slug = f"summer-{uuid.uuid4().hex[:8]}"
    with seller_scope(app_conn, two_sellers.a):
        row = app_conn.execute(
            "INSERT INTO sellpages (seller_id, slug, title) VALUES (%s, %s, 'Summer') RETURNING id",
            (two_sellers.a, slug),
        ).fetchone()
    assert row is not None
    # A shopper's request has no scope: the directory is readable without one.
    with seller_scope(app_conn, None):
        found = app_conn.execute(
            "SELECT seller_id, sellpage_id FROM public_sellpage_slugs WHERE slug = %s", (slug,)
        ).fetchall()
        with pytest.raises(errors.InsufficientPrivilege):
            app_conn.execute("DELETE FROM public_sellpage_slugs WHERE slug = %s", (slug,))
    assert found == [(two_sellers.a, row[0])]
    with pytest.raises(errors.UniqueViolation, match="public_sellpage_slugs"):
        with seller_scope(app_conn, two_sellers.b):
            app_conn.execute(
                "INSERT INTO sellpages (seller_id, slug, title) VALUES (%s, %s, 'Copy')",
                (two_sellers.b, slug),
            )
    renamed = f"{slug}-2"
    with seller_scope(app_conn, two_sellers.a):
        app_conn.execute("UPDATE sellpages SET slug = %s WHERE id = %s", (renamed, row[0]))
    slugs = owner_conn.execute(
        "SELECT slug FROM public_sellpage_slugs WHERE sellpage_id = %s", (row[0],)
    ).fetchall()
    assert slugs == [(renamed,)]


def _sellpage_of(conn: Connection, seller: uuid.UUID) -> uuid.UUID:
    row = conn.execute(
        "SELECT id FROM sellpages WHERE seller_id = %s LIMIT 1", (seller,)
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _ad_account_of(conn: Connection, seller: uuid.UUID) -> uuid.UUID:
    row = conn.execute(
        "SELECT id FROM ad_accounts WHERE seller_id = %s LIMIT 1", (seller,)
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def test_a_campaign_cannot_point_at_another_sellers_sellpage(
    app_conn: Connection, owner_conn: Connection, two_sellers: TwoSellers
) -> None:
    foreign_sellpage = _sellpage_of(owner_conn, two_sellers.b)
    account = _ad_account_of(owner_conn, two_sellers.a)
    insert = (
        "INSERT INTO campaigns (seller_id, ad_account_id, external_id, name, sellpage_id)"
        " VALUES (%s, %s, %s, 'Stolen', %s)"
    )
    params = (two_sellers.a, account, f"cmp_{uuid.uuid4().hex}", foreign_sellpage)
    # Even the owner, who bypasses row-level security, cannot: the key is (seller, id).
    with pytest.raises(errors.ForeignKeyViolation, match="sellpages"):
        owner_conn.execute(insert, params)
    with pytest.raises(errors.ForeignKeyViolation, match="sellpages"):
        with seller_scope(app_conn, two_sellers.a):
            app_conn.execute(insert, params)
    # The sellpage one of A's campaigns is tied to (A has others: an earlier test of this
    # module adds one, and "LIMIT 1" without an order may return either).
    linked = owner_conn.execute(
        "SELECT sellpage_id FROM campaigns WHERE seller_id = %s AND sellpage_id IS NOT NULL"
        " ORDER BY id LIMIT 1",
        (two_sellers.a,),
    ).fetchone()
    assert linked is not None
    own_sellpage = uuid.UUID(str(linked[0]))
    with pytest.raises(errors.ForeignKeyViolation, match="sellpages"):
        with seller_scope(app_conn, two_sellers.a):
            app_conn.execute(
                "UPDATE campaigns SET sellpage_id = %s WHERE sellpage_id = %s",
                (foreign_sellpage, own_sellpage),
            )
