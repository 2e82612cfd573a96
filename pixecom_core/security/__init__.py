"""Security primitives: password hashes, access tokens, refresh tokens, secret boxes.

Services in core and the reference app compose these; each module holds one concern and
takes its keys from :class:`pixecom_core.settings.Settings`, never from globals.
"""
