"""PixEcom core: the framework that plugins and the reference app build on."""

from pixecom_core.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
