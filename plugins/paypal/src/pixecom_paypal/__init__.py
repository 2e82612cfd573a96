"""PayPal for PixEcom: provides the ``paypal`` payment gateway.

PixEcom finds it through the ``paypal`` entry point in the ``pixecom`` group; nothing here
needs to be imported by hand.
"""

__version__ = "0.1.0"
