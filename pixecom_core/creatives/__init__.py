"""Creatives and the uploaded assets they use, as sellers manage them."""

from pixecom_core.creatives.services import (
    MAX_ASSETS_PER_CREATIVE,
    UNSET,
    AssetUsage,
    CreativeChanges,
    CreativeDetail,
    CreativeDraft,
    CreativeRemoval,
    CreativeService,
)

__all__ = [
    "MAX_ASSETS_PER_CREATIVE",
    "UNSET",
    "AssetUsage",
    "CreativeChanges",
    "CreativeDetail",
    "CreativeDraft",
    "CreativeRemoval",
    "CreativeService",
]
