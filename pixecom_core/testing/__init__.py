"""Test support shipped with core: real databases for tests, the conformance kit."""
