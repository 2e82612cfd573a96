"""The stats pipeline: raw ingest, latest-snapshot daily rows, sellpage earnings."""

from pixecom_core.stats.aggregate import (
    SellpageAggregation,
    aggregate_daily,
    aggregate_sellpages,
    dirty_days,
    lock_sellpage_aggregation,
    refresh_dirty_days,
    zero_unreported,
)
from pixecom_core.stats.ingest import IngestReport, ingest_raw

__all__ = [
    "IngestReport",
    "SellpageAggregation",
    "aggregate_daily",
    "aggregate_sellpages",
    "dirty_days",
    "ingest_raw",
    "lock_sellpage_aggregation",
    "refresh_dirty_days",
    "zero_unreported",
]
