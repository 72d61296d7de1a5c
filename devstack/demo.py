"""``make demo``: replay sample webhooks against the running local stack and show the result.

It sends what ThriveCart and Kit would send (a purchase with a bump and an upsell, two monthly
rebills, the first rebill again as a retry, a signed Kit batch, a generated operation URL call)
and prints the buyer's contact, credit ledger and timeline as the admin API returns them. It talks
to http://127.0.0.1:$LOCAL_APP_PORT (default 8000), where `make run` listens, or to MEMBERFLOW_URL.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chalicelib.adapters.kit.verify import sign
from chalicelib.domain.hooks import hook_token
from devstack.__main__ import LOCAL_SECRETS

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "payloads"
FIXTURE_SECRET = b"tc-secret-FIXTURE"
BUYER = "ada.lovelace@example.com"
DEFAULT_PORT = "8000"
"""The port ``make run`` listens on unless LOCAL_APP_PORT says otherwise."""


def secret(name: str) -> str:
    return os.environ.get(name, LOCAL_SECRETS[name])


def call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return json.loads(error.read() or b"null")


def thrivecart(base: str, name: str) -> Any:
    body = (SAMPLES / "thrivecart" / name).read_bytes().strip()
    body = body.replace(FIXTURE_SECRET, secret("THRIVECART_SECRET").encode())
    return call(
        "POST", f"{base}/webhooks/thrivecart", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )


def main() -> int:
    port = os.environ.get("LOCAL_APP_PORT") or DEFAULT_PORT
    base = os.environ.get("MEMBERFLOW_URL") or f"http://127.0.0.1:{port}"
    where = "MEMBERFLOW_URL" if os.environ.get("MEMBERFLOW_URL") else f"LOCAL_APP_PORT={port}"
    try:
        urllib.request.urlopen(
            urllib.request.Request(f"{base}/webhooks/thrivecart", method="HEAD"), timeout=3
        )
    except OSError:
        print(
            f"memberflow: nothing answers on {base} ({where}): is `make run` running? it listens on"
            f" http://127.0.0.1:$LOCAL_APP_PORT (default {DEFAULT_PORT}); start it, or give `make demo`"
            " the LOCAL_APP_PORT it was started with.",
            file=sys.stderr,
        )
        return 2
    print(f"Replaying against {base} ({where})\n")
    admin = {"Authorization": f"Bearer {secret('ADMIN_TOKEN')}"}
    steps = [
        (
            "ThriveCart order.success (product-12 + bump-12 + upsell-2)",
            lambda: thrivecart(base, "order_success.txt"),
        ),
        ("ThriveCart rebill #6", lambda: thrivecart(base, "subscription_payment.txt")),
        ("ThriveCart rebill #6 again (a retry)", lambda: thrivecart(base, "subscription_payment.txt")),
        ("ThriveCart rebill #7", lambda: thrivecart(base, "subscription_payment_next.txt")),
    ]
    kit_body = (SAMPLES / "kit" / "v4_tag_added.json").read_bytes()
    kit_headers = {
        "Content-Type": "application/json",
        "X-Kit-Signature": sign(kit_body, secret("KIT_WEBHOOK_SECRET"), int(time.time())),
    }
    steps.append(
        (
            "Kit signed batch: tag 'Op – Add 50 Credits' added to two subscribers",
            lambda: call("POST", f"{base}/webhooks/kit/{secret('KIT_WEBHOOK_TOKEN')}", kit_body, kit_headers),
        )
    )
    token = hook_token(secret("HOOK_SIGNING_SECRET"), "spend-10-credits")
    steps.append(
        (
            "Generated URL: spend-10-credits",
            lambda: call(
                "POST",
                f"{base}/hooks/spend-10-credits/{token}",
                json.dumps({"email": BUYER}).encode(),
                {"Content-Type": "application/json"},
            ),
        )
    )
    for title, step in steps:
        print(f"-> {title}\n   {json.dumps(step(), ensure_ascii=False)}")
    who = quote(BUYER)
    contact = call("GET", f"{base}/admin/contacts/{who}", headers=admin)
    ledger = call("GET", f"{base}/admin/contacts/{who}/ledger", headers=admin)
    timeline = call("GET", f"{base}/admin/contacts/{who}/timeline", headers=admin)
    print(f"\nContact {BUYER}:\n{json.dumps(contact, indent=2, ensure_ascii=False)}")
    print("\nCredit ledger:")
    for entry in ledger.get("entries", []):
        print(
            f"  {entry['at'][:19]}  {entry['amount']:>+5}  -> {entry['balance_after']:>4}  {entry['reason']}"
        )
    print("\nTimeline:")
    for entry in timeline.get("entries", []):
        detail = {k: v for k, v in entry.items() if k not in {"at", "kind", "event_id"}}
        print(f"  {entry['at'][11:19]}  {entry['kind']:<24} {json.dumps(detail, ensure_ascii=False)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
