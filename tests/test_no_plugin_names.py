"""Core and the reference app name no plugin in their code (issue 13 item 6).

Providers are found through hooks and chosen by identifier, so nothing in
``pixecom_core/`` or ``reference_app/`` may depend on one plugin being installed: no
plugin identifier in a string literal (a default, SQL, a URL), no provider-specific
header, endpoint or secret prefix, no name built from one. Prose is not code: docstrings
and comments may name a provider as an example ("a gateway such as Stripe"), so the scan
reads the syntax tree and leaves docstrings and comments out.
"""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("pixecom_core", "reference_app")

#: The plugins in ``plugins/`` by identifier, package and vendor, and the vendors' own
#: wire names (signature headers, secret prefixes, API hosts).
PLUGIN_NAMES = re.compile(
    r"stripe|paypal|17track|tracking17|facebook|whsec|ecb_rates|eurofxref|"
    r"(?<![a-z0-9])r2(?![a-z0-9])|(?<![a-z])meta(?![a-z])|(?<![a-z])fb_",
    re.IGNORECASE,
)

#: Names that contain a plugin name by accident, and whose names they are.
INNOCENT_WORDS: dict[str, str] = {
    "remove_processors_meta": "structlog's ProcessorFormatter argument",
}

#: Files allowed to name plugins for now, each with the follow-up that removes it.
#: Empty is the goal: add one only with the reason its plugin names cannot go yet.
ALLOWED_FILES: dict[str, str] = {}


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of string constants that are docstrings or other bare string statements."""
    prose: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            prose.add(id(node.value))
    return prose


def _names_in_code(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every identifier and string literal that is code, not prose."""
    prose = _docstrings(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in prose:
                yield line, node.value
        elif isinstance(node, ast.Name):
            yield line, node.id
        elif isinstance(node, ast.Attribute):
            yield line, node.attr
        elif isinstance(node, ast.arg):
            yield line, node.arg
        elif isinstance(node, ast.keyword) and node.arg:
            yield line, node.arg
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield line, node.name
        elif isinstance(node, ast.alias):
            yield line, node.asname or node.name


def _hits() -> list[str]:
    found: list[str] = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in ALLOWED_FILES:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
            for line, text in _names_in_code(tree):
                if text in INNOCENT_WORDS:
                    continue
                for match in PLUGIN_NAMES.finditer(text):
                    found.append(f"{relative}:{line}: {match.group(0)!r} in {text[:80]!r}")
    return sorted(set(found))


def test_core_and_app_code_name_no_plugin() -> None:
    """Every plugin-specific name in core or app code is a dependency on one plugin."""
    hits = _hits()
    assert not hits, "plugin names in core/app code:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("SQL = \"WHERE gateway = 'stripe'\"", True),
        ('tracking_provider: str = "17track"', True),
        ('PREFIXES = ("PayPal-", "x-")', True),
        ("meta_latency_seconds = 1.5", True),
        ('URL = "/_sandbox/payment_intents/succeed"; whsec = 1', True),
        ('def f():\n    """A gateway such as Stripe."""\n    metadata = {"r2d2": 1}', False),
        ("# Meta omits rows\nmetrics = 1", False),
    ],
)
def test_the_scan_reads_code_not_prose(source: str, caught: bool) -> None:
    """The scan catches literals and names, and leaves docstrings, comments and words that
    merely contain a short identifier (``metadata``, ``metrics``) alone."""
    tree = ast.parse(source)
    matched = any(PLUGIN_NAMES.search(text) for _, text in _names_in_code(tree))
    assert matched is caught
