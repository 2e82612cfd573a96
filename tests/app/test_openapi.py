"""The OpenAPI document describes every operation, its models and its error shape."""

from __future__ import annotations

from typing import Any

import httpx

ERROR_REF = "#/components/schemas/ErrorResponse"
#: Probes answer their own report on 503 (load balancers read it), not the error shape.
OWN_ERROR_BODIES = {"/readyz"}
#: Prometheus scrapes its text exposition format, not JSON.
TEXT_BODIES = {"/metrics": "text/plain"}
#: Where a browser lands and is sent on: success is a redirect, with no body.
REDIRECTS = {
    "/ad-accounts/connections/callback": "303",
    "/payments/connections/callback": "303",
}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


async def test_every_operation_is_documented_with_models(api_client: httpx.AsyncClient) -> None:
    document = (await api_client.get("/openapi.json")).json()

    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), f"{where} has no summary"
        successes = {code: r for code, r in operation["responses"].items() if code[0] == "2"}
        if path in REDIRECTS:
            assert not successes and REDIRECTS[path] in operation["responses"], where
            continue
        assert successes, f"{where} documents no success response"
        for code, response in successes.items():
            if code != "204":
                media_type = TEXT_BODIES.get(path, "application/json")
                assert response["content"][media_type]["schema"], where


async def test_errors_are_documented_in_the_one_error_shape(
    api_client: httpx.AsyncClient,
) -> None:
    document = (await api_client.get("/openapi.json")).json()

    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        for code, response in operation["responses"].items():
            if code[0] in "45" and path not in OWN_ERROR_BODIES:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, f"{where} {code}: {schema}"
        if operation.get("security"):
            assert "401" in operation["responses"], f"{where} needs a token but documents no 401"
