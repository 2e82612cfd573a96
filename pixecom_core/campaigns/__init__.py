"""The campaign hierarchy as sellers see it: campaigns, ad sets, ads, sellpage links."""

from pixecom_core.campaigns.services import CampaignService

__all__ = ["CampaignService"]
