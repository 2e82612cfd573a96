"""The conformance kit against the ECB plugin: discovered through its hooks, served as
``pixecom dev`` serves it (with the sandbox's clock fixed), driven through the sandbox's
control API."""

from datetime import date, timedelta

import pixecom_ecb_rates.plugin
from ecb_support import FRIDAY, HISTORY_STARTS_ON

from pixecom_core.testing.conformance import CurrencyRateConformance


class TestEcbConformance(CurrencyRateConformance):
    plugin = pixecom_ecb_rates.plugin
    identifier = "ecb"
    sandbox_name = "ecb"
    # never today's real date: the sandbox's Friday, published, and a short history
    environment = {
        "PIXECOM_ECB_SANDBOX_TODAY": FRIDAY.isoformat(),
        "PIXECOM_ECB_SANDBOX_TODAY_PUBLISHED": "true",
        "PIXECOM_ECB_SANDBOX_HISTORY_STARTS_ON": HISTORY_STARTS_ON.isoformat(),
    }

    def reference_range(self) -> tuple[date, date]:
        # two weeks with two weekends, ending a week before the sandbox's latest publication
        return FRIDAY - timedelta(days=20), FRIDAY - timedelta(days=7)
