"""The edge ``app.py`` speaks through: HTTP status and JSON for every error, request accessors,
and how the admin API renders what the services return. Nothing here decides or stores anything.
"""
