"""Cloudflare R2 for PixEcom: provides the ``r2`` storage and the ``r2`` sandbox.

PixEcom finds it through the ``r2_storage`` entry point in the ``pixecom`` group; nothing here
needs to be imported by hand. Core checks finished uploads with
:func:`pixecom_r2_storage.verification.check_upload`.
"""

__version__ = "0.1.0"
