"""Meta Ads for PixEcom: provides the ``meta`` ad network.

PixEcom finds it through the ``meta_ads`` entry point in the ``pixecom`` group; nothing here
needs to be imported by hand.
"""

__version__ = "0.1.0"
