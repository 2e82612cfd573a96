"""The settings validators plugins share (pixecom_core.providers.settings_fields)."""

import pytest

from pixecom_core.providers.settings_fields import split_list, validate_http_base_url


@pytest.mark.parametrize(
    ("value", "cleaned"),
    [
        ("https://api.acme.test/", "https://api.acme.test"),
        ("http://127.0.0.1:8123/sandboxes/acme", "http://127.0.0.1:8123/sandboxes/acme"),
    ],
)
def test_base_url_accepted_without_trailing_slash(value: str, cleaned: str) -> None:
    assert validate_http_base_url(value, example="https://api.acme.test") == cleaned


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("api.acme.test", "such as https://api.acme.test"),
        ("ftp://api.acme.test", "http(s) URL"),
        ("https://", "http(s) URL"),
        ("https://api.acme.test/?key=1", "query or fragment"),
        ("https://api.acme.test/#top", "query or fragment"),
    ],
)
def test_base_url_refused_with_a_reason(value: str, said: str) -> None:
    with pytest.raises(ValueError, match=said.replace("(", r"\(").replace(")", r"\)")):
        validate_http_base_url(value, example="https://api.acme.test")


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("a, b,,c ", ["a", "b", "c"]),
        ('["a", "b,c"]', ["a", "b,c"]),
        ("", []),
        (" , ", []),
    ],
)
def test_split_list_from_the_environment(value: str, items: list[str]) -> None:
    assert split_list(value) == items


def test_split_list_leaves_non_strings_to_pydantic() -> None:
    given = ["x"]
    assert split_list(given) is given


def test_split_list_refuses_broken_json() -> None:
    with pytest.raises(ValueError):
        split_list('["a",')
