"""Developer and operator tools that run on a workstation, never in Lambda.

``cli`` is the command line (``./memberflow``, ``python -m chalicelib.devtools``, or the older
``python -m chalicelib.cli``); ``simulator`` runs a config's automations on a virtual clock with
no AWS. The deployed app never imports this package.
"""
