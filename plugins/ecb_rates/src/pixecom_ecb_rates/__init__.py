"""The European Central Bank's euro reference rates for PixEcom: provides the ``ecb``
currency-rate source and the ``ecb`` sandbox.

PixEcom finds it through the ``ecb_rates`` entry point in the ``pixecom`` group; nothing here
needs to be imported by hand.
"""

__version__ = "0.1.0"
