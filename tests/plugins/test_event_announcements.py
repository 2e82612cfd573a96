"""Event hooks are announced one implementation at a time: a raising plugin silences none."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from pixecom_core import hookimpl
from pixecom_core.events import announce, count_hook_failures
from pixecom_core.observability.metrics import HttpMetrics, TaskMetrics
from pixecom_core.plugins import create_plugin_manager
from pixecom_core.providers import OrderStatusChange

CHANGE = OrderStatusChange(
    seller_id=uuid.uuid4(),
    order_id=uuid.uuid4(),
    previous_status="PENDING",
    new_status="PAID",
    changed_at=datetime.now(UTC),
    reason="payment facts recorded",
)


class Recorder:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.changes: list[OrderStatusChange] = []

    @hookimpl
    def pixecom_on_order_status_changed(self, change: OrderStatusChange) -> None:
        self.calls.append("recorder")
        self.changes.append(change)


class Raising:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    @hookimpl(tryfirst=True)
    def pixecom_on_order_status_changed(self, change: OrderStatusChange) -> None:
        self.calls.append("raising")
        raise RuntimeError(f"broken listener for {change.order_id}")


def failures(registry: CollectorRegistry, plugin: str) -> float | None:
    return registry.get_sample_value(
        "pixecom_event_hook_failures_total",
        {"hook": "pixecom_on_order_status_changed", "plugin": plugin},
    )


def test_a_raising_plugin_does_not_silence_the_next_one_and_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    recorder = Recorder(calls)
    pm = create_plugin_manager(load_entry_points=False, plugins=[recorder])
    pm.register(Raising(calls), name="broken-listener")
    metrics = CollectorRegistry()
    count_hook_failures(metrics)

    with caplog.at_level(logging.ERROR, logger="pixecom_core.events"):
        failed = announce(pm, "pixecom_on_order_status_changed", change=CHANGE)

    assert calls == ["raising", "recorder"]  # the raising one really ran first
    assert recorder.changes == [CHANGE]
    assert failed == 1
    assert failures(metrics, "broken-listener") == 1.0
    [record] = caplog.records
    assert "broken-listener" in record.getMessage()
    assert "pixecom_on_order_status_changed" in record.getMessage()
    assert record.exc_info is not None and "broken listener" in str(record.exc_info[1])


def test_pluggys_own_call_would_have_silenced_the_recorder() -> None:
    """Why announce() exists: pluggy stops at the first implementation that raises."""
    calls: list[str] = []
    recorder = Recorder(calls)
    pm = create_plugin_manager(load_entry_points=False, plugins=[recorder, Raising(calls)])

    with pytest.raises(RuntimeError):
        pm.hook.pixecom_on_order_status_changed(change=CHANGE)

    assert recorder.changes == []


def test_each_failure_counts_again_and_no_failure_counts_nothing() -> None:
    calls: list[str] = []
    pm = create_plugin_manager(load_entry_points=False, plugins=[Recorder(calls)])
    metrics = CollectorRegistry()
    count_hook_failures(metrics)

    assert announce(pm, "pixecom_on_order_status_changed", change=CHANGE) == 0
    assert failures(metrics, "broken-listener") is None

    pm.register(Raising(calls), name="broken-listener")
    announce(pm, "pixecom_on_order_status_changed", change=CHANGE)
    announce(pm, "pixecom_on_order_status_changed", change=CHANGE)

    assert failures(metrics, "broken-listener") == 2.0


def test_implementations_receive_only_the_arguments_they_name() -> None:
    received: list[str] = []

    class Minimal:
        @hookimpl
        def pixecom_on_order_status_changed(self) -> None:
            received.append("called without arguments")

    pm = create_plugin_manager(load_entry_points=False, plugins=[Minimal()])

    assert announce(pm, "pixecom_on_order_status_changed", change=CHANGE) == 0
    assert received == ["called without arguments"]


def test_without_a_manager_nothing_is_announced_and_a_misspelt_hook_fails_loudly() -> None:
    assert announce(None, "pixecom_on_order_status_changed", change=CHANGE) == 0

    pm = create_plugin_manager(load_entry_points=False)
    with pytest.raises(AttributeError):
        announce(pm, "pixecom_on_order_status_change", change=CHANGE)


@pytest.mark.parametrize("metrics_of", [HttpMetrics, TaskMetrics])
def test_the_api_and_the_worker_expose_event_hook_failures(
    metrics_of: Callable[[CollectorRegistry], object],
) -> None:
    calls: list[str] = []
    pm = create_plugin_manager(load_entry_points=False, plugins=[Recorder(calls)])
    pm.register(Raising(calls), name="broken-listener")
    metrics = CollectorRegistry()
    metrics_of(metrics)

    announce(pm, "pixecom_on_order_status_changed", change=CHANGE)

    assert failures(metrics, "broken-listener") == 1.0
