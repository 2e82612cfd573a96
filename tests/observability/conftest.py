"""The API fixtures (an app over ASGI, sellers signed up through it) for these tests too,
and this process's logging captured in a buffer."""

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from pixecom_core.observability import configure_logging
from pixecom_core.settings import Settings
from tests.app.conftest import (  # noqa: F401 (pytest finds fixtures by name)
    admin_key,
    api_client,
    api_client_for,
    app_settings,
    closed_port,
    new_seller,
)


@contextmanager
def captured_logging(settings: Settings, process: str) -> Iterator[io.StringIO]:
    """This process's logging, configured by ``configure_logging`` for ``process`` with
    ``settings``, written to a buffer; the root logger and structlog restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffer = io.StringIO()
    try:
        configure_logging(settings, process=process, stream=buffer)
        yield buffer
    finally:
        structlog.reset_defaults()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
