"""Event hooks: how plugins react to what core did, without core knowing the plugins.

Core calls these after the change is committed, in the process that made it: a change
rolled back is never announced. Each implementation is called on its own
(:func:`pixecom_core.events.announce`): one that raises is logged with its plugin's name and
counted in ``pixecom_event_hook_failures_total{hook, plugin}``, and the other plugins are
still called; the committed change stands. Implementations must be quick: queue slow work
(HTTP calls, e-mail) as a task instead.
"""

from pixecom_core.hookspecs import hookspec
from pixecom_core.providers import OrderStatusChange, PaymentEventRecord, StatsAggregationSummary


@hookspec
def pixecom_on_payment_event(event: PaymentEventRecord) -> None:
    """React to a payment event that was just recorded in the ledger.

    Called once per ledger row, after the transaction that wrote it committed; a webhook
    delivered twice is recorded once and so announced once.

    :param event: the recorded event: seller, order, gateway, kind, amount and currency.

    All implementations are called; results are ignored.
    """


@hookspec
def pixecom_on_order_status_changed(change: OrderStatusChange) -> None:
    """React to an order moving from one status to another.

    Called once per change, after the transaction that wrote it committed (payments moving
    an order, parcels moving it to ``SHIPPED`` or ``DELIVERED``).

    :param change: the seller, the order, the previous and new status, and why.

    All implementations are called; results are ignored.
    """


@hookspec
def pixecom_on_stats_aggregated(summary: StatsAggregationSummary) -> None:
    """React to a seller's daily stats being (re-)aggregated for a window of days.

    Numbers inside the window may have changed (restated spend, late refunds): refresh
    anything derived from them, such as cached dashboards or alerts.

    :param summary: the seller, the window of days and how many rows were written.

    All implementations are called; results are ignored.
    """
