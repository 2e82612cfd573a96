"""Forced row-level security on every table with a ``seller_id`` the app role can read.

Revision ID: 0010_seller_rls_everywhere
Revises: 0009_ad_stats_account
Create Date: 2026-12-07 00:00:00

Issue 12, item 3: ``webhook_inbox`` (raw payment bodies, with shoppers' personal data),
``dead_letters`` and ``sync_runs`` were readable across sellers by the application role,
and ``GET /problems`` kept sellers apart by a hand-written filter — the app-layer-only
isolation TENANT-2 rules out. Each now has the ``seller_isolation`` policy every
seller-owned table has, enabled and FORCED:

- ``sync_runs`` and ``dead_letters`` are written by code that knows the seller, inside
  that seller's scope (:mod:`pixecom_core.stats.runs`, :mod:`pixecom_core.stats.jobs`).
- ``webhook_inbox`` rows are stored before anyone knows their seller (``seller_id`` NULL)
  and stay invisible to the app role until the worker attributes them. The app role
  keeps SELECT (its seller's attributed rows: ``GET /problems``) and loses INSERT and
  UPDATE; the receiving endpoint and the worker go through owner functions that each
  touch one delivery (``pixecom_inbox_receive``, ``_claim``, ``_processed``,
  ``_retry_later``) or return ids only (``_due``), as the payment directory's
  ``pixecom_find_payment`` answers for one payment. ``pixecom_inbox_states()`` answers
  counts per state for ``/metrics``.
- Operators list what no seller can see (unattributed deliveries, every dead letter)
  through owner-only functions (``pixecom_inbox_problems``, ``pixecom_dead_letters``,
  ``pixecom_resolve_dead_letter``), which ``pixecom webhooks failed`` and ``pixecom jobs``
  call over the owner's connection; the app role may not execute them.

Like the seller directory (0002) and the sync lag (0007), each owner function switches
the setting ``pixecom.unscoped_rows`` on around its one statement, and the policy that
admits it (``owner_unscoped_rows``) applies to the owner role alone and only while that
setting is on, so an owner that is not a superuser (managed PostgreSQL) stays under
FORCE ROW LEVEL SECURITY everywhere else. Policies, functions and grants only: each
``ALTER TABLE`` takes its lock for a moment, bounded by ``lock_timeout``.

Deploy the code of this revision with it: an API of the previous revision can no longer
insert into the inbox.
"""

from collections.abc import Sequence

from alembic import op

from pixecom_core.db import migration_support

revision: str = "0010_seller_rls_everywhere"
down_revision: str | None = "0009_ad_stats_account"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copy of 0001's predicate: no scope → NULL → no row; another seller's → refused.
SELLER_PREDICATE = "seller_id = NULLIF(current_setting('app.current_seller_id', true), '')::uuid"
#: The owner functions' switch; the policy naming it admits the owner role only.
OWNER_PREDICATE = "current_setting('pixecom.unscoped_rows', true) = 'on'"

TABLES = ("webhook_inbox", "dead_letters", "sync_runs")

#: A page is at most this long, whatever the caller asks (SCALE-4: nothing unbounded).
MAX_ROWS = 1000
#: The sweeper re-kicks at most this many due deliveries per call.
MAX_DUE = 5000

_ON = "PERFORM set_config('pixecom.unscoped_rows', 'on', true);"
_OFF = "PERFORM set_config('pixecom.unscoped_rows', 'off', true);"
_HEADER = "LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp"

FUNCTIONS_SQL = f"""
CREATE FUNCTION pixecom_inbox_receive(
    p_gateway text, p_event_id text, p_event_type text, p_headers jsonb, p_body bytea,
    p_received_at timestamptz
)
RETURNS TABLE (inbox_id bigint, duplicate boolean)
{_HEADER} AS $fn$
#variable_conflict use_column
BEGIN
    {_ON}
    -- UNIQUE (gateway, event_id): a redelivery stores nothing and answers the first id.
    INSERT INTO public.webhook_inbox AS i
        (gateway, event_id, event_type, headers, body, received_at)
    VALUES (p_gateway, p_event_id, p_event_type, p_headers, p_body, p_received_at)
    ON CONFLICT ON CONSTRAINT uq_webhook_inbox_gateway_event_id DO NOTHING
    RETURNING i.id INTO inbox_id;
    duplicate := inbox_id IS NULL;
    IF duplicate THEN
        SELECT i.id INTO inbox_id FROM public.webhook_inbox AS i
         WHERE i.gateway = p_gateway AND i.event_id = p_event_id;
    END IF;
    {_OFF}
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION pixecom_inbox_receive(text, text, text, jsonb, bytea, timestamptz) IS
    'Stores one verified webhook delivery once; answers its inbox id and whether it was '
    'stored before. The only way the app role writes a new inbox row.';

CREATE FUNCTION pixecom_inbox_claim(p_id bigint)
RETURNS TABLE (inbox_id bigint, gateway text, event_id text, event_type text,
               headers jsonb, body bytea, received_at timestamptz, attempts integer)
{_HEADER} AS $fn$
#variable_conflict use_column
BEGIN
    {_ON}
    -- The row lock is the transaction's: it holds until the caller commits its outcome.
    RETURN QUERY
        SELECT i.id, i.gateway, i.event_id, i.event_type, i.headers, i.body,
               i.received_at, i.attempts
          FROM public.webhook_inbox AS i
         WHERE i.id = p_id AND i.status IN ('RECEIVED', 'DEFERRED')
           FOR UPDATE SKIP LOCKED;
    {_OFF}
END
$fn$;
COMMENT ON FUNCTION pixecom_inbox_claim(bigint) IS
    'Locks one pending delivery (RECEIVED or DEFERRED) for processing and returns it; '
    'nothing when it is processed, parked or locked by another worker.';

CREATE FUNCTION pixecom_inbox_processed(p_id bigint, p_seller_id uuid)
RETURNS boolean
{_HEADER} AS $fn$
#variable_conflict use_column
DECLARE
    v_found boolean;
BEGIN
    {_ON}
    UPDATE public.webhook_inbox AS i
       SET status = 'PROCESSED', processed_at = now(), attempts = i.attempts + 1,
           last_error = NULL, seller_id = p_seller_id
     WHERE i.id = p_id AND i.status IN ('RECEIVED', 'DEFERRED');
    v_found := FOUND;
    {_OFF}
    RETURN v_found;
END
$fn$;
COMMENT ON FUNCTION pixecom_inbox_processed(bigint, uuid) IS
    'Marks one pending delivery PROCESSED, attributed to its one seller (NULL for none '
    'or several).';

CREATE FUNCTION pixecom_inbox_retry_later(
    p_id bigint, p_status text, p_attempts integer, p_error text,
    p_next_attempt_at timestamptz, p_seller_id uuid
)
RETURNS boolean
{_HEADER} AS $fn$
#variable_conflict use_column
DECLARE
    v_found boolean;
BEGIN
    IF p_status IS NULL OR p_status NOT IN ('DEFERRED', 'FAILED') THEN
        RAISE EXCEPTION 'a delivery is retried as DEFERRED or parked as FAILED, not %',
            p_status USING ERRCODE = 'invalid_parameter_value';
    END IF;
    {_ON}
    UPDATE public.webhook_inbox AS i
       SET status = p_status, attempts = p_attempts, last_error = left(p_error, 2000),
           next_attempt_at = p_next_attempt_at, seller_id = coalesce(p_seller_id, i.seller_id)
     WHERE i.id = p_id AND i.status IN ('RECEIVED', 'DEFERRED');
    v_found := FOUND;
    {_OFF}
    RETURN v_found;
END
$fn$;
COMMENT ON FUNCTION pixecom_inbox_retry_later(bigint, text, integer, text, timestamptz, uuid)
    IS 'Records a failed attempt at one pending delivery: DEFERRED (retried at '
    'p_next_attempt_at) or FAILED (parked), attributed to its seller when known.';

CREATE FUNCTION pixecom_inbox_due(p_grace_seconds double precision, p_max_rows integer)
RETURNS SETOF bigint
{_HEADER} AS $fn$
BEGIN
    {_ON}
    RETURN QUERY
        SELECT i.id FROM public.webhook_inbox AS i
         WHERE i.status IN ('RECEIVED', 'DEFERRED')
           AND i.next_attempt_at <= now() - make_interval(secs => p_grace_seconds)
         ORDER BY i.next_attempt_at
         LIMIT least(greatest(p_max_rows, 1), {MAX_DUE});
    {_OFF}
END
$fn$;
COMMENT ON FUNCTION pixecom_inbox_due(double precision, integer) IS
    'Ids (only) of deliveries waiting to be processed, longest waiting first, at most 5000.';

CREATE FUNCTION pixecom_inbox_states()
RETURNS TABLE (status text, deliveries bigint, oldest_received_at timestamptz)
{_HEADER} AS $fn$
#variable_conflict use_column
BEGIN
    {_ON}
    -- Two queries whose predicates are those of the partial indexes (ix_webhook_inbox_
    -- pending, ix_webhook_inbox_seller_problems): processed deliveries are never read.
    RETURN QUERY
        SELECT i.status, count(*), min(i.received_at)
          FROM public.webhook_inbox AS i
         WHERE i.status IN ('RECEIVED', 'DEFERRED')
         GROUP BY i.status
        UNION ALL
        SELECT 'FAILED', count(*), min(i.received_at)
          FROM public.webhook_inbox AS i
         WHERE i.status IN ('DEFERRED', 'FAILED') AND i.status = 'FAILED';
    {_OFF}
END
$fn$;
COMMENT ON FUNCTION pixecom_inbox_states() IS
    'Per waiting or parked state (RECEIVED, DEFERRED, FAILED): how many deliveries, and '
    'when the oldest arrived. Aggregates only, for /metrics.';

CREATE FUNCTION pixecom_inbox_problems(p_after bigint, p_max_rows integer)
RETURNS TABLE (inbox_id bigint, gateway text, event_id text, event_type text,
               status text, attempts integer, received_at timestamptz,
               next_attempt_at timestamptz, seller_id uuid, last_error text)
{_HEADER} AS $fn$
#variable_conflict use_column
BEGIN
    {_ON}
    RETURN QUERY
        SELECT i.id, i.gateway, i.event_id, i.event_type, i.status, i.attempts,
               i.received_at, i.next_attempt_at, i.seller_id, i.last_error
          FROM public.webhook_inbox AS i
         WHERE i.status IN ('DEFERRED', 'FAILED') AND (p_after IS NULL OR i.id > p_after)
         ORDER BY i.id
         LIMIT least(greatest(p_max_rows, 1), {MAX_ROWS});
    {_OFF}
END
$fn$;
COMMENT ON FUNCTION pixecom_inbox_problems(bigint, integer) IS
    'Operator only: one page (at most 1000, by inbox id) of DEFERRED and FAILED '
    'deliveries of every seller and of none, without their bodies or headers.';

CREATE FUNCTION pixecom_dead_letters(
    p_include_resolved boolean, p_after bigint, p_max_rows integer
)
RETURNS TABLE (dead_letter_id bigint, task_name text, seller_id uuid, attempts integer,
               failed_at timestamptz, resolved_at timestamptz, error text)
{_HEADER} AS $fn$
#variable_conflict use_column
BEGIN
    {_ON}
    RETURN QUERY
        SELECT d.id, d.task_name, d.seller_id, d.attempts, d.failed_at, d.resolved_at, d.error
          FROM public.dead_letters AS d
         WHERE (p_include_resolved OR d.resolved_at IS NULL)
           AND (p_after IS NULL OR d.id > p_after)
         ORDER BY d.id
         LIMIT least(greatest(p_max_rows, 1), {MAX_ROWS});
    {_OFF}
END
$fn$;
COMMENT ON FUNCTION pixecom_dead_letters(boolean, bigint, integer) IS
    'Operator only: one page (at most 1000, by id) of dead letters of every seller.';

CREATE FUNCTION pixecom_resolve_dead_letter(p_id bigint)
RETURNS boolean
{_HEADER} AS $fn$
DECLARE
    v_found boolean;
BEGIN
    {_ON}
    UPDATE public.dead_letters AS d SET resolved_at = now()
     WHERE d.id = p_id AND d.resolved_at IS NULL;
    v_found := FOUND;
    {_OFF}
    RETURN v_found;
END
$fn$;
COMMENT ON FUNCTION pixecom_resolve_dead_letter(bigint) IS
    'Operator only: marks one open dead letter handled; false when there is none.';
"""

#: Executable by the application role (the API and the worker).
APP_FUNCTIONS = (
    "pixecom_inbox_receive(text, text, text, jsonb, bytea, timestamptz)",
    "pixecom_inbox_claim(bigint)",
    "pixecom_inbox_processed(bigint, uuid)",
    "pixecom_inbox_retry_later(bigint, text, integer, text, timestamptz, uuid)",
    "pixecom_inbox_due(double precision, integer)",
    "pixecom_inbox_states()",
)
#: Executable by the owner alone (operators' ``pixecom`` commands).
OWNER_FUNCTIONS = (
    "pixecom_inbox_problems(bigint, integer)",
    "pixecom_dead_letters(boolean, bigint, integer)",
    "pixecom_resolve_dead_letter(bigint)",
)


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.execute("SET LOCAL lock_timeout = '5s'")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY seller_isolation ON {table} "
            f"USING ({SELLER_PREDICATE}) WITH CHECK ({SELLER_PREDICATE})"
        )
        op.execute(
            f"CREATE POLICY owner_unscoped_rows ON {table} TO CURRENT_USER "
            f"USING ({OWNER_PREDICATE}) WITH CHECK ({OWNER_PREDICATE})"
        )
    # The inbox is written through the functions only; SELECT stays (the seller's
    # attributed deliveries, in its scope).
    op.execute(f"REVOKE INSERT, UPDATE ON TABLE webhook_inbox FROM {app_role}")
    op.execute(FUNCTIONS_SQL)
    for signature in (*APP_FUNCTIONS, *OWNER_FUNCTIONS):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    for signature in APP_FUNCTIONS:
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {app_role}")


def downgrade() -> None:
    app_role = migration_support.app_role()
    op.execute("SET LOCAL lock_timeout = '5s'")
    for signature in (*OWNER_FUNCTIONS, *APP_FUNCTIONS):
        op.execute(f"DROP FUNCTION {signature}")
    op.execute(f"GRANT INSERT, UPDATE ON TABLE webhook_inbox TO {app_role}")
    for table in TABLES:
        op.execute(f"DROP POLICY owner_unscoped_rows ON {table}")
        op.execute(f"DROP POLICY seller_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
