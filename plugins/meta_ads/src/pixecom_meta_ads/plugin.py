"""Hook implementations of the Meta Ads plugin."""

from pixecom_core import hookimpl
from pixecom_core.providers import AdNetwork
from pixecom_meta_ads.ad_network import MetaAdNetwork


@hookimpl
def pixecom_register_ad_networks() -> list[AdNetwork]:
    """Offer the ``meta`` ad network."""
    return [MetaAdNetwork()]
