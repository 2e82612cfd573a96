"""The dashboard's files: served by the app itself (no CDN), under a strict CSP, with no
inline script, and with the server's own currency exponents."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import httpx

from pixecom_core.stats.currency import DEFAULT_EXPONENT, NON_DEFAULT_EXPONENTS
from reference_app.dashboard import CONTENT_SECURITY_POLICY, STATIC_DIRECTORY


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, _tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


async def test_the_shell_is_served_with_a_strict_policy(api_client: httpx.AsyncClient) -> None:
    redirect = await api_client.get("/dashboard")
    shell = await api_client.get("/dashboard/")

    assert redirect.status_code in (307, 308) and redirect.headers["location"].endswith(
        "/dashboard/"
    )
    assert shell.status_code == 200
    assert shell.headers["content-type"].startswith("text/html")
    assert shell.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (
        "script-src 'self';" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    )
    assert shell.headers["x-frame-options"] == "DENY"
    assert shell.headers["x-content-type-options"] == "nosniff"
    parsed = _Tags()
    parsed.feed(shell.text)
    assert not parsed.inline_script
    assert not any(name.startswith("on") for _, attrs in parsed.tags for name in attrs)
    # Every asset the shell names is the app's own, and is served.
    for tag, attrs in parsed.tags:
        reference = attrs.get("src") or (attrs.get("href") if tag == "link" else None)
        if not reference or reference.startswith(("data:", "#")):
            continue
        assert "//" not in reference, f"external asset {reference}"
        asset = await api_client.get(f"/dashboard/{reference}")
        assert asset.status_code == 200, reference
        assert asset.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


async def test_no_script_loads_anything_from_elsewhere(api_client: httpx.AsyncClient) -> None:
    scripts = sorted((STATIC_DIRECTORY / "js").glob("*.js"))
    assert len(scripts) >= 6
    for script in scripts:
        source = script.read_text()
        assert not re.search(r"https?://", source.replace("http://www.w3.org/2000/svg", "")), script
        code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))
        assert not re.search(r"\.(inner|outer)HTML|insertAdjacentHTML|\beval\(", code), script
        for module in re.findall(r'from "\./([^"]+)"', source):
            served = await api_client.get(f"/dashboard/js/{module}")
            assert served.status_code == 200, (script.name, module)
            assert served.headers["content-type"].startswith("text/javascript")


async def test_currency_exponents_are_the_servers(api_client: httpx.AsyncClient) -> None:
    module = await api_client.get("/dashboard/js/currency-exponents.js")

    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")
    default = re.search(r"DEFAULT_EXPONENT = (\d+);", module.text)
    table = re.search(r"Object\.freeze\((\{.*\})\)", module.text)
    assert default and int(default.group(1)) == DEFAULT_EXPONENT
    assert table and json.loads(table.group(1)) == NON_DEFAULT_EXPONENTS
    assert json.loads(table.group(1))["JPY"] == 0 and json.loads(table.group(1))["KWD"] == 3


async def test_nothing_outside_the_static_directory_is_served(
    api_client: httpx.AsyncClient,
) -> None:
    for path in (
        "/dashboard/../pyproject.toml",
        "/dashboard/%2e%2e/__init__.py",
        "/dashboard/..%2f__init__.py",
        "/dashboard/js/missing.js",
    ):
        answer = await api_client.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert "import " not in answer.text
    # The dashboard is not an API: it is not in the OpenAPI document.
    paths = (await api_client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/dashboard")]


async def test_the_consent_flows_return_address_opens_the_chooser(
    api_client: httpx.AsyncClient,
) -> None:
    connection = "3f2b1c4d-0000-4000-8000-00000000abcd"

    chooser = await api_client.get(f"/dashboard/ad-accounts?connection={connection}")
    # Anything but a connection id is dropped: the shell never echoes text from the URL.
    tampered = await api_client.get("/dashboard/ad-accounts?connection=%3Cscript%3E")
    bare = await api_client.get("/dashboard/ad-accounts")

    assert chooser.status_code == 303
    assert chooser.headers["location"] == f"/dashboard/#/ad-accounts?connection={connection}"
    assert chooser.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert tampered.status_code == bare.status_code == 303
    assert tampered.headers["location"] == bare.headers["location"] == "/dashboard/#/ad-accounts"
    # A refused flow comes back with its error code; anything else in `error` is dropped.
    refused = await api_client.get("/dashboard/ad-accounts?error=access_denied")
    odd = await api_client.get("/dashboard/ad-accounts?error=%3Cb%3Ehi")
    assert refused.headers["location"] == "/dashboard/#/ad-accounts?error=access_denied"
    assert odd.headers["location"] == "/dashboard/#/ad-accounts"
