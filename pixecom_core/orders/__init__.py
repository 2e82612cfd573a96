"""Orders as sellers read them: filtered, newest-first lists, one order, its history."""

from pixecom_core.orders.services import OrderService

__all__ = ["OrderService"]
