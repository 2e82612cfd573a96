"""Failures as core's error classes: an unreachable or failing site is
``ProviderUnavailable``, a throttle ``ProviderThrottled``, a malformed, cut-off or DTD-bearing
file ``ProviderTransientError``, a wrong address a plain ``ProviderError``."""

import socket
from datetime import date, timedelta

import pytest
from ecb_support import FRIDAY, MakeSource, SandboxHandle
from pixecom_ecb_rates.source import EcbRateSource

from pixecom_core.providers import (
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
    ProviderUnavailable,
)


async def fetch_error(source: EcbRateSource, since: date = FRIDAY) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        await source.fetch_rates(since, since + timedelta(days=2))
    return raised.value


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"kind": "malformed"}, "not a readable reference-rates file"),
        ({"kind": "truncated"}, "cut off"),
        ({"kind": "doctype"}, "DOCTYPE"),
    ],
    ids=["not-xml", "cut-off", "doctype"],
)
async def test_an_unreadable_file_is_a_transient_error(
    source: EcbRateSource, sandbox: SandboxHandle, fault: dict[str, str], reason: str
) -> None:
    await sandbox.fault(**fault)

    error = await fetch_error(source)

    assert type(error) is ProviderTransientError
    assert reason in str(error)
    assert error.provider == "ecb"


async def test_a_cut_off_history_file_is_a_transient_error(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("truncated", operation="hist")

    error = await fetch_error(source, since=date(2025, 7, 1))

    assert type(error) is ProviderTransientError
    assert "eurofxref-hist.xml" in str(error)
    assert await sandbox.requested_paths() == ["eurofxref-daily.xml", "eurofxref-hist.xml"]


@pytest.mark.parametrize(
    "fault",
    [{"kind": "transient"}, {"kind": "server_error"}, {"kind": "server_error", "status": 500}],
    ids=["503", "502-page", "500"],
)
async def test_a_server_error_makes_the_ecb_unavailable(
    source: EcbRateSource, sandbox: SandboxHandle, fault: dict[str, object]
) -> None:
    await sandbox.fault(**fault)  # type: ignore[arg-type]

    error = await fetch_error(source)

    assert type(error) is ProviderUnavailable
    assert "answered HTTP 5" in str(error)


async def test_a_timeout_makes_the_ecb_unavailable(
    make_source: MakeSource, sandbox: SandboxHandle
) -> None:
    await sandbox.configure(latency_seconds=1.0)
    source = await make_source(timeout_seconds=0.3)

    error = await fetch_error(source)

    assert type(error) is ProviderUnavailable
    assert "did not answer GET eurofxref-daily.xml within 0.3 s" in str(error)
    assert "PIXECOM_ECB_TIMEOUT_SECONDS" in str(error)


async def test_a_hung_call_makes_the_ecb_unavailable(
    make_source: MakeSource, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("hang", hang_seconds=2)
    source = await make_source(timeout_seconds=0.3)

    assert type(await fetch_error(source)) is ProviderUnavailable


async def test_a_refused_connection_makes_the_ecb_unavailable(make_source: MakeSource) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    source = await make_source(base_url=f"http://127.0.0.1:{port}/stats/eurofxref")

    error = await fetch_error(source)

    assert type(error) is ProviderUnavailable
    assert f"could not reach the ECB at http://127.0.0.1:{port}" in str(error)


async def test_a_throttle_names_the_wait(source: EcbRateSource, sandbox: SandboxHandle) -> None:
    await sandbox.fault("throttled", retry_after_seconds=7)
    await sandbox.fault("throttled")

    named = await fetch_error(source)
    unnamed = await fetch_error(source)

    assert isinstance(named, ProviderThrottled) and named.retry_after_seconds == 7
    assert isinstance(unnamed, ProviderThrottled) and unnamed.retry_after_seconds == 60


@pytest.mark.parametrize("fault", [{"kind": "auth"}, {"kind": "transient", "status": 404}])
async def test_another_status_names_the_base_url_setting(
    source: EcbRateSource, sandbox: SandboxHandle, fault: dict[str, object]
) -> None:
    await sandbox.fault(**fault)  # type: ignore[arg-type]

    error = await fetch_error(source)

    assert type(error) is ProviderError
    assert "PIXECOM_ECB_BASE_URL" in str(error)


async def test_a_wrong_base_url_names_the_setting(
    make_source: MakeSource, sandbox: SandboxHandle
) -> None:
    source = await make_source(base_url=f"{sandbox.url}/stats/wrong-folder")

    error = await fetch_error(source)

    assert type(error) is ProviderError
    assert "HTTP 404" in str(error) and "PIXECOM_ECB_BASE_URL" in str(error)


async def test_a_body_larger_than_the_limit_is_not_read(make_source: MakeSource) -> None:
    source = await make_source(max_body_bytes=500)

    error = await fetch_error(source)

    assert type(error) is ProviderTransientError
    assert "larger than 500 bytes" in str(error)


async def test_an_empty_daily_file_is_a_transient_error(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    await sandbox.configure(history_starts_on="2026-03-23")  # nothing published yet

    error = await fetch_error(source)

    assert type(error) is ProviderTransientError
    assert "lists no publication" in str(error)


async def test_the_source_works_again_once_the_fault_is_used_up(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("transient", times=2)

    for _ in range(2):
        assert type(await fetch_error(source)) is ProviderUnavailable
    answer = await source.fetch_rates(FRIDAY, FRIDAY)

    assert [p.published_on for p in answer.publications] == [FRIDAY]
