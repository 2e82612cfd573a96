"""Hook implementations of the 17TRACK plugin."""

from pixecom_core import hookimpl
from pixecom_core.providers import Tracker
from pixecom_tracking17.tracker import Track17Tracker


@hookimpl
def pixecom_register_trackers() -> list[Tracker]:
    """Offer the ``17track`` tracker."""
    return [Track17Tracker()]
