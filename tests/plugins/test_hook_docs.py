"""Every hook specification is documented in docs/plugin-hooks.md (as datasette checks)."""

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pixecom_core.hookspecs import events, providers
from pixecom_core.plugins import create_plugin_manager

DOC = Path(__file__).parents[2] / "docs" / "plugin-hooks.md"


def hookspecs() -> list[tuple[str, Callable[..., Any]]]:
    pm = create_plugin_manager(load_entry_points=False)
    return [
        (name, function)
        for module in (providers, events)
        for name, function in vars(module).items()
        if pm.parse_hookspec_opts(module, name) is not None
    ]


def section(name: str) -> str:
    text = DOC.read_text()
    match = re.search(rf"^### {name}\n(.*?)(?=^##|\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, f"docs/plugin-hooks.md has no '### {name}' section"
    return match.group(1)


def squash(text: str) -> str:
    return " ".join(text.replace("``", "`").split())


def test_every_spec_module_hook_is_found() -> None:
    assert len(hookspecs()) >= 8


@pytest.mark.parametrize(("name", "function"), hookspecs(), ids=lambda value: str(value)[:40])
def test_hook_is_documented(name: str, function: Callable[..., Any]) -> None:
    documented = section(name)
    signature = re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(inspect.signature(function)))
    docstring = inspect.getdoc(function) or ""

    assert f"{name}{signature}" in documented
    assert squash(docstring.split("\n\n")[0]) in squash(documented)
    for parameter in inspect.signature(function).parameters:
        assert f"`{parameter}`" in documented
        assert f":param {parameter}:" in docstring


@pytest.mark.parametrize(("name", "function"), hookspecs(), ids=lambda value: str(value)[:40])
def test_hook_docstring_says_how_results_combine(name: str, function: Callable[..., Any]) -> None:
    docstring = inspect.getdoc(function) or ""

    assert "All results collected" in docstring or "results are ignored" in docstring, name
