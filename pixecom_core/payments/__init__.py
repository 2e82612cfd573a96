"""Sellers' own payment-gateway accounts (issue 15 item 1)."""

from pixecom_core.payments.connections import (
    PaymentConnectionRequired,
    PaymentConnections,
)

__all__ = ["PaymentConnectionRequired", "PaymentConnections"]
