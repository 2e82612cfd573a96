"""The API fixtures (an app over ASGI, sellers signed up through it) for these tests too."""

from tests.app.conftest import (  # noqa: F401 (pytest finds fixtures by name)
    admin_key,
    api_client,
    api_client_for,
    app_settings,
    closed_port,
    new_seller,
)
