"""The scenarios ``make bench`` measures; their names are fixed so later releases add to them.

Each scenario drives the app as production does (ThriveCart and Kit webhooks over HTTP, the timer
Lambda for wake-ups) and reads its figures from what the meter recorded under the scenario's name.
Setup that is not part of the measured event (the buyer a rebill needs, the contact a drip runs
for) runs under a ``setup:`` segment and is left out.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import payloads
from bench.harness import SECRETS, Stack
from bench.meter import Call, Invocation, Meter
from bench.prices import NoCodeSteps, Usage

PURCHASE = "purchase_new_contact"
DUPLICATE = "purchase_duplicate"
REBILL = "rebill_credits"
KIT_TAG = "kit_tag_webhook"
DRIP = "drip_wakeup"
LATE_UPSELL = "purchase_late_upsell"
"""The order delivered twice, before and after the upsell is taken: an extra scenario, no target."""
LIFECYCLE = "new_member_lifecycle"
"""One member from purchase to the fifth monthly payment, every event and wake-up of theirs summed."""
NAMES = (PURCHASE, DUPLICATE, REBILL, KIT_TAG, DRIP, LATE_UPSELL, LIFECYCLE)

BUYER = "bench.buyer@example.com"
LATE_BUYER = "bench.late.buyer@example.com"
LATE_ORDER = "1514395"
LEARNER = "bench.learner@example.com"
WARM_BUYER = "bench.warm.buyer@example.com"
WARM_ORDER = "1514390"
DRIP_TAG = "Course – Weekly Lessons"
KIT_TAG_NAME = "Module 1 Complete"
"""A tag that starts nothing: what recording a tag costs; operations and drips have their own scenarios."""
DRIP_WAKEUPS = 6
MEMBER = "bench.member@example.com"
MEMBER_ORDER = "1514396"
WARM_MEMBER = "bench.warm.member@example.com"
WARM_MEMBER_ORDER = "1514397"
MODULES = 6
"""The foundation offering's weekly modules (m1 with the purchase, m2..m6 on drip timers)."""
REBILLS = 5
BILLING_PERIOD = timedelta(days=30)

THRIVECART = "/webhooks/thrivecart"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
APP_ROOT = Path(__file__).resolve().parent.parent


def lambda_memory_mb(stage: str = "dev") -> int:
    """The functions' memory as ``.chalice/config.json`` declares it for ``stage`` (Chalice's default 128)."""
    config = json.loads((APP_ROOT / ".chalice" / "config.json").read_text())
    memory = (
        config.get("stages", {}).get(stage, {}).get("lambda_memory_size", config.get("lambda_memory_size"))
    )
    return int(memory or 128)


@dataclass
class Figures:
    """One event's figures: calls, units, transitions, emails, and the Lambda time it took here."""

    calls: list[Call]
    invocations: list[Invocation]
    transitions: int
    api_requests: int
    emails: int
    """Emails the event queued (outbox items of kind ``email``): each is one SES send to one recipient."""
    results: list[Any] = field(default_factory=list)

    @property
    def write_units(self) -> float:
        return sum(c.write_units for c in self.calls)

    @property
    def read_units(self) -> float:
        return sum(c.read_units for c in self.calls)

    def usage(self, memory_mb: int) -> Usage:
        # Billed per started millisecond of each invocation, at the configured memory.
        seconds = sum(math.ceil(i.milliseconds) for i in self.invocations) / 1000
        return Usage(
            write_units=self.write_units,
            read_units=self.read_units,
            transitions=self.transitions,
            lambda_requests=len(self.invocations),
            lambda_gb_seconds=seconds * memory_mb / 1024,
            api_requests=self.api_requests,
            emails=self.emails,
        )

    def summary(self, memory_mb: int) -> dict[str, Any]:
        usage = self.usage(memory_mb)
        return {
            "aws_calls": len(self.calls),
            "write_units": self.write_units,
            "read_units": self.read_units,
            "sfn_transitions": self.transitions,
            "emails": self.emails,
            "usd_per_1000": round(usage.usd() * 1000, 6),
            "usd_per_1000_by_service": {
                service: round(usd * 1000, 6) for service, usd in usage.usd_by_service().items()
            },
            "calls_by_operation": Meter.by_operation(self.calls),
            "units_by_table": Meter.units_by_table(self.calls),
            "lambda_invocations": len(self.invocations),
            "lambda_ms_here": round(sum(i.milliseconds for i in self.invocations), 1),
            "api_requests": self.api_requests,
            "results": self.results,
        }


def emails_queued(calls: list[Call], outbox_table: str) -> int:
    """Email items the calls put into the outbox, less any parked at once (those are never sent)."""
    return sum(
        1
        for call in calls
        for table, item in call.items_put
        if table == outbox_table
        and item.get("kind", {}).get("S") == "email"
        and item.get("status", {}).get("S") != "parked"
    )


def transitions(history: list[Mapping[str, Any]]) -> int:
    """Billed state transitions of one execution: every state entered, plus every retried task attempt."""
    entered = sum(1 for e in history if str(e["type"]).endswith("StateEntered"))
    tasks = sum(1 for e in history if e["type"] == "TaskStateEntered")
    attempts = sum(1 for e in history if e["type"] in {"TaskScheduled", "LambdaFunctionScheduled"})
    return entered + max(0, attempts - tasks)


class Bench:
    def __init__(self, stack: Stack, *, drip_wakeups: int = DRIP_WAKEUPS) -> None:
        self.stack = stack
        self.drip_wakeups = drip_wakeups
        self._kit_events = 0

    # --- what the scenarios send ---------------------------------------------------------------

    def thrivecart(self, segment: str, body: bytes) -> Any:
        response = self.stack.post(segment, THRIVECART, body, FORM)
        if response.status != 200:
            raise RuntimeError(f"{segment}: ThriveCart webhook answered {response.status}: {response.body}")
        return response.body["result"]

    def kit_tag(self, segment: str, email: str, tag: str) -> Any:
        self._kit_events += 1
        at = int(self.stack.clock.now.timestamp())
        body, signature = payloads.kit_tag_added(
            SECRETS["KIT_WEBHOOK_SECRET"], email, tag, f"bench-kit-event-{self._kit_events}", at
        )
        headers = {"Content-Type": "application/json", "X-Kit-Signature": signature}
        response = self.stack.post(segment, f"/webhooks/kit/{SECRETS['KIT_WEBHOOK_TOKEN']}", body, headers)
        if response.status != 200:
            raise RuntimeError(f"{segment}: Kit webhook answered {response.status}: {response.body}")
        return response.body["result"]

    # --- scenarios -----------------------------------------------------------------------------

    def run(self) -> dict[str, Figures]:
        secret = SECRETS["THRIVECART_SECRET"]
        # Steady state: a first order since the deploy also stores the automation versions its runs
        # are pinned to (once per version, not per order), so another buyer's order goes first.
        self.thrivecart(
            "setup:warm", payloads.order(secret, WARM_BUYER, with_upsell=True, order_id=WARM_ORDER)
        )
        # One order.success whose purchase_map holds product, bump and upsell.
        order = payloads.order(secret, BUYER, with_upsell=True)
        figures = {PURCHASE: self.figures(PURCHASE, [self.thrivecart(PURCHASE, order)])}
        figures[DUPLICATE] = self.figures(DUPLICATE, [self.thrivecart(DUPLICATE, order)])
        late = [
            self.thrivecart(
                LATE_UPSELL, payloads.order(secret, LATE_BUYER, with_upsell=up, order_id=LATE_ORDER)
            )
            for up in (False, True)
        ]
        figures[LATE_UPSELL] = self.figures(LATE_UPSELL, late)
        figures[REBILL] = self.figures(REBILL, [self.thrivecart(REBILL, payloads.rebill(secret, BUYER))])
        figures[KIT_TAG] = self.figures(KIT_TAG, [self.kit_tag(KIT_TAG, BUYER, KIT_TAG_NAME)])
        expected = {LATE_UPSELL: ["accepted", "accepted"], DUPLICATE: ["duplicate"]}
        for name, measured in figures.items():
            _expect(name, measured, expected.get(name, ["accepted"]))
        return figures

    def drip(self) -> list[Figures]:
        """The drip's wake-ups in order; the run starts from a Kit tag (setup, not measured)."""
        self.stack.deliver_to.add(LEARNER)
        self.stack.wake_segment = lambda n: f"{DRIP}#{n}"
        self.kit_tag(f"setup:{DRIP}", LEARNER, DRIP_TAG)
        self.stack.wait_for_wakes(self.drip_wakeups)
        executions = self.stack.executions()
        waking = [w for w in self.stack.wakes if w["event"].get("email") == LEARNER]
        series = []
        for wake in waking:
            (own,) = [e for e in executions if e["input"] == wake["event"]]
            segment = wake["segment"]
            if len(self.stack.meter.invocations_in(segment)) != 1:
                # Two wake-ups in one segment would each be billed both one's calls.
                raise RuntimeError(f"{segment}: the segment holds more than one wake-up")
            calls = self.stack.meter.calls_in(segment)
            series.append(
                Figures(
                    calls=calls,
                    invocations=self.stack.meter.invocations_in(segment),
                    transitions=transitions(own["history"]),
                    api_requests=0,
                    emails=emails_queued(calls, self.stack.outbox_table),
                    results=[wake["result"].get("result")],
                )
            )
        if len(series) != self.drip_wakeups:
            raise RuntimeError(f"{DRIP}: {len(series)} wake-ups delivered, expected {self.drip_wakeups}")
        for number, measured in enumerate(series, start=1):
            _expect(f"{DRIP}#{number}", measured, ["accepted"])
        return series

    def lifecycle(self) -> Figures:
        """A new member's first five months: the purchase (release, module 1, welcome email), the
        weekly modules and the onboarding automation's waits as their timers come due, and a monthly
        payment every 30 days, each adding 50 credits. Wake-ups go through the real state machine to
        ``fire_timer``, answered in due order (``Stack.deliver_held``)."""
        secret = SECRETS["THRIVECART_SECRET"]
        stack = self.stack
        # Steady state: the first run of each automation since the deploy stores its version once.
        self.thrivecart("setup:warm", payloads.product_order(secret, WARM_MEMBER, order_id=WARM_MEMBER_ORDER))
        self.thrivecart("setup:warm", payloads.rebill(secret, WARM_MEMBER, order_id=WARM_MEMBER_ORDER))
        stack.hold_for.add(MEMBER)
        segments = [f"{LIFECYCLE}:purchase"]
        start = stack.clock.now
        order = payloads.product_order(secret, MEMBER, order_id=MEMBER_ORDER)
        answered = [self.thrivecart(segments[0], order)]

        def wake(n: int) -> str:
            return f"{LIFECYCLE}:wake#{n}"

        wakes = []
        for month in range(1, REBILLS + 1):
            paid_at = start + month * BILLING_PERIOD
            wakes += stack.deliver_held(wake, until=paid_at)
            stack.clock.now = max(stack.clock.now, paid_at)
            segments.append(f"{LIFECYCLE}:rebill#{month}")
            body = payloads.rebill(secret, MEMBER, order_id=MEMBER_ORDER, payment=month + 1)
            answered.append(self.thrivecart(segments[-1], body))
        wakes += stack.deliver_held(wake)
        if answered != ["accepted"] * (1 + REBILLS):
            raise RuntimeError(f"{LIFECYCLE}: ThriveCart deliveries answered {answered}")
        failed = [w for w in wakes if not isinstance(w["result"], Mapping) or "error" in w["result"]]
        if failed:
            raise RuntimeError(f"{LIFECYCLE}: wake-ups failed: {failed}")
        segments += [w["segment"] for w in wakes]
        calls = [c for name in segments for c in stack.meter.calls_in(name)]
        invocations = [i for name in segments for i in stack.meter.invocations_in(name)]
        if len(invocations) != len(segments):
            raise RuntimeError(f"{LIFECYCLE}: {len(invocations)} invocations in {len(segments)} segments")
        own = [e for e in stack.executions() if e["input"].get("email") == MEMBER]
        self._check_member_story()
        return Figures(
            calls=calls,
            invocations=invocations,
            transitions=sum(transitions(e["history"]) for e in own),
            api_requests=1 + REBILLS,
            emails=emails_queued(calls, stack.outbox_table),
            results=[*answered, *(str(w["result"].get("result", w["result"])) for w in wakes)],
        )

    def _check_member_story(self) -> None:
        """The figures stand for the story only if it happened: every module, every month's credits."""
        contact = self.stack.admin_get(f"/admin/contacts/{MEMBER}")
        foundation = contact["offerings"].get("foundation", {})
        modules = [f"m{n}" for n in range(1, MODULES + 1)]
        credits = contact["fields"].get("credits")
        if not foundation.get("access") or foundation.get("modules") != modules:
            raise RuntimeError(f"{LIFECYCLE}: the member's foundation access is {foundation}")
        if credits is None or float(credits) != 50 * REBILLS:
            raise RuntimeError(f"{LIFECYCLE}: the member has {credits} credits, not {50 * REBILLS}")

    def figures(self, segment: str, results: list[Any]) -> Figures:
        """The segment's figures, with the transitions of the executions it started."""
        calls = self.stack.meter.calls_in(segment)
        started = {
            c.response["executionArn"] for c in calls if c.operation == "StartExecution" and c.error is None
        }
        transitions_total = 0
        if started:
            self._settle(started)
            for execution in self.stack.executions():
                if execution["arn"] in started:
                    transitions_total += transitions(execution["history"])
        return Figures(
            calls=calls,
            invocations=self.stack.meter.invocations_in(segment),
            transitions=transitions_total,
            api_requests=len(self.stack.meter.invocations_in(segment)),
            emails=emails_queued(calls, self.stack.outbox_table),
            results=results,
        )

    def _settle(self, arns: set[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for arn in arns:
            self.stack.sfn.wait_for(arn, max(0.1, deadline - time.monotonic()))


def _expect(name: str, figures: Figures, results: list[str]) -> None:
    """A scenario that did not do what it stands for, or that the meter did not see, has no figures."""
    if figures.results != results:
        raise RuntimeError(f"{name}: the app answered {figures.results}, the scenario expects {results}")
    if not figures.calls or not figures.invocations:
        raise RuntimeError(f"{name}: nothing was recorded; is the meter still attached to the app's clients?")


def drip_summary(series: list[Figures], memory_mb: int) -> dict[str, Any]:
    """The mean over the wake-ups, and each wake-up's own figures to show they do not grow."""
    per_wake = [f.summary(memory_mb) for f in series]
    keys = ("aws_calls", "write_units", "read_units", "sfn_transitions", "emails", "usd_per_1000")
    summary: dict[str, Any] = {k: round(statistics.fmean(w[k] for w in per_wake), 6) for k in keys}
    summary["usd_per_1000_by_service"] = {
        service: round(statistics.fmean(w["usd_per_1000_by_service"][service] for w in per_wake), 6)
        for service in per_wake[0]["usd_per_1000_by_service"]
    }
    summary["wakeups"] = len(series)
    summary["per_wakeup"] = [{k: w[k] for k in (*keys, "calls_by_operation", "results")} for w in per_wake]
    writes = [w["write_units"] for w in per_wake]
    summary["write_units_per_wakeup"] = writes
    summary["growing"] = growing(writes)
    summary["units_by_table"] = {
        name: round(units / len(series), 6)
        for name, units in Meter.units_by_table([c for f in series for c in f.calls]).items()
    }
    return summary


def growing(series: list[float]) -> bool:
    """Whether the later wake-ups cost more than the earlier ones: the mean of the second half of the
    series exceeds the mean of the first half.

    The last wake-up is left out: it also ends the run, which may cost a little more (or less) once
    without the cost growing with the run's history. Halves, not each pair in turn, so a series that
    jumps and then dips a little (23, 23, 46, 46, 45) still counts as growing.
    """
    before_last = series[:-1]
    if len(before_last) < 2:
        return False
    half = len(before_last) // 2
    return statistics.fmean(before_last[-half:]) > statistics.fmean(before_last[:half])


def lifecycle_summary(figures: Figures, memory_mb: int) -> dict[str, Any]:
    """The lifecycle's totals per member (so ``usd_per_1000`` is per 1,000 members), what the same
    steps would cost on Zapier and Make, and the ratio of each to memberflow's AWS cost."""
    summary = figures.summary(memory_mb)
    wakeups = len(figures.invocations) - 1 - REBILLS
    steps = NoCodeSteps(purchases=1, modules=MODULES, rebills=REBILLS, emails=figures.emails, wakeups=wakeups)
    no_code = {tool: round(usd * 1000, 2) for tool, usd in steps.usd().items()}
    aws = summary["usd_per_1000"]
    summary.update(
        members=1,
        modules=MODULES,
        rebills=REBILLS,
        wakeups=wakeups,
        zapier_tasks=steps.zapier_tasks,
        make_operations=steps.make_operations,
        no_code_usd_per_1000=no_code,
        ratio_to_aws={tool: round(usd / aws, 1) for tool, usd in no_code.items()},
    )
    return summary
