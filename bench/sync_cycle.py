"""Benchmark: one full sync cycle against the Meta sandbox, against its latency-bound floor.

    .venv/bin/python -m bench.sync_cycle [--accounts 1000] [--campaigns 10]
                                         [--latency 1.5] [--concurrency 200]

SCALE-5, scenario B: 10,000 campaigns on 1,000 ad accounts, Meta answering in ~1.5 s —
the previous version needed 50 minutes per cycle. Here: ``--accounts`` sellers, each with
one Meta ad account of ``--campaigns`` campaigns (the plugin's sandbox on loopback, with
its latency and rate limits), synced by ``--concurrency`` concurrent jobs (what that many
worker slots would run), each job doing what a worker does: fetch three levels for the
last 3 days, COPY into ``ad_stats_raw``, adopt the daily snapshots, re-aggregate the
seller's sellpage days.

The floor: each account needs at least one round trip per level (3 × latency) and jobs
run ``concurrency`` at a time, so no implementation can beat
``ceil(accounts / concurrency) × 3 × latency``. The run prints the measured cycle, that
floor and their ratio, plus rows written. Needs the Meta plugin installed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import uvicorn

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pixecom_core import hookimpl  # noqa: E402
from pixecom_core.db.engine import create_engine, create_sessionmaker  # noqa: E402
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager  # noqa: E402
from pixecom_core.providers import AdNetwork  # noqa: E402
from pixecom_core.security.secret_box import SecretBox  # noqa: E402
from pixecom_core.stats.sync import AccountOutcome, StatsSync  # noqa: E402
from pixecom_core.testing.databases import provision_test_database, test_servers  # noqa: E402

try:
    from pixecom_meta_ads.ad_network import MetaAdNetwork
    from pixecom_meta_ads.sandbox import create_sandbox_app
    from pixecom_meta_ads.settings import MetaAdsSettings, MetaSandboxSettings
except ImportError:  # pragma: no cover - explained at run time
    sys.exit("bench.sync_cycle needs the Meta plugin: uv pip install -e plugins/meta_ads")

TOKEN = "pixecom-bench-token"


class MetaPlugin:
    def __init__(self, network: MetaAdNetwork) -> None:
        self.network = network

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return [self.network]


def serve_sandbox(settings: MetaSandboxSettings) -> tuple[str, uvicorn.Server]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_sandbox_app(settings), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server


def arrange(owner_dsn: str, box: SecretBox, accounts: int) -> list[uuid.UUID]:
    sellers = [uuid.uuid4() for _ in range(accounts)]
    token = box.encrypt(TOKEN)
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        for index, seller_id in enumerate(sellers):
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('app.current_seller_id', %s, true)", (str(seller_id),)
                )
                conn.execute(
                    "INSERT INTO sellers (id, name, reporting_currency) VALUES (%s, %s, 'USD')",
                    (seller_id, f"bench {index}"),
                )
                # Account numbers ≡ 0 mod 8: the sandbox's USD / GMT profile.
                conn.execute(
                    "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone,"
                    " currency, token_ciphertext, token_key_version) VALUES (%s, 'meta', %s,"
                    " 'bench', 'Etc/GMT', 'USD', %s, %s)",
                    (seller_id, f"act_{8 * (index + 1)}", token, box.primary_version),
                )
    return sellers


async def run(accounts: int, campaigns: int, latency: float, concurrency: int) -> None:
    sandbox_url, sandbox = serve_sandbox(
        MetaSandboxSettings(latency_seconds=latency, campaigns_per_account=campaigns)
    )
    with (
        test_servers() as (server_dsn, redis_url),
        provision_test_database(server_dsn, redis_url) as db,
    ):
        # One process runs every job here, so it gets a pool a fleet of workers would share.
        settings = db.settings.model_copy(
            update={"db_pool_size": 40, "db_pool_max_overflow": 40, "db_pool_timeout_seconds": 120}
        )
        box = SecretBox(settings.token_encryption_keys)
        sellers = arrange(db.owner_dsn, box, accounts)
        network = MetaAdNetwork(
            MetaAdsSettings(graph_base=sandbox_url, max_connections=max(concurrency * 3, 100))
        )
        manager = create_plugin_manager(load_entry_points=False, plugins=[MetaPlugin(network)])
        engine = create_engine(settings, role="app")
        sync = StatsSync(create_sessionmaker(engine), settings, ProviderRegistry(manager), box)
        semaphore = asyncio.Semaphore(concurrency)
        outcomes: dict[str, int] = {}

        async def job(seller_id: uuid.UUID) -> None:
            async with semaphore:
                result = await sync.sync_seller(seller_id, days_back=3)
            for account in result.accounts:
                outcomes[account.outcome.value] = outcomes.get(account.outcome.value, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(job(seller_id) for seller_id in sellers))
        cycle = time.perf_counter() - started
        await engine.dispose()
        with psycopg.connect(db.owner_dsn) as conn:
            raw = conn.execute("SELECT count(*) FROM ad_stats_raw").fetchone()
            daily = conn.execute("SELECT count(*) FROM ad_stats_daily").fetchone()
    sandbox.should_exit = True

    floor = math.ceil(accounts / concurrency) * 3 * latency
    print(
        f"sync cycle: {accounts} accounts x {campaigns} campaigns ({accounts * campaigns}"
        f" campaigns), latency {latency} s, {concurrency} concurrent jobs"
    )
    print(f"{'measure':<40}{'seconds':>10}")
    print(f"{'full cycle':<40}{cycle:>10.1f}")
    print(f"{'latency-bound floor':<40}{floor:>10.1f}")
    print(f"{'ratio (cycle / floor)':<40}{cycle / floor:>10.2f}")
    print(f"{'previous version (audit, scenario B)':<40}{3000:>10.0f}")
    print(
        f"outcomes: {outcomes}; rows: raw {raw[0] if raw else 0}, daily {daily[0] if daily else 0}"
    )
    synced = outcomes.get(AccountOutcome.SYNCED.value, 0)
    if synced != accounts:
        sys.exit(f"only {synced} of {accounts} accounts synced")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--campaigns", type=int, default=10)
    parser.add_argument("--latency", type=float, default=1.5)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.accounts, args.campaigns, args.latency, args.concurrency))


if __name__ == "__main__":
    main()
