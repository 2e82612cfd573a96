"""Parcel tracking of orders through a tracker plugin, behind its circuit breaker."""

from pixecom_core.tracking.service import (
    RefreshResult,
    TrackingRecordView,
    TrackingService,
    parse_tag,
    tag_for,
)

__all__ = ["RefreshResult", "TrackingRecordView", "TrackingService", "parse_tag", "tag_for"]
