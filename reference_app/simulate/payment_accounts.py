"""Every simulated seller connects its own account at the simulated payment gateway.

Issue 15 item 5: checkout charges only a seller's own account, so before any load each
generated seller goes through the gateway's connect flow the way a seller does — a
connection started, the sandbox's consent page approved (:attr:`Sandbox.approve_consent`
plays the seller's browser), the callback's code exchanged — each seller getting an account
of its own, so every run routes payments and webhooks per account. A gateway whose sellers
do not connect accounts is left alone.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.payments import PaymentConnections
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import PaymentConnectionKind, PaymentGatewayConnections, Sandbox
from pixecom_core.settings import Settings
from pixecom_core.tenancy import SellerContext
from reference_app.demo_activity import connect_through_consent

#: Consent flows in flight at once (each a few sandbox calls and three short transactions).
CONCURRENCY = 8


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in this process's environment for the block: the plugins read their
    settings (the sandbox's URLs and keys) from it, as the deployment's processes do."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def connect_payment_accounts(
    settings: Settings,
    environment: Mapping[str, str],
    sandbox: Sandbox,
    seller_ids: Sequence[uuid.UUID],
    *,
    api_url: str,
    say: Callable[[str], None],
) -> int:
    """Connect an own account at ``sandbox``'s gateway for each seller; return how many.

    :param environment: the deployment processes' environment (plugin settings).
    :param api_url: the API's base URL, which the consent page redirects to.
    """
    if sandbox.approve_consent is None:
        return 0
    approve = sandbox.approve_consent
    with _environment(environment):
        registry = ProviderRegistry(create_plugin_manager())
        gateway = registry.payment_gateway(sandbox.provider)
        if not (
            isinstance(gateway, PaymentGatewayConnections)
            and gateway.connection_kind is PaymentConnectionKind.OAUTH
        ):
            return 0
        engine = create_engine(settings, role="app", application_name="pixecom-simulate")
        try:
            sessions = create_sessionmaker(engine)
            connections = PaymentConnections.for_settings(sessions, settings, registry)
            slots = asyncio.Semaphore(CONCURRENCY)

            async def connect(seller_id: uuid.UUID) -> None:
                async with slots:
                    seller = SellerContext(
                        seller_id=seller_id, sessions=sessions, settings=settings
                    )
                    await connect_through_consent(
                        connections, seller, gateway.identifier, approve, api_url.rstrip("/")
                    )

            await asyncio.gather(*(connect(seller_id) for seller_id in seller_ids))
        finally:
            await engine.dispose()
    say(f"{len(seller_ids)} sellers connected their own {gateway.identifier} accounts")
    return len(seller_ids)
