"""``make bench``: what one inbound event costs memberflow in AWS calls, DynamoDB request units, Step
Functions transitions and dollars, measured on the real code paths under moto, plus cold import time
and bundle sizes. ``python -m bench`` writes ``bench/results/latest.json`` and ``latest.md``;
``docs/benchmarks.md`` explains the method and where each price comes from.

Rooms: ``units`` (DynamoDB's capacity rules, pure), ``meter`` (botocore event hooks that record
calls and cost them), ``harness`` (the only module that reaches into the app's internals: stack,
container, state machine), ``scenarios`` (the fixed scenario names), ``prices`` (the price table),
``static`` (cold import, zip sizes), ``report`` (JSON, Markdown, targets).
"""
