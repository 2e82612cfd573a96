"""Provider hooks: how plugins offer ad networks, gateways, trackers, storage and sandboxes.

These hooks are for discovery only. Core calls each one once when it builds its
``ProviderRegistry`` and afterwards dispatches work to exactly one provider, chosen by its
``identifier`` (or a sandbox by its ``name``). Return instances, not classes; return an empty
list or nothing when the plugin has nothing of that kind.
"""

# mypy: disable-error-code="empty-body"
# Hook specifications are signatures with documentation; pluggy never runs their bodies.

from pixecom_core.hookspecs import hookspec
from pixecom_core.providers import (
    AdNetwork,
    CurrencyRateSource,
    PaymentGateway,
    Sandbox,
    Storage,
    Tracker,
)


@hookspec
def pixecom_register_ad_networks() -> list[AdNetwork]:
    """Return the ad networks this plugin provides.

    Each object implements :class:`pixecom_core.providers.AdNetwork`; core fetches daily
    insights through it for every seller account connected to that network. To let sellers
    connect their own accounts, the same object implements
    :class:`pixecom_core.providers.AdNetworkAuthorization` (the consent page and code
    exchange, or a pasted token; the accounts a grant reaches); to name campaigns, ad sets
    and ads on the dashboard, :class:`pixecom_core.providers.AdNetworkEntities`. The
    conformance kit checks both. To receive the sellers' purchases server-side (a
    conversions API, issue 17), it implements
    :class:`pixecom_core.providers.ConversionsDestination`: core sends each PAID order's
    ``Purchase`` once, after commit, with the order id as event id.

    All results collected: every plugin's list is concatenated, and two ad networks with the
    same ``identifier`` are refused when the registry is built.
    """


@hookspec
def pixecom_register_payment_gateways() -> list[PaymentGateway]:
    """Return the payment gateways this plugin provides.

    Each object implements :class:`pixecom_core.providers.PaymentGateway`; core creates
    payments and verifies and parses webhooks through the gateway whose ``identifier`` the
    seller chose.

    All results collected: every plugin's list is concatenated, and two gateways with the same
    ``identifier`` are refused when the registry is built.
    """


@hookspec
def pixecom_register_trackers() -> list[Tracker]:
    """Return the parcel trackers this plugin provides.

    Each object implements :class:`pixecom_core.providers.Tracker`; core registers shipped
    orders' tracking numbers with it and ingests the updates it reports.

    All results collected: every plugin's list is concatenated, and two trackers with the same
    ``identifier`` are refused when the registry is built.
    """


@hookspec
def pixecom_register_storage() -> list[Storage]:
    """Return the object stores this plugin provides.

    Each object implements :class:`pixecom_core.providers.Storage`; core presigns seller
    uploads with it and checks uploaded objects.

    All results collected: every plugin's list is concatenated, and two stores with the same
    ``identifier`` are refused when the registry is built.
    """


@hookspec
def pixecom_register_currency_rates() -> list[CurrencyRateSource]:
    """Return the currency-rate sources this plugin provides (issue 16).

    Each object implements :class:`pixecom_core.providers.CurrencyRateSource`; core loads
    daily reference rates from it (a scheduled load, ``pixecom fx backfill``) and converts
    every seller's spend and revenue into the seller's reporting currency with them. With
    several installed, ``PIXECOM_FX_SOURCE`` names the one to load from.

    All results collected: every plugin's list is concatenated, and two sources with the
    same ``identifier`` are refused when the registry is built.
    """


@hookspec
def pixecom_register_sandboxes() -> list[Sandbox]:
    """Return the sandboxes (fake external services) this plugin ships.

    Each :class:`pixecom_core.providers.Sandbox` names the provider it imitates and a factory
    of an ASGI app speaking that provider's wire format. The reference app serves them on
    loopback in dev mode and tests point the provider at them, without importing the plugin.

    All results collected: every plugin's list is concatenated, and two sandboxes with the same
    ``name`` are refused when the registry is built.
    """
