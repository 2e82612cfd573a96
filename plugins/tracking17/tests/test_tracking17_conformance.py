"""The conformance kit against the 17TRACK plugin: discovered through its hooks, served as
``pixecom dev`` serves it, driven through the sandbox's control API."""

from collections.abc import Sequence

import pixecom_tracking17.plugin
from pixecom_tracking17.plugin import DEV_API_KEY

from pixecom_core.testing.conformance import Failure, SandboxUnderTest, TrackerConformance

#: The sandbox's answer to the next API calls for each failure the kit asks for.
FAULTS = {
    Failure.THROTTLED: {"kind": "envelope", "status": 429, "code": 429, "message": "Too many"},
    Failure.TRANSIENT: {"kind": "server_error", "status": 503, "times": 10},
    # the key refused, with 17TRACK's "invalid key" envelope quoting it back
    Failure.AUTH: {
        "kind": "envelope",
        "status": 401,
        "code": -18010002,
        "message": "Invalid security key.",
        "echo_token": True,
    },
}


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

    async def inject_failure(self, sandbox: SandboxUnderTest, failure: Failure) -> None:
        response = await sandbox.http.post("/_sandbox/faults", json=FAULTS[failure])
        assert response.status_code == 200, response.text
