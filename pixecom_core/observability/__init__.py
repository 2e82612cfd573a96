"""Observability (issue 7): structured logs, Prometheus metrics, the slow-query watch.

- :mod:`.logging` — ``configure_logging(settings, process=...)``: JSON (or console) lines
  for structlog and stdlib records alike, with the request's or task's context.
- :mod:`.metrics` — per-process registries: HTTP latency, tasks, DB pool, queue depth,
  breaker states.
- :mod:`.sync_lag` — stats sync lag per seller tier, aggregates only.
- :mod:`.slow_queries` — statements running too long, from ``pg_stat_activity``.
"""

from pixecom_core.observability.logging import (
    bind_log_context,
    clear_log_context,
    configure_logging,
    log_context,
)

__all__ = ["bind_log_context", "clear_log_context", "configure_logging", "log_context"]
