"""Outbound webhooks: the calls automations' ``webhook`` steps make, signed the Standard Webhooks way.

``signing.py`` is pure and standard library only: the three headers for a body. ``sender.py`` is the
outbox's ``Sender`` for ``webhook`` items: it builds the body, signs it, sends it over the shared
HTTP transport (``chalicelib.adapters.http``) and maps the answer to ``Sent`` or a delivery failure.
"""
