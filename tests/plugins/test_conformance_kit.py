"""The conformance kit itself: it passes a correct ad network and fails a broken one.

Each case runs pytest in a subprocess (``pytester``) on a test module that subclasses
``AdNetworkConformance``, exactly as a third-party plugin's suite would, against the small
``tiktok`` plugin of ``tiktok_example.py`` and its sandbox on loopback. The subprocess has no
pytest configuration, so the kit also proves it runs in pytest-asyncio's strict mode.
"""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).with_name("tiktok_example.py")

SUITE = """
import tiktok_example
from pixecom_core.testing.conformance import AdNetworkConformance


class TestTikTokConformance(AdNetworkConformance):
    plugin = tiktok_example.TikTokPlugin(tiktok_example.NETWORK)
    identifier = "tiktok"
    sandbox_name = "tiktok"

    async def restate(self, sandbox, account_id, day):
        response = await sandbox.http.post("/_sandbox/restate", params={"day": day.isoformat()})
        assert response.status_code == 200
"""

#: Every test the kit runs for an ad network (the level and failure tests once per value).
KIT_TESTS = 19


def run_kit(pytester: pytest.Pytester, network: str) -> pytest.RunResult:
    pytester.makepyfile(tiktok_example=EXAMPLE.read_text(encoding="utf-8"))
    pytester.makepyfile(test_tiktok_conformance=SUITE.replace("NETWORK", network))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "-rf", "-o", "asyncio_default_fixture_loop_scope=function"
    )


def test_the_kit_passes_a_correct_ad_network(pytester: pytest.Pytester) -> None:
    result = run_kit(pytester, "TikTokAdNetwork")

    result.assert_outcomes(passed=KIT_TESTS)


def test_the_kit_fails_a_broken_ad_network_where_it_is_broken(
    pytester: pytest.Pytester,
) -> None:
    """An exclusive ``until`` and unclassified errors fail exactly the tests that check
    them; the rest of the contract still passes."""
    result = run_kit(pytester, "BrokenTikTokAdNetwork")

    failed = [
        # the extra day shows in every window...
        "test_insights_are_typed_rows_one_per_entity_and_day[[]campaign[]]",
        "test_insights_are_typed_rows_one_per_entity_and_day[[]adset[]]",
        "test_insights_are_typed_rows_one_per_entity_and_day[[]ad[]]",
        "test_a_window_is_the_days_it_names",
        # ...and a bare ProviderError tells core neither "wait" nor "retry" nor "reconnect"
        "test_failures_raise_core_error_classes[[]auth[]]",
        "test_failures_raise_core_error_classes[[]throttled[]]",
        "test_failures_raise_core_error_classes[[]transient[]]",
        # ...nor "connect again" for a token the network refused
        "test_a_used_code_another_redirect_or_a_bad_token_is_refused",
    ]
    result.assert_outcomes(passed=KIT_TESTS - len(failed), failed=len(failed))
    result.stdout.fnmatch_lines_random([f"FAILED *::TestTikTokConformance::{n}*" for n in failed])
