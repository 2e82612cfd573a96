"""The conformance kit against the R2 plugin: discovered through its hooks, its moto sandbox
served as ``pixecom dev`` serves it (lifespan on: moto creates the dev bucket at startup)."""

import pixecom_r2_storage.plugin

from pixecom_core.testing.conformance import StorageConformance


class TestR2StorageConformance(StorageConformance):
    plugin = pixecom_r2_storage.plugin
    identifier = "r2"
    sandbox_name = "r2"
    sandbox_lifespan = "on"
