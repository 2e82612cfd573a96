"""Cloudflare R2 for PixEcom: provides the ``r2`` storage.

PixEcom finds it through the ``r2_storage`` entry point in the ``pixecom`` group; nothing here
needs to be imported by hand.
"""

__version__ = "0.1.0"
