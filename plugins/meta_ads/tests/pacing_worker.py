"""One worker process of ``test_meta_ads_pacing_workers``: the Meta ad network built by the
plugin's hook from the environment (as an API or worker process builds it), syncing one
day of campaign insights for one account when told to.

Usage: ``python pacing_worker.py <account number> <day>``. It prints ``{"event": "ready"}``
once built, waits for a line on stdin, syncs, and prints one JSON line: ``synced`` with the
rows read, or ``throttled`` with the wait the plugin raised; both with ``started`` and
``finished`` (epoch seconds).
"""

import asyncio
import json
import sys
import time
import uuid
from datetime import date
from typing import Any

from pixecom_meta_ads.plugin import pixecom_register_ad_networks
from pydantic import SecretStr

from pixecom_core.providers import AdAccountCredentials, EntityLevel, ProviderThrottled

TOKEN = "EAAGsandboxTOKEN0123456789abcdefSECRET"  # the sandbox's fixed test token


def report(line: dict[str, Any]) -> None:
    """One JSON line to the test, at once."""
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def sync_when_told(number: str, day: date) -> dict[str, Any]:
    [network] = pixecom_register_ad_networks()
    account = AdAccountCredentials(
        seller_id=uuid.uuid4(), account_id=number, access_token=SecretStr(TOKEN)
    )
    report({"event": "ready"})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    started = time.time()
    outcome: dict[str, Any]
    try:
        rows = [
            row
            async for row in network.fetch_daily_insights(
                account, level=EntityLevel.CAMPAIGN, since=day, until=day
            )
        ]
        outcome = {"event": "synced", "rows": len(rows)}
    except ProviderThrottled as exc:
        outcome = {"event": "throttled", "retry_after_seconds": exc.retry_after_seconds}
    finally:
        aclose = getattr(network, "aclose", None)
        if aclose is not None:
            await aclose()
    return {**outcome, "started": started, "finished": time.time()}


if __name__ == "__main__":
    result = asyncio.run(sync_when_told(sys.argv[1], date.fromisoformat(sys.argv[2])))
    report(result)
