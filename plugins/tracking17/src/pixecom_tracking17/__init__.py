"""17TRACK for PixEcom: provides the ``17track`` tracker and the ``17track`` sandbox.

PixEcom finds it through the ``tracking17`` entry point in the ``pixecom`` group; nothing here
needs to be imported by hand.
"""

__version__ = "0.1.0"
