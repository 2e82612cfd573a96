"""``pixecom worker --queue NAME[:N]``: what it accepts, and that anything else ends with
exit status 2 and a message naming the bad value — before any connection is opened."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from reference_app.cli import app
from reference_app.worker.broker import Queue
from reference_app.worker.run import (
    QueueConcurrency,
    QueueSpecError,
    parse_queue_spec,
    parse_queue_specs,
)


def test_a_queue_alone_runs_the_default_number_of_tasks_at_once() -> None:
    assert parse_queue_spec("payments", 7) == QueueConcurrency(Queue.PAYMENTS, 7)


def test_several_queues_each_with_its_own_concurrency() -> None:
    assert parse_queue_specs(["payments:50", "stats-low:20, backfill", " tracking : 3"], 9) == [
        QueueConcurrency(Queue.PAYMENTS, 50),
        QueueConcurrency(Queue.STATS_LOW, 20),
        QueueConcurrency(Queue.BACKFILL, 9),
        QueueConcurrency(Queue.TRACKING, 3),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nosuch", "unknown queue 'nosuch'"),
        ("webhooks:20", "unknown queue 'webhooks'"),
        (":3", "unknown queue ''"),
        ("payments:0", "concurrency '0'"),
        ("payments:-1", "concurrency '-1'"),
        ("payments:x", "concurrency 'x'"),
        ("payments:", "concurrency ''"),
        ("payments:1.5", "concurrency '1.5'"),
        ("payments:²", "concurrency '²'"),
        ("payments,stats-low:2,payments:3", "queue 'payments' is named twice"),
        ("payments,", "empty queue name"),
    ],
)
def test_a_bad_value_is_refused_with_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(QueueSpecError, match=message):
        parse_queue_specs([value])


def test_no_queue_at_all_is_refused() -> None:
    with pytest.raises(QueueSpecError, match="at least one queue"):
        parse_queue_specs([])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--queue", "nosuch:2"], "unknown queue 'nosuch'"),
        (["--queue", "payments:0"], "not a whole number of at least 1"),
        (["--queue", "payments:many"], "not a whole number of at least 1"),
        (["--queue", "payments", "--queue", "payments:3"], "named twice"),
        (["--queue", "stats-low:2", "--max-tasks", "0"], "--max-tasks"),
    ],
)
def test_the_command_exits_2_with_the_message(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["worker", *arguments])
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.replace("│", " ").split())
    assert message in flat, result.output
    assert "--queue" in flat or "--max-tasks" in flat
