"""PayPal for PixEcom: the ``paypal`` payment gateway and a PayPal sandbox.

PixEcom finds it through the ``paypal`` entry point in the ``pixecom`` group; nothing here
needs to be imported by hand. See the package README for settings and the event mapping.
"""

__version__ = "0.1.0"
