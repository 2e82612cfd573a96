"""Check that a settings class reads every secret from a file, for plugin test suites.

Production keeps secrets out of the environment (:mod:`pixecom_core.secret_files`): each
secret setting may come from ``<VARIABLE>_FILE`` or a systemd credential. A plugin whose
settings class builds on :class:`~pixecom_core.secret_files.SettingsWithSecretFiles` gets
that for free; :func:`check_secrets_read_from_files` proves it for every secret field, so
a secret added later is covered without another test::

    def test_secrets_can_be_read_from_files(monkeypatch, tmp_path):
        check_secrets_read_from_files(StripeSettings, monkeypatch, tmp_path)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from pixecom_core.secret_files import SecretFileSource, SettingsWithSecretFiles, environment_names


def check_secrets_read_from_files(
    settings_cls: type[SettingsWithSecretFiles],
    monkeypatch: pytest.MonkeyPatch,
    directory: Path,
) -> list[str]:
    """Give every secret setting of ``settings_cls`` through ``<VARIABLE>_FILE`` (a file in
    ``directory``, with a trailing newline) and assert the settings read each value back;
    return the variables checked. Fails when the class has no secret setting at all."""
    source = SecretFileSource(settings_cls, settings_cls.secret_fields())
    expected: dict[str, str] = {}
    for name, field in settings_cls.model_fields.items():
        if not source.is_secret(name, field):
            continue
        variable = environment_names(settings_cls, name, field)[0]
        value = f"{name}-read-from-a-file"
        path = directory / variable
        path.write_text(value + "\n", encoding="utf-8")
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv(variable + "_FILE", str(path))
        expected[name] = value
    assert expected, f"{settings_cls.__name__} has no secret setting to read from a file"
    settings = settings_cls()
    for name, value in expected.items():
        read = getattr(settings, name)
        values = read if isinstance(read, list) else [read]
        plain = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in values]
        assert plain == [value], f"{name}: read {plain!r} from its file, expected [{value!r}]"
    return [environment_names(settings_cls, n, settings_cls.model_fields[n])[0] for n in expected]
