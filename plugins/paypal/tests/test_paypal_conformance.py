"""The conformance kit against the PayPal plugin: discovered through its hooks, served as
``pixecom dev`` serves it (plain http, webhooks verified through the verify API), paid
through the sandbox's control API; sellers' own REST apps are made with its ``/_sandbox/apps``."""

import json
from collections.abc import Mapping
from datetime import UTC, datetime

import pixecom_paypal.plugin
from pydantic import SecretStr

from pixecom_core.providers import PaymentSession
from pixecom_core.testing.conformance import PaymentGatewayConformance, SandboxUnderTest


class TestPayPalConformance(PaymentGatewayConformance):
    plugin = pixecom_paypal.plugin
    identifier = "paypal"
    sandbox_name = "paypal"

    async def settle_payment(self, sandbox: SandboxUnderTest, session: PaymentSession) -> None:
        captured = await sandbox.http.post(
            f"/_sandbox/orders/{session.gateway_reference}/capture", json={"status": "COMPLETED"}
        )
        assert captured.status_code == 201, captured.text
        # The dev environment has the sandbox send its webhooks to the API as they happen.

    async def connect_credentials(self, sandbox: SandboxUnderTest) -> Mapping[str, SecretStr]:
        # A seller's own REST app, made on the sandbox as a seller makes one on PayPal's
        # developer dashboard.
        created = await sandbox.http.post("/_sandbox/apps", json={"name": "Conformance shop"})
        assert created.status_code == 201, created.text
        app = created.json()
        return {
            "client_id": SecretStr(app["client_id"]),
            "client_secret": SecretStr(app["client_secret"]),
        }

    async def sign_at(
        self,
        sandbox: SandboxUnderTest,
        body: bytes,
        headers: Mapping[str, str],  # noqa: ARG002 (the kit's signature)
        *,
        signed_at: datetime,
    ) -> Mapping[str, str]:
        # A fresh transmission signed by the sandbox, with its clock moved to `signed_at`.
        offset = (signed_at - datetime.now(UTC)).total_seconds()
        await self._move_clock(sandbox, offset)
        try:
            response = await sandbox.http.post(
                "/_sandbox/webhooks/transmissions", json={"event_id": json.loads(body)["id"]}
            )
        finally:
            await self._move_clock(sandbox, -offset)
        assert response.status_code == 200, response.text
        transmission = response.json()
        assert transmission["body"].encode() == body
        return {name.lower(): value for name, value in transmission["headers"].items()}

    async def _move_clock(self, sandbox: SandboxUnderTest, seconds: float) -> None:
        # the kit's clock moves forwards by advance_seconds; back only by setting a time
        read = await sandbox.http.post("/_sandbox/clock", json={"advance_seconds": 0})
        assert read.status_code == 200, read.text
        moved = await sandbox.http.post(
            "/_sandbox/clock", json={"now": read.json()["now"] + seconds}
        )
        assert moved.status_code == 200, moved.text
