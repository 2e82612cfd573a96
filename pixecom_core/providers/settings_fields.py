"""Validators for the fields every plugin's settings class has (issue 13 item 8).

Call them from a pydantic ``field_validator``: ``validate_http_base_url(value,
example=API_BASE)`` for a provider's base URL, and ``split_list(value)`` in a
``mode="before"`` validator for a list variable. ``split_list`` needs the field annotated
with ``pydantic_settings.NoDecode``, or pydantic-settings decodes the variable as JSON
before the validator sees it.
"""

import json
from typing import Any
from urllib.parse import urlsplit

__all__ = ["split_list", "validate_http_base_url"]


def validate_http_base_url(value: str, *, example: str) -> str:
    """``value`` without a trailing ``/`` if it is an http(s) URL that can prefix paths.

    :param value: the configured base URL (``https://api.example.com``, or a sandbox's
        ``http://127.0.0.1:<port>``, possibly with a path).
    :param example: the provider's real base URL, quoted in the error.
    :raises ValueError: (shown by pydantic with the variable's name) the scheme is not
        http(s), the host is missing, or the URL has a query or fragment, which would be
        lost or misplaced once paths are appended.
    """
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"must be an http(s) URL such as {example}, not {value!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"must not carry a query or fragment: {value!r}")
    return value.rstrip("/")


def split_list(value: Any) -> Any:
    """A list from an environment value: a JSON list (``'["a","b"]'``) or comma-separated
    (``a, b``); blank items are dropped. Anything but a string (a list passed in code, a
    default) is returned as it is, for pydantic to validate.

    :raises ValueError: the value starts with ``[`` but is not valid JSON.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value
