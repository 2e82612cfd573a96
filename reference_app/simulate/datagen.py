"""Bulk data for a scenario: sellers, logins, catalog, ad accounts, order history, parcels.

Written as the schema owner with ``COPY`` (hundreds of thousands of rows a second), so
scenario B's 1,000 sellers and 300,000 orders take seconds, not the hours per-row inserts
would. ``COPY`` is refused under row-level security, so the owner must be a superuser or
``BYPASSRLS`` (checked by the deployment); the database's triggers still run for every
row (login and slug directories, append-only guards), so the rows are the ones the
services would have written.

Campaigns are not generated: the first sync cycle discovers them at the ad network's
sandbox (the
heavier, cold cycle is the one measured), and they are linked to their seller's sellpage
afterwards, as a seller would in the campaign builder.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from pixecom_core.providers import SimulatedAdAccount
from pixecom_core.security.passwords import hash_password
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from reference_app.simulate.scenarios import SECONDS_PER_DAY, Scenario

#: Every generated seller's owner logs in with this password (test data only).
SIMULATION_PASSWORD = "pixecom-simulation-password"
#: The token stored (encrypted) for every generated ad account; sandboxes accept any.
SIMULATION_TOKEN = "pixecom-simulation-token"
PRICE_MINOR = 2_990
CURRENCY = "USD"


@dataclass
class GeneratedData:
    """What was generated, for the load generator and the report."""

    seller_ids: list[uuid.UUID] = field(default_factory=list)
    slugs: list[str] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _copy(
    conn: psycopg.Connection[tuple[object, ...]],
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[object, ...]],
) -> None:
    with conn.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def generate(
    owner_dsn: str,
    settings: Settings,
    scenario: Scenario,
    *,
    ad_network: str,
    ad_accounts: Sequence[SimulatedAdAccount],
    gateway: str,
    seed: int = 7,
    say: Callable[[str], None] = lambda _message: None,
) -> GeneratedData:
    """Create the scenario's sellers, catalog, ad accounts, order history and parcels.

    :param ad_network: the identifier of the ad network the accounts belong to.
    :param ad_accounts: one account per seller, served by that network's sandbox and
        reporting in :data:`CURRENCY` (no exchange rates needed).
    :param gateway: the identifier of the payment gateway the order history was paid at.
    """
    if len(ad_accounts) < scenario.sellers:
        raise ValueError(f"{scenario.sellers} sellers need as many ad accounts")
    started = time.perf_counter()
    rng = random.Random(seed)
    box = SecretBox(settings.token_encryption_keys)
    password_hash = hash_password(SIMULATION_PASSWORD)  # one hash: argon2 is slow on purpose
    now = datetime.now(UTC)
    prefix = f"sim-{scenario.name.lower()}"
    data = GeneratedData()
    sellers, users, products, sellpages, prices, accounts = [], [], [], [], [], []
    sellpage_of: dict[uuid.UUID, uuid.UUID] = {}
    for index in range(scenario.sellers):
        seller_id, product_id, sellpage_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        slug = f"{prefix}-shop-{index}"
        email = f"{prefix}-owner{index}@example.com"
        data.seller_ids.append(seller_id)
        data.slugs.append(slug)
        data.logins.append((email, SIMULATION_PASSWORD))
        sellpage_of[seller_id] = sellpage_id
        sellers.append((seller_id, f"Simulated seller {index}", CURRENCY, "UTC"))
        users.append((seller_id, email, password_hash, "OWNER"))
        products.append((seller_id, product_id, f"SKU-{index}", f"Product {index}", "ACTIVE"))
        sellpages.append(
            (seller_id, sellpage_id, slug, f"Shop {index}", "PUBLISHED", product_id, "{}", now)
        )
        prices.append((seller_id, product_id, PRICE_MINOR, CURRENCY, now - timedelta(days=365)))
        account = ad_accounts[index]
        accounts.append(
            (
                seller_id,
                ad_network,
                account.account_id,
                f"Simulated account {index}",
                account.timezone,
                account.currency,
                box.encrypt(SIMULATION_TOKEN),
                box.primary_version,
            )
        )
    with psycopg.connect(owner_dsn) as conn:
        _copy(conn, "sellers", ("id", "name", "reporting_currency", "timezone"), sellers)
        _copy(conn, "users", ("seller_id", "email", "password_hash", "role"), users)
        _copy(conn, "products", ("seller_id", "id", "sku", "name", "status"), products)
        _copy(
            conn,
            "sellpages",
            ("seller_id", "id", "slug", "title", "status", "product_id", "content", "published_at"),
            sellpages,
        )
        _copy(
            conn,
            "pricing_rules",
            ("seller_id", "product_id", "price_minor", "currency", "effective_from"),
            prices,
        )
        _copy(
            conn,
            "ad_accounts",
            (
                "seller_id",
                "network",
                "external_id",
                "name",
                "timezone",
                "currency",
                "token_ciphertext",
                "token_key_version",
            ),
            accounts,
        )
        conn.commit()
        say(f"{scenario.sellers} sellers with logins, sellpages, prices and ad accounts")
        history = _order_history(conn, scenario, data.seller_ids, sellpage_of, now, rng, gateway)
        conn.commit()
        say(f"{history} orders of history ({scenario.history_days} days), paid in the ledger")
        if scenario.parcels_per_seller:
            parcels = _parcels(conn, scenario, rng)
            conn.commit()
            say(f"{parcels} parcels to track")
        conn.execute("ANALYZE")
        for table in ("sellers", "users", "sellpages", "ad_accounts", "orders", "payment_events"):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            data.rows[table] = int(row[0]) if row else 0
    data.seconds = time.perf_counter() - started
    return data


def _order_history(
    conn: psycopg.Connection[tuple[object, ...]],
    scenario: Scenario,
    seller_ids: list[uuid.UUID],
    sellpage_of: dict[uuid.UUID, uuid.UUID],
    now: datetime,
    rng: random.Random,
    gateway: str,
) -> int:
    """``history_days`` days of paid orders at the daily volume, with their payment
    directory rows and CAPTURED ledger facts; returns how many orders."""
    total = scenario.orders_per_day * scenario.history_days
    span = scenario.history_days * SECONDS_PER_DAY
    batch = 50_000
    written = 0
    while written < total:
        orders, payments, facts = [], [], []
        for _ in range(min(batch, total - written)):
            seller_id = rng.choice(seller_ids)
            order_id = uuid.uuid4()
            created = now - timedelta(seconds=rng.uniform(60, span))
            payment_id = f"sim{order_id.hex[:24]}"
            orders.append(
                (
                    seller_id,
                    order_id,
                    created,
                    "PAID",
                    sellpage_of[seller_id],
                    created,
                    CURRENCY,
                    PRICE_MINOR,
                    PRICE_MINOR,
                    f"buyer{written}@example.com",
                    gateway,
                    payment_id,
                )
            )
            payments.append((seller_id, gateway, payment_id, order_id, created))
            facts.append(
                (
                    seller_id,
                    order_id,
                    gateway,
                    payment_id,
                    "CAPTURED",
                    PRICE_MINOR,
                    CURRENCY,
                    created,
                )
            )
            written += 1
        _copy(
            conn,
            "orders",
            (
                "seller_id",
                "id",
                "created_at",
                "status",
                "sellpage_id",
                "attributed_at",
                "currency",
                "subtotal_minor",
                "total_minor",
                "customer_email",
                "payment_gateway",
                "payment_id",
            ),
            orders,
        )
        _copy(
            conn,
            "order_payments",
            ("seller_id", "gateway", "payment_id", "order_id", "order_created_at"),
            payments,
        )
        _copy(
            conn,
            "payment_events",
            (
                "seller_id",
                "order_id",
                "gateway",
                "gateway_reference",
                "event_type",
                "amount_minor",
                "currency",
                "occurred_at",
            ),
            facts,
        )
    return written


def _parcels(
    conn: psycopg.Connection[tuple[object, ...]], scenario: Scenario, rng: random.Random
) -> int:
    """Parcels (UPS numbers, not yet registered at 17TRACK) for the newest paid orders of
    every seller: what the tracking refresh registers and polls."""
    rows = conn.execute(
        """
        SELECT seller_id, id FROM (
            SELECT seller_id, id,
                   row_number() OVER (PARTITION BY seller_id ORDER BY created_at DESC) AS n
              FROM orders) AS newest
         WHERE n <= %s
        """,
        (scenario.parcels_per_seller,),
    ).fetchall()
    parcels = [
        (seller_id, order_id, "ups", f"1Z{rng.getrandbits(64):016X}", "not_found")
        for seller_id, order_id in rows
    ]
    _copy(
        conn,
        "tracking_records",
        ("seller_id", "order_id", "carrier", "tracking_number", "status"),
        parcels,
    )
    return len(parcels)


def link_campaigns(owner_dsn: str) -> int:
    """Tie every campaign without a sellpage to its seller's sellpage (what a seller does
    in the campaign builder), so sellpage stats join spend with revenue; returns how many."""
    with psycopg.connect(owner_dsn) as conn:
        cursor = conn.execute(
            """
            UPDATE campaigns AS c SET sellpage_id = s.id
              FROM sellpages AS s
             WHERE s.seller_id = c.seller_id AND c.sellpage_id IS NULL
            """
        )
        return cursor.rowcount
