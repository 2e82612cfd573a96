"""Schemathesis over the OpenAPI document: no input makes the API answer 5xx.

Every operation gets generated requests, valid and invalid, sent as an authenticated
seller to the real app on a loopback port. Run with ``nox -s "api_fuzz(system)"``; the
number of examples per operation is ``PIXECOM_FUZZ_EXAMPLES`` (default 25).
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

schema = schemathesis.pytest.from_fixture("api_schema")

EXAMPLES = int(os.environ.get("PIXECOM_FUZZ_EXAMPLES", "25"))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_input_causes_a_server_error(
    case: schemathesis.Case[Any], api_base_url: str, seller_headers: dict[str, str]
) -> None:
    case.call_and_validate(
        base_url=api_base_url,
        headers=seller_headers,
        checks=[not_a_server_error, response_schema_conformance],
        timeout=30,
    )
