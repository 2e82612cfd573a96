"""Schemathesis over the OpenAPI document: the API answers what its document says.

Every operation gets generated requests, valid and invalid, sent as an authenticated
seller to the real app on a loopback port, and every answer goes through all of
schemathesis's checks (issue 12 item 7), not only "no 5xx": the status code and content
type are documented, the body matches its schema, invalid input is refused and valid
input accepted, a missing token is refused, a method the path lacks gets 405 with a
complete ``Allow``. Run with ``nox -s "api_fuzz(system)"``; the examples per operation
are ``PIXECOM_FUZZ_EXAMPLES`` (default in ``conftest.py``), the seed
``PIXECOM_FUZZ_SEED``.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from tests.api_fuzz.conftest import EXAMPLES

schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_answers_as_documented(
    case: schemathesis.Case[Any], api_base_url: str, seller_headers: dict[str, str]
) -> None:
    # No `checks=`: every built-in check the schema's configuration enables, which is all.
    case.call_and_validate(base_url=api_base_url, headers=seller_headers, timeout=30)
