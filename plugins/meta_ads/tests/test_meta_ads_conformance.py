"""The conformance kit against the Meta plugin: discovered through its hooks, served as
``pixecom dev`` serves it, driven through the sandbox's control API."""

from datetime import date

import pixecom_meta_ads.plugin
from pixecom_meta_ads.client import account_number

from pixecom_core.testing.conformance import AdNetworkConformance, Failure, SandboxUnderTest

#: The sandbox's error for each failure the kit asks for (see ``pixecom_meta_ads.sandbox``).
FAULTS = {
    # code 17 with usage headers at 100 % naming the wait: Meta's user request limit
    Failure.THROTTLED: {"kind": "throttle", "code": 17, "regain_minutes": 5},
    # HTTP 500, code 2, is_transient: more times than the network retries in place
    Failure.TRANSIENT: {"kind": "transient", "times": 10},
    # code 190: the token was invalidated
    Failure.AUTH: {"kind": "token", "times": 10},
}


class TestMetaAdsConformance(AdNetworkConformance):
    plugin = pixecom_meta_ads.plugin
    identifier = "meta"
    sandbox_name = "meta"
    # no sleeping between in-place retries, and a throttle is raised rather than waited out
    environment = {
        "PIXECOM_META_TRANSIENT_BACKOFF_SECONDS": "0",
        "PIXECOM_META_MAX_INLINE_WAIT_SECONDS": "0",
    }

    async def restate(self, sandbox: SandboxUnderTest, account_id: str, day: date) -> None:
        response = await sandbox.http.post(
            f"/_sandbox/accounts/{account_number(account_id)}/restate",
            json={"day": day.isoformat()},
        )
        assert response.status_code == 200, response.text

    async def inject_failure(
        self, sandbox: SandboxUnderTest, failure: Failure, account_id: str
    ) -> None:
        fault = {**FAULTS[failure], "account_id": account_number(account_id)}
        response = await sandbox.http.post("/_sandbox/faults", json=fault)
        assert response.status_code == 200, response.text
