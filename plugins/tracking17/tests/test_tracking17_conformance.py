"""The conformance kit against the 17TRACK plugin: discovered through its hooks, served as
``pixecom dev`` serves it, driven through the sandbox's control API."""

from collections.abc import Sequence

import pixecom_tracking17.plugin
from pixecom_tracking17.plugin import DEV_API_KEY

from pixecom_core.testing.conformance import SandboxUnderTest, TrackerConformance


class TestTracking17Conformance(TrackerConformance):
    plugin = pixecom_tracking17.plugin
    identifier = "17track"
    sandbox_name = "17track"
    # dev mode moves parcels on a timer; the kit asks for pushes itself
    environment = {"PIXECOM_TRACKING17_SANDBOX_ADVANCE_EVERY_SECONDS": "0"}
    secret = DEV_API_KEY

    async def request_push(self, sandbox: SandboxUnderTest, numbers: Sequence[str]) -> None:
        response = await sandbox.http.post(
            "/_sandbox/push", json={"numbers": list(numbers), "include_unchanged": True}
        )
        assert response.status_code == 200, response.text
