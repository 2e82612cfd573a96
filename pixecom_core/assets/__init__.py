"""The asset registry: checked uploads to object storage, deduplicated per seller."""

from pixecom_core.assets.registry import AssetRegistry, UploadTicket, storage_key
from pixecom_core.assets.sniff import ALLOWED_CONTENT_TYPES, sniff

__all__ = ["ALLOWED_CONTENT_TYPES", "AssetRegistry", "UploadTicket", "sniff", "storage_key"]
