"""Worker-process fixtures: the scale-out tests' real ``pixecom worker`` processes, their
own migrated database and the ``slowads`` network (see ``tests/scaleout/conftest.py``)."""

from tests.scaleout.conftest import scaled_settings, scaleout_database, start_pixecom

__all__ = ["scaled_settings", "scaleout_database", "start_pixecom"]
