"""``pixecom simulate`` finds its sandboxes by role through the ``Sandbox`` contract
(issue 13 item 6 (c)): no plugin is named in the app, so which sandbox plays which role,
and how the scenario tunes it, comes from what each sandbox offers."""

from __future__ import annotations

import pytest

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import SimulatedAdAccount, SimulatedConditions
from reference_app.simulate.deployment import (
    PluginMissingError,
    find_simulation_sandboxes,
    scenario_conditions,
)
from reference_app.simulate.scenarios import scenario

SIMULATED = {"meta_ads", "stripe", "tracking17"}


def _registry(allow: set[str]) -> ProviderRegistry:
    # The simulate session installs the simulated plugins: a missing one fails here.
    return ProviderRegistry(create_plugin_manager(allow=allow))


def test_each_role_is_filled_by_the_sandbox_that_offers_it() -> None:
    found = find_simulation_sandboxes(_registry(SIMULATED))

    assert found.ad_network.provider == "meta"
    # Stripe's sandbox offers simulation_payments, so it pays
    assert found.payment_gateway.provider == "stripe"
    assert found.tracker.provider == "17track"


def test_a_role_nobody_fills_is_named_with_what_to_install() -> None:
    # fakepay (the core tests' gateway) offers demo payments, not a simulation's
    with pytest.raises(PluginMissingError) as missing:
        find_simulation_sandboxes(_registry({"meta_ads"}))
    message = str(missing.value)
    assert "simulation_payments" in message and "a tracker's sandbox" in message
    assert "ad network" not in message
    assert "pip install" in message


def test_the_ad_network_sandbox_serves_accounts_in_the_asked_currency() -> None:
    sandbox = find_simulation_sandboxes(_registry(SIMULATED)).ad_network
    assert sandbox.simulation_accounts is not None

    accounts = sandbox.simulation_accounts(20, "USD")

    assert len({a.account_id for a in accounts}) == 20
    assert {(a.currency, a.timezone) for a in accounts} == {("USD", "Etc/GMT")}
    assert sandbox.simulation_accounts(3, "EUR")[0].currency == "EUR"
    with pytest.raises(ValueError, match="XXX"):
        sandbox.simulation_accounts(1, "XXX")


def test_the_scenario_tunes_each_sandbox_through_its_own_settings() -> None:
    sandboxes = find_simulation_sandboxes(_registry(SIMULATED)).by_role()
    conditions = scenario_conditions(scenario("C"))

    tuned = {
        role: dict(sandbox.simulation_environment(conditions[role]))
        for role, sandbox in sandboxes.items()
        if sandbox.simulation_environment is not None
    }

    ad_network = tuned["ad network"]
    assert "1.5" in ad_network.values() and "5" in ad_network.values()
    tracker = tuned["tracker"]
    assert "10.0" in tracker.values()  # slower than the tracker's 5 s timeout
    assert "0" in tracker.values()  # parcels stay still
    assert conditions["tracker"].latency_seconds > conditions["ad network"].latency_seconds


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"latency_seconds": -1.0}, "cannot answer early"),
        ({"campaigns_per_account": 0}, "has ads"),
    ],
)
def test_impossible_conditions_are_refused(arguments: dict[str, float], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        SimulatedConditions(**arguments)  # type: ignore[arg-type]


def test_ad_accounts_are_values() -> None:
    account = SimulatedAdAccount("act_8", "USD", "Etc/GMT")
    with pytest.raises(AttributeError):
        account.currency = "EUR"  # type: ignore[misc]
