"""Resilience around external providers: circuit breakers shared by every process."""

from pixecom_core.resilience.breaker import ProviderBreakers

__all__ = ["ProviderBreakers"]
