"""The conformance kit against the Meta plugin: discovered through its hooks, served as
``pixecom dev`` serves it, driven through the sandbox's control API."""

from datetime import date

import pixecom_meta_ads.plugin
from pixecom_meta_ads.client import account_number

from pixecom_core.testing.conformance import AdNetworkConformance, SandboxUnderTest


class TestMetaAdsConformance(AdNetworkConformance):
    plugin = pixecom_meta_ads.plugin
    identifier = "meta"
    sandbox_name = "meta"
    # no sleeping between in-place retries, and a throttle is raised rather than waited out;
    # pacing in memory, so a block one check provoked never reaches the next (with REDIS_URL
    # set, the hook would share it through Redis under the default key prefix)
    environment = {
        "PIXECOM_META_TRANSIENT_BACKOFF_SECONDS": "0",
        "PIXECOM_META_MAX_INLINE_WAIT_SECONDS": "0",
        "PIXECOM_META_SHARED_PACING": "false",
    }

    async def restate(self, sandbox: SandboxUnderTest, account_id: str, day: date) -> None:
        response = await sandbox.http.post(
            f"/_sandbox/accounts/{account_number(account_id)}/restate",
            json={"day": day.isoformat()},
        )
        assert response.status_code == 200, response.text
