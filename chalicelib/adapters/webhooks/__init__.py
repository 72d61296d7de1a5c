"""Outbound webhooks: how memberflow signs the calls its automations' ``webhook`` steps make.

Pure and standard library only; sending the request is the outbox's job.
"""
