"""Settings read from files, so production keeps its secrets out of the environment.

An environment is easy to leak: every child process inherits it, ``/proc/<pid>/environ``
shows it, crash reporters and debug pages print it. Two ways keep a secret in a file
instead, read once when the settings are built:

- ``<VARIABLE>_FILE=/path``, for every secret setting (Docker's and Compose's
  convention): ``PIXECOM_JWT_SIGNING_KEYS_FILE=/run/secrets/jwt`` reads
  ``PIXECOM_JWT_SIGNING_KEYS`` from that file, trailing newline stripped. A missing,
  unreadable or empty file is an error naming the variable.
- systemd credentials: a unit with
  ``LoadCredential=PIXECOM_JWT_SIGNING_KEYS:/etc/pixecom/credentials/PIXECOM_JWT_SIGNING_KEYS``
  finds the file in ``$CREDENTIALS_DIRECTORY`` (a private, in-memory copy only that
  service can read). That directory is exactly what pydantic-settings' ``secrets_dir``
  source reads (a file per setting, named like its variable, case-insensitive), so the
  library's own source reads it.

A setting given in two of these places (the variable, its ``_FILE``, a credential) is an
error that names both: which one should win is not obvious, and a forgotten placeholder
in an env file must not silently shadow the real secret (or the other way round).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
)

#: Set by systemd for a unit with ``LoadCredential=`` / ``LoadCredentialEncrypted=``.
CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"
#: ``<VARIABLE>_FILE`` names the file that holds ``<VARIABLE>``'s value.
FILE_SUFFIX = "_FILE"


class SecretSourceError(RuntimeError):
    """A secret's file cannot be read, or a setting is given in two places.

    Raised as itself (not inside a pydantic ``ValidationError``) so a process can print
    the one-line reason and exit.
    """


def _mentions_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_mentions_secret(arg) for arg in getattr(annotation, "__args__", ()))


def environment_names(settings_cls: type[BaseSettings], name: str, field: FieldInfo) -> list[str]:
    """The environment variables ``field`` is read from, the preferred one first."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return [f"{prefix}{name}".upper()]


def _credentials(directory: str | None) -> dict[str, Path]:
    """Credential files by upper-cased name (systemd keeps the name as given)."""
    if not directory or not Path(directory).is_dir():
        return {}
    return {path.name.upper(): path for path in Path(directory).iterdir() if path.is_file()}


def read_secret_file(variable: str, path: str) -> str:
    """The value ``variable`` (a ``…_FILE`` variable) points at, trailing newline stripped."""
    try:
        value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SecretSourceError(f"{variable} names {path}, which cannot be read: {reason}") from exc
    if not value.strip():
        raise SecretSourceError(f"{variable} names {path}, which is empty")
    return value


class SecretFileSource(PydanticBaseSettingsSource):
    """``<VARIABLE>_FILE`` for every secret setting, and the one-place-only check.

    Secret settings are the fields typed ``SecretStr`` (alone, optional or in a list) and
    those the settings class lists in ``secret_fields`` (connection URLs that carry a
    password).
    """

    def __init__(self, settings_cls: type[BaseSettings], secret_fields: frozenset[str]) -> None:
        super().__init__(settings_cls)
        self._secret_fields = secret_fields

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002 - the base class's signature
        # Unused: __call__ reads every field at once, to check the places against each other.
        return None, field_name, False

    def is_secret(self, name: str, field: FieldInfo) -> bool:
        """Whether ``name`` may be read from a ``_FILE`` variable."""
        return name in self._secret_fields or _mentions_secret(field.annotation)

    def __call__(self) -> dict[str, Any]:
        environ = {key.upper(): value for key, value in os.environ.items()}
        credentials = _credentials(os.environ.get(CREDENTIALS_DIRECTORY))
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            variables = environment_names(self.settings_cls, name, field)
            given = [v for v in variables if v.upper() in environ]
            files = (
                [v + FILE_SUFFIX for v in variables if (v + FILE_SUFFIX).upper() in environ]
                if self.is_secret(name, field)
                else []
            )
            loaded = [
                f"${CREDENTIALS_DIRECTORY}/{credentials[v.upper()].name}"
                for v in variables
                if v.upper() in credentials
            ]
            # Several aliases in the environment keep pydantic's rule (the first wins).
            if sum(map(bool, (given, files, loaded))) > 1 or len(files) > 1:
                named = " and ".join([*given, *files, *loaded])
                raise SecretSourceError(
                    f"{named} are set: give {variables[0]} in one place only "
                    "(the variable, its _FILE, or a systemd credential)"
                )
            if files:
                values[name] = read_secret_file(files[0], environ[files[0].upper()])
        return values


class SettingsWithSecretFiles(BaseSettings):
    """A pydantic-settings class whose secrets may also come from files.

    Priority, highest first: keyword arguments, ``<VARIABLE>_FILE``, the environment, an
    env file, ``$CREDENTIALS_DIRECTORY``; a setting found in two of the last four places
    is refused (:class:`SecretFileSource`). Subclasses list the secret settings that are
    not typed ``SecretStr`` in ``secret_fields``.
    """

    @classmethod
    def secret_fields(cls) -> frozenset[str]:
        """Settings besides the ``SecretStr`` ones that may be read from ``_FILE``."""
        return frozenset()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        credentials = os.environ.get(CREDENTIALS_DIRECTORY)
        return (
            init_settings,
            SecretFileSource(settings_cls, cls.secret_fields()),
            env_settings,
            dotenv_settings,
            (
                SecretsSettingsSource(settings_cls, secrets_dir=credentials)
                if credentials
                else file_secret_settings
            ),
        )
