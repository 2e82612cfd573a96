"""A missing deployment tool skips its tests, except where CI says the tools are there."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import REQUIRE_TOOLS_ENV, require_binary


def test_a_missing_tool_skips_with_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_TOOLS_ENV, raising=False)

    with pytest.raises(pytest.skip.Exception, match="apt-get install -y no-such-package"):
        require_binary("pixecom-no-such-tool", apt_package="no-such-package")


def test_a_missing_tool_fails_when_ci_requires_the_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_TOOLS_ENV, "1")

    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_TOOLS_ENV}=1 requires it"):
        require_binary("pixecom-no-such-tool", apt_package="no-such-package")


def test_an_installed_tool_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_TOOLS_ENV, "1")

    assert require_binary("sh", apt_package="dash").name == "sh"
