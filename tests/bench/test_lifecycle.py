"""The new member's lifecycle on moto: purchase, six weekly modules, five monthly payments, measured."""

from __future__ import annotations

from bench.__main__ import LIFECYCLE_CONFIG
from bench.harness import app_stack
from bench.report import LIFECYCLE_USD_PER_1000
from bench.scenarios import MEMBER, REBILLS, Bench, lifecycle_summary


def test_the_lifecycle_releases_every_module_adds_every_months_credits_and_is_costed() -> None:
    with app_stack(LIFECYCLE_CONFIG) as stack:
        figures = Bench(stack).lifecycle()  # raises unless the member ends with m1..m6 and 250 credits
        assert stack.meter.errors == []
        contact = stack.admin_get(f"/admin/contacts/{MEMBER}")
    summary = lifecycle_summary(figures, memory_mb=128)
    # The purchase, five payments, and the wake-ups: five modules and the onboarding automation's waits.
    assert summary["api_requests"] == 1 + REBILLS
    assert summary["wakeups"] >= 5
    assert summary["lambda_invocations"] == 1 + REBILLS + summary["wakeups"]
    assert set(summary["results"]) == {"accepted"}
    # The welcome email, a credits email a month, the onboarding automation's emails.
    assert summary["emails"] >= 1 + REBILLS
    assert "Course – Foundation – M6" in contact["tags"]
    assert summary["usd_per_1000"] <= LIFECYCLE_USD_PER_1000
    assert summary["ratio_to_aws"]["zapier"] > summary["ratio_to_aws"]["make"] > 1
