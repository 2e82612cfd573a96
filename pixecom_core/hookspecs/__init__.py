"""Pluggy markers for PixEcom: the only contract plugins see.

The hook specifications live in one module per concern (``providers``, ``events``); this
package only defines the marker pair, so ``from pixecom_core import hookimpl`` stays cheap.
"""

import pluggy

hookspec = pluggy.HookspecMarker("pixecom")
hookimpl = pluggy.HookimplMarker("pixecom")

__all__ = ["hookimpl", "hookspec"]
