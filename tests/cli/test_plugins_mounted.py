"""`pixecom plugins` is the plugins listing from reference_app.cli_plugins, mounted."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

RunPixecom = Callable[..., subprocess.CompletedProcess[str]]


def test_plugins_lists_what_is_installed_as_json(run_pixecom: RunPixecom) -> None:
    result = run_pixecom("plugins", "--json")

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert isinstance(listed, list)
    assert all("name" in plugin for plugin in listed)
