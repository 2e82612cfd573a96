"""The reference app's HTTP API (FastAPI): thin routers over core services."""

from reference_app.api.app import create_app

__all__ = ["create_app"]
