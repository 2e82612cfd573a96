"""Stripe for PixEcom: provides the ``stripe`` payment gateway and the ``stripe`` sandbox.

PixEcom finds it through the ``stripe`` entry point in the ``pixecom`` group; nothing here
needs to be imported by hand.
"""

__version__ = "0.1.0"
