"""The OpenAPI document, made to describe what the API really answers.

FastAPI documents every 422 with its own ``HTTPValidationError`` schema, while this API
answers validation errors in its one error shape (:mod:`reference_app.api.errors`). The
generated document is corrected once, when first asked for: every 422 refers to
``ErrorResponse``, FastAPI's unused validation schemas are dropped, every operation that
needs a bearer token documents 401 and 429, one that takes a body documents 400 (an
unreadable body) and 413, and a list documents 400 for a foreign cursor.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from reference_app.api import health
from reference_app.api.errors import ErrorResponse
from reference_app.api.routes import ROUTERS

_CONVERTER = re.compile(r"\{(\w+):\w+\}")
_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_DESCRIPTIONS = {
    "400": "Malformed request: an unreadable body, or a cursor this list did not issue.",
    "401": "Missing, invalid or expired access token.",
    "413": "The request body is larger than this route accepts.",
    "422": "The request is not valid; `details` lists the fields.",
    "429": "Rate limited; retry after the `Retry-After` header's seconds.",
}


def _error(status: str) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _ERROR_REF}},
    }


def corrected_openapi(app: FastAPI) -> dict[str, Any]:
    """Build (once) and return the app's OpenAPI document with the error shape in it."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    # The app matches the busiest routers first (routes.MATCH_ORDER); the document keeps
    # listing paths in the routers' reading order (routes.ROUTERS).
    document["paths"] = _in_reading_order(document.get("paths", {}))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in error_schema.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas.setdefault("ErrorResponse", error_schema)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _error("422")
            takes_cursor = any(
                parameter.get("name") == "cursor" for parameter in operation.get("parameters", [])
            )
            if "requestBody" in operation or takes_cursor:
                responses.setdefault("400", _error("400"))
            if "requestBody" in operation:
                responses.setdefault("413", _error("413"))
            if operation.get("security"):
                responses.setdefault("401", _error("401"))
                responses.setdefault("429", _error("429"))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = document
    return document


def _in_reading_order(paths: dict[str, Any]) -> dict[str, Any]:
    reading = [
        # The document names a path parameter without its converter ({id:uuid} → {id}).
        _CONVERTER.sub(r"{\1}", route.path)
        for router in (health.router, *ROUTERS)
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
    rank = {path: index for index, path in reversed(list(enumerate(reading)))}
    position = {path: index for index, path in enumerate(paths)}
    ordered = sorted(paths, key=lambda path: (rank.get(path, len(reading)), position[path]))
    return {path: paths[path] for path in ordered}


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`corrected_openapi` as the app's document."""

    def openapi() -> dict[str, Any]:
        return corrected_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
