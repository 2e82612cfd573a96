"""Hook implementations of the Meta Ads plugin: the ``meta`` ad network and its sandbox."""

from collections.abc import Sequence

from pixecom_core import hookimpl
from pixecom_core.providers import (
    AdNetwork,
    ASGIApp,
    Sandbox,
    SimulatedAdAccount,
    SimulatedConditions,
)
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.client import MetaGraphClient, pacer_state_for
from pixecom_meta_ads.settings import SANDBOX_ENV_PREFIX, MetaAdsSettings


@hookimpl
def pixecom_register_ad_networks() -> list[AdNetwork]:
    """Offer the ``meta`` ad network, configured from ``PIXECOM_META_*``.

    Nothing needs to be set: every setting has a default and each seller's token comes with
    the call. Set ``PIXECOM_META_GRAPH_BASE`` to the sandbox's URL in dev mode. With the
    deployment's ``REDIS_URL`` set, every process paces each ad account from one state in
    Redis (:func:`~pixecom_meta_ads.client.pacer_state_for`); without it, from its own
    memory. The network's ``aclose`` closes that connection pool with the HTTP ones.
    """
    settings = MetaAdsSettings()
    client = MetaGraphClient(settings, pacer_state=pacer_state_for(settings))
    return [MetaAdNetwork(settings, client=client)]


def _create_sandbox_app() -> ASGIApp:
    # imported on demand: API and worker processes never serve the sandbox
    from pixecom_meta_ads.sandbox import create_sandbox_app

    return create_sandbox_app()


@hookimpl
def pixecom_register_sandboxes() -> list[Sandbox]:
    """Offer the ``meta`` sandbox: a fake Graph API with insights, rate-limit headers,
    errors and restated days on loopback (see :mod:`pixecom_meta_ads.sandbox`), configured
    from ``PIXECOM_META_SANDBOX_*``."""
    return [
        Sandbox(
            name="meta",
            provider="meta",
            create_app=_create_sandbox_app,
            environment=_dev_environment,
            # Two USD accounts (profiles of the sandbox), so the demo needs no FX rates.
            demo_accounts=("act_1000", "act_1001"),
            simulation_environment=_simulation_environment,
            simulation_accounts=_simulation_accounts,
            approve_consent=_approve_consent,
            demo_conversion_destination=_demo_pixel,
        )
    ]


async def _demo_pixel(sandbox_url: str) -> tuple[str, str]:  # noqa: ARG001
    """The pixel every reset of the sandbox keeps for the demo account, and its token."""
    from pixecom_meta_ads.sandbox_capi import DEMO_PIXEL_ID, DEMO_PIXEL_TOKEN

    return DEMO_PIXEL_ID, DEMO_PIXEL_TOKEN


async def _approve_consent(authorization_url: str) -> str:
    """The demo seller presses Continue on the sandbox's Facebook Login dialog with what it
    preselects: the first sandbox user, who reaches the demo accounts, and every permission
    asked."""
    from pixecom_core.testing.sandbox_kit import submit_consent

    return await submit_consent(authorization_url)


def _dev_environment(sandbox_url: str, api_url: str) -> dict[str, str]:  # noqa: ARG001
    """Point the ad network, Facebook Login's dialog and the sellpages' pixel library at the
    sandbox, as the sandbox's own Meta app (Meta sends no webhooks to the API), and let
    today's numbers grow through the day so the demo's spend changes between syncs. Pages
    then load the sandbox's stand-in for ``fbevents.js``, whose events the sandbox records
    (:mod:`pixecom_meta_ads.sandbox_pixel`): nothing is loaded from Meta."""
    from pixecom_meta_ads.sandbox_oauth import DEFAULT_APP_ID, DEFAULT_APP_SECRET
    from pixecom_meta_ads.sandbox_pixel import SCRIPT_PATH

    return {
        "PIXECOM_META_GRAPH_BASE": sandbox_url,
        "PIXECOM_META_DIALOG_BASE": sandbox_url,
        "PIXECOM_META_PIXEL_SCRIPT_URL": sandbox_url.rstrip("/") + SCRIPT_PATH,
        "PIXECOM_META_APP_ID": DEFAULT_APP_ID,
        "PIXECOM_META_APP_SECRET": DEFAULT_APP_SECRET,
        "PIXECOM_META_SANDBOX_TODAY_GROWS": "true",
    }


def _simulation_environment(conditions: SimulatedConditions) -> dict[str, str]:
    """The scenario's Graph latency and campaigns per account (``pixecom simulate``)."""
    environment = {f"{SANDBOX_ENV_PREFIX}LATENCY_SECONDS": str(conditions.latency_seconds)}
    if conditions.campaigns_per_account is not None:
        environment[f"{SANDBOX_ENV_PREFIX}CAMPAIGNS_PER_ACCOUNT"] = str(
            conditions.campaigns_per_account
        )
    return environment


def _simulation_accounts(count: int, currency: str) -> Sequence[SimulatedAdAccount]:
    """``count`` accounts of the first sandbox profile reporting in ``currency``.

    Account ``N`` has the profile ``ACCOUNT_PROFILES[N % len(ACCOUNT_PROFILES)]``, so
    every ``len(ACCOUNT_PROFILES)``-th account shares a currency and a time zone.
    """
    from pixecom_meta_ads.sandbox import ACCOUNT_PROFILES

    step = len(ACCOUNT_PROFILES)
    for offset, (profile_currency, timezone) in enumerate(ACCOUNT_PROFILES):
        if profile_currency == currency:
            return [
                SimulatedAdAccount(f"act_{step * (index + 1) + offset}", currency, timezone)
                for index in range(count)
            ]
    raise ValueError(f"the Meta sandbox has no account profile in {currency}")
