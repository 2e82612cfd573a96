"""Test helpers: drive a running PayPal sandbox (its webhooks go to the kit's
``WebhookReceiver``).

The name is unique across the repository on purpose: plugin test folders are not packages,
so pytest imports this module by its bare name.
"""

import ssl
from typing import Any

import httpx
from fastapi import FastAPI
from pixecom_paypal.sandbox import SandboxSettings

from pixecom_core.providers.sandboxes import ASGIApp, Receive, Scope, Send


class SwappableApp:
    """An ASGI app that forwards to whichever app is current: one server, a fresh app per test."""

    def __init__(self) -> None:
        self.current: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.current is not None, "no app is being served"
        await self.current(scope, receive, send)


class SandboxControl:
    """The sandbox's control endpoints (and its state, for assertions) as plain methods.

    Synchronous on purpose: the sandbox runs in its own thread, so blocking calls from a
    test's event loop are fine and keep the tests short.
    """

    def __init__(self, url: str, *, ca_file: str, app: FastAPI, settings: SandboxSettings):
        self.url = url
        self.app = app
        self.settings = settings
        self.http = httpx.Client(
            base_url=url, verify=ssl.create_default_context(cafile=ca_file), timeout=30
        )

    @property
    def state(self) -> Any:
        """The sandbox's in-memory state (orders, captures, tokens ...)."""
        return self.app.state.paypal

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"/_sandbox{path}", **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def api(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        """Call the sandbox's PayPal API as a merchant would (with a bearer token)."""
        token = self.http.post(
            "/v1/oauth2/token",
            auth=(self.settings.client_id, self.settings.client_secret.get_secret_value()),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        response = self.http.request(
            method, path, headers={**(headers or {}), "Authorization": f"Bearer {token}"}, **kwargs
        )
        response.raise_for_status()
        return response.json()

    def create_order(self, value: str = "5.00", currency: str = "USD", **unit: Any) -> str:
        """Create a PayPal order directly; return its id."""
        order = self.api(
            "POST",
            "/v2/checkout/orders",
            json={
                "intent": "CAPTURE",
                "purchase_units": [{"amount": {"currency_code": currency, "value": value}, **unit}],
            },
        )
        return str(order["id"])

    def approve(self, order_id: str) -> Any:
        return self.call("POST", f"/orders/{order_id}/approve")

    def capture(self, order_id: str, status: str = "COMPLETED") -> str:
        """Approve and capture ``order_id``; return the capture id."""
        order = self.call("POST", f"/orders/{order_id}/capture", json={"status": status})
        captures = order["purchase_units"][0]["payments"]["captures"]
        return str(captures[-1]["id"])

    def refund(self, capture_id: str, value: str | None = None) -> Any:
        return self.call("POST", f"/captures/{capture_id}/refund", json={"value": value})

    def reverse(self, capture_id: str, value: str | None = None) -> Any:
        return self.call("POST", f"/captures/{capture_id}/reverse", json={"value": value})

    def open_dispute(self, capture_id: str, **options: Any) -> Any:
        return self.call("POST", f"/captures/{capture_id}/disputes", json=options)

    def resolve_dispute(self, dispute_id: str, outcome: str) -> Any:
        return self.call("POST", f"/disputes/{dispute_id}/resolve", json={"outcome": outcome})

    def events(self) -> list[dict[str, Any]]:
        """The kit's event list: ``id``, ``type``, ``delivered``, ``attempts``."""
        events: list[dict[str, Any]] = self.call("GET", "/events")["data"]
        return events

    def transmission(self, event_id: str) -> tuple[bytes, dict[str, str]]:
        """A freshly signed transmission of ``event_id``: raw body and headers."""
        signed = self.call("POST", "/webhooks/transmissions", json={"event_id": event_id})
        return signed["body"].encode(), dict(signed["headers"])

    def last_transmission(self, event_type: str) -> tuple[bytes, dict[str, str]]:
        [event_id] = [e["id"] for e in self.events() if e["type"] == event_type][-1:]
        return self.transmission(event_id)

    def deliver(self, **options: Any) -> list[dict[str, Any]]:
        deliveries: list[dict[str, Any]] = self.call("POST", "/deliver", json=options)["deliveries"]
        return deliveries

    def fault(self, kind: str, operation: str | None = None, **details: Any) -> None:
        """Queue one of the kit's faults (``PayPalFault``) for ``operation``."""
        self.call("POST", "/faults", json={"kind": kind, "operation": operation, **details})

    def configure(self, **settings: Any) -> None:
        self.call("POST", "/config", json=settings)

    def revoke_tokens(self) -> None:
        self.call("POST", "/tokens/revoke")

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox's clock by ``seconds``, backwards too (the kit's clock is set to
        a time to go back, moved by ``advance_seconds`` only forwards)."""
        now: float = self.call("POST", "/clock", json={"advance_seconds": 0})["now"]
        self.call("POST", "/clock", json={"now": now + seconds})

    def calls(self, operation: str | None = None, **fields: Any) -> int:
        """How many logged calls (the kit's request log) match ``operation`` and ``fields``
        (e.g. ``path=…``, ``refused="invalid_token"``)."""
        wanted = {**fields, **({"operation": operation} if operation is not None else {})}
        return sum(
            all(entry.get(name) == value for name, value in wanted.items())
            for entry in self.call("GET", "/requests")
        )
