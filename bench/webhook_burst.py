"""Benchmark: a signed webhook burst, and the ledger's exactly-once under load.

    .venv/bin/python -m bench.webhook_burst [--deliveries 4000] [--concurrency 32]

MONEY-2, MONEY-3: a Black-Friday burst of payment webhooks, some delivered twice. The
run measures, on real PostgreSQL and Redis (DATABASE_URL / REDIS_URL, else embedded):

1. intake: signed deliveries POSTed to /webhooks/fakepay (verify + store once + queue),
   against a baseline of GET /healthz through the same server, client and concurrency;
2. processing: inbox deliveries turned into ledger facts by concurrent processors,
   against a baseline of plain single-row INSERTs into a scratch table with the same
   concurrency and pool;

and prints each with its ratio to its baseline. It then checks exactly-once: every
unique fact is in the ledger once, duplicates added nothing, and order nets add up.
Numbers are machine-dependent; the ratios are what to compare between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import text

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pixecom_core.db.engine import create_engine, create_sessionmaker  # noqa: E402
from pixecom_core.ledger import Ledger, WebhookInbox  # noqa: E402
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager  # noqa: E402
from pixecom_core.providers import PaymentEventKind  # noqa: E402
from pixecom_core.settings import Settings  # noqa: E402
from pixecom_core.testing.databases import provision_test_database, test_servers  # noqa: E402
from pixecom_core.testing.loopback import serving  # noqa: E402
from reference_app.api import create_app  # noqa: E402
from tests.db.tenant_rows import insert_seller  # noqa: E402
from tests.ledger import fakepay  # noqa: E402
from tests.ledger.conftest import insert_order  # noqa: E402


async def timed(count: int, concurrency: int, work: Callable[[int], Awaitable[None]]) -> float:
    """Run ``work(i)`` for i in range(count) with ``concurrency`` at once; items/second."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with semaphore:
            await work(index)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return count / (time.perf_counter() - started)


def arrange_orders(owner_dsn: str, orders: int) -> list[tuple[uuid.UUID, str]]:
    """Sellers with pending fakepay orders: (seller_id, payment reference) per order."""
    arranged = []
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        sellers = [uuid.uuid4() for _ in range(max(1, orders // 20))]
        for seller_id in sellers:
            insert_seller(conn, seller_id)
        for index in range(orders):
            order = insert_order(conn, sellers[index % len(sellers)])
            arranged.append((order.seller_id, order.payment))
    return arranged


async def run(deliveries: int, concurrency: int) -> int:
    with (
        test_servers() as (server_dsn, redis_url),
        provision_test_database(server_dsn, redis_url) as db,
    ):
        settings: Settings = db.settings.model_copy(
            update={
                "redis_key_prefix": f"pixecom-bench:{uuid.uuid4().hex}:",
                "db_pool_size": concurrency,
            }
        )
        rng = random.Random(7)
        orders = arrange_orders(db.owner_dsn, max(1, deliveries // 10))
        unique = []
        for index in range(int(deliveries / 1.2)):
            seller_id, payment = orders[index % len(orders)]
            kind = PaymentEventKind.CAPTURED if index < len(orders) else PaymentEventKind.REFUNDED
            amount = 10_000 if kind is PaymentEventKind.CAPTURED else rng.randint(1, 50)
            unique.append(fakepay.delivery([fakepay.fact(payment, f"f{index}", kind, amount)]))
        bodies = unique + rng.sample(unique, deliveries - len(unique))  # ~20 % duplicates
        rng.shuffle(bodies)

        manager = create_plugin_manager(load_entry_points=False, plugins=[fakepay])
        with serving(create_app(settings, plugin_manager=manager), lifespan="on") as base_url:
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

                async def health(_: int) -> None:
                    (await client.get("/healthz")).raise_for_status()

                async def webhook(index: int) -> None:
                    body, headers = bodies[index]
                    response = await client.post("/webhooks/fakepay", content=body, headers=headers)
                    response.raise_for_status()

                await timed(200, concurrency, health)  # warm-up
                baseline_http = await timed(deliveries, concurrency, health)
                intake = await timed(len(bodies), concurrency, webhook)

        engine = create_engine(settings, role="app")
        sessions = create_sessionmaker(engine)
        registry = ProviderRegistry(manager)
        inbox = WebhookInbox(sessions, settings, registry, Ledger(sessions, settings))
        pending = await inbox.due(limit=deliveries * 2)

        async def process(index: int) -> None:
            await inbox.process(pending[index])

        processing = await timed(len(pending), concurrency, process)

        owner = create_engine(settings, role="owner")
        async with owner.begin() as conn:
            await conn.execute(
                text("CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, v int NOT NULL)")
            )
            await conn.execute(text("GRANT INSERT ON bench_baseline TO pixecom_app"))
            await conn.execute(text("GRANT USAGE ON SEQUENCE bench_baseline_id_seq TO pixecom_app"))

        async def plain_insert(index: int) -> None:
            async with sessions() as session, session.begin():
                await session.execute(
                    text("INSERT INTO bench_baseline (v) VALUES (:v)"), {"v": index}
                )

        baseline_db = await timed(len(pending), concurrency, plain_insert)
        await owner.dispose()
        await engine.dispose()

        with psycopg.connect(db.owner_dsn) as conn:
            facts = conn.execute("SELECT count(*) FROM payment_events").fetchone()
            stored = conn.execute("SELECT count(*) FROM webhook_inbox").fetchone()
            left = conn.execute(
                "SELECT count(*) FROM webhook_inbox WHERE status <> 'PROCESSED'"
            ).fetchone()
        assert facts is not None and stored is not None and left is not None

    print(
        f"webhook burst: {len(bodies)} deliveries ({len(unique)} unique), concurrency {concurrency}"
    )
    print(f"{'measure':<34}{'per second':>12}{'baseline':>12}{'ratio':>8}")
    print(
        f"{'intake (verify+store+queue)':<34}{intake:>12.0f}{baseline_http:>12.0f}"
        f"{intake / baseline_http:>8.2f}   baseline: GET /healthz"
    )
    print(
        f"{'ledger processing':<34}{processing:>12.0f}{baseline_db:>12.0f}"
        f"{processing / baseline_db:>8.2f}   baseline: 1-row INSERT txns"
    )
    exactly_once = facts[0] == len(unique) and stored[0] == len(unique) and left[0] == 0
    print(
        f"exactly-once: {facts[0]} ledger facts for {len(unique)} unique facts, "
        f"{stored[0]} inbox rows, {left[0]} unprocessed -> {'OK' if exactly_once else 'FAILED'}"
    )
    return 0 if exactly_once else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.deliveries, args.concurrency)))


if __name__ == "__main__":
    main()
