"""Structured logs: JSON lines with the request id and the seller (issue 7)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from asgi_lifespan import LifespanManager

from pixecom_core.observability import log_context
from pixecom_core.settings import LogFormat, Mode, Settings
from reference_app.api import create_app
from tests.app.conftest import NewSeller
from tests.observability.conftest import captured_logging


@pytest.fixture
def log_lines(settings: Settings) -> Iterator[io.StringIO]:
    """This process's logging, configured as the API's, written to a buffer; restored after."""
    json_settings = settings.model_copy(update={"log_format": LogFormat.JSON})
    with captured_logging(json_settings, "api") as buffer:
        yield buffer


def parsed(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Every line, parsed: a line that is not a JSON object fails the test."""
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert all(isinstance(record, dict) for record in records)
    return records


def requests_logged(records: list[dict[str, Any]], route: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == "request" and r.get("route") == route]


async def test_request_lines_carry_request_id_and_seller(
    log_lines: io.StringIO, api_client: httpx.AsyncClient, new_seller: NewSeller
) -> None:
    seller = await new_seller()
    given = "req " + uuid.uuid4().hex[:20]  # printable, spaces included: kept
    answer = await api_client.get("/orders", headers={**seller.headers, "X-Request-ID": given})
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == given

    records = parsed(log_lines)
    [line] = [r for r in requests_logged(records, "/orders") if r.get("request_id") == given]
    assert line["seller_id"] == str(seller.seller_id)
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["level"] == "info"
    assert line["process"] == "api"
    assert line["logger"] == "pixecom.access"
    assert line["duration_ms"] >= 0
    assert "timestamp" in line


async def test_no_seller_before_authentication_and_no_leak_between_requests(
    log_lines: io.StringIO, api_client: httpx.AsyncClient, new_seller: NewSeller
) -> None:
    seller = await new_seller()
    assert (await api_client.get("/orders", headers=seller.headers)).status_code == 200
    anonymous = await api_client.get("/healthz")
    refused = await api_client.get("/orders", headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401

    records = parsed(log_lines)
    [health] = requests_logged(records, "/healthz")
    assert "seller_id" not in health
    assert health["request_id"] == anonymous.headers["x-request-id"]
    refused_lines = [
        r
        for r in requests_logged(records, "/orders")
        if r["request_id"] == refused.headers["x-request-id"]
    ]
    assert refused_lines and all("seller_id" not in r for r in refused_lines)
    assert refused_lines[0]["status"] == 401
    # The error body quotes the same id as the header and the log line.
    assert refused.json()["error"]["request_id"] == refused.headers["x-request-id"]


async def test_an_unhandled_error_is_logged_as_json_with_its_request_id(
    log_lines: io.StringIO, app_settings: Settings
) -> None:
    app = create_app(app_settings)

    @app.get("/test-only/boom/{thing_id}")
    async def boom(thing_id: str) -> None:
        raise RuntimeError(f"broke on {thing_id}")

    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, raise_app_exceptions=False),
            base_url="http://pixecom.test",
        ) as client,
    ):
        answer = await client.get("/test-only/boom/1", headers={"X-Request-ID": "req-boom-1"})
        metrics = (await client.get("/metrics")).text
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "req-boom-1"
    records = parsed(log_lines)
    [line] = requests_logged(records, "/test-only/boom/{thing_id}")
    assert line["status"] == 500 and line["level"] == "error"
    assert line["request_id"] == "req-boom-1"
    # The traceback is logged once, as JSON, with the same request id.
    tracebacks = [r for r in records if "RuntimeError: broke on 1" in r.get("exception", "")]
    assert tracebacks and all(r["request_id"] == "req-boom-1" for r in tracebacks)
    assert (
        'pixecom_http_request_duration_seconds_count{method="GET",'
        'route="/test-only/boom/{thing_id}",status_class="5xx"} 1.0'
    ) in metrics


@pytest.mark.parametrize(
    "header",
    [
        "x" * 65,  # longer than an id needs to be
        "tab\tinside-0123456789",  # not printable
        "",
    ],
)
async def test_malformed_request_ids_are_replaced(
    log_lines: io.StringIO, api_client: httpx.AsyncClient, header: str
) -> None:
    answer = await api_client.get("/healthz", headers={b"X-Request-ID": header.encode("utf-8")})
    generated = answer.headers["x-request-id"]
    assert generated != header
    assert len(generated) == 32 and int(generated, 16) >= 0
    [line] = requests_logged(parsed(log_lines), "/healthz")
    assert line["request_id"] == generated


async def test_every_request_gets_a_distinct_id(api_client: httpx.AsyncClient) -> None:
    ids = {(await api_client.get("/healthz")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_stdlib_and_structlog_records_are_json(log_lines: io.StringIO) -> None:
    with log_context(task_name="pixecom.sync_seller", seller_id="s-1"):
        logging.getLogger("uvicorn.error").warning("server %s", "starting")
        structlog.get_logger("pixecom.test").info("structured", answer=42)
    logging.getLogger("pixecom.test").error("after the context")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("pixecom.test").exception("it failed")
    # uvicorn's access log is replaced by the middleware's request line.
    logging.getLogger("uvicorn.access").info("GET / 200")

    records = parsed(log_lines)
    uvicorn_line, structured, after, failed = records
    assert uvicorn_line["event"] == "server starting"
    assert uvicorn_line["logger"] == "uvicorn.error"
    assert uvicorn_line["level"] == "warning"
    assert uvicorn_line["task_name"] == "pixecom.sync_seller"
    assert structured["answer"] == 42 and structured["seller_id"] == "s-1"
    assert "seller_id" not in after and "task_name" not in after
    assert "ValueError: boom" in failed["exception"]
    assert len(records) == 4


def test_console_format_in_dev_mode(settings: Settings) -> None:
    dev = settings.model_copy(update={"mode": Mode.DEV})
    with captured_logging(dev, "dev") as buffer:
        logging.getLogger("pixecom.test").warning("for people")
    line = buffer.getvalue()
    assert "for people" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
