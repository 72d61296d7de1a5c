"""The price table every cost figure uses: US East (N. Virginia), on-demand, no free tier.

Each price names the AWS pricing page it comes from and the day it was read (or says that it was
not). Prices change: when they do, change the figure and the date here, and rerun ``make bench``.
"""

from __future__ import annotations

from dataclasses import dataclass

REGION = "us-east-1"


@dataclass(frozen=True)
class Price:
    usd: float
    per: str
    source: str
    url: str
    read_on: str
    note: str = ""


DYNAMODB_WRITE_UNIT = Price(
    usd=0.625 / 1_000_000,
    per="write request unit (on-demand, Standard table class)",
    source="Amazon DynamoDB pricing for on-demand capacity",
    url="https://aws.amazon.com/dynamodb/pricing/on-demand/",
    read_on="2026-11-30",
    note="$0.625 per million since the November 2024 on-demand price reduction",
)
DYNAMODB_READ_UNIT = Price(
    usd=0.125 / 1_000_000,
    per="read request unit (on-demand, Standard table class)",
    source="Amazon DynamoDB pricing for on-demand capacity",
    url="https://aws.amazon.com/dynamodb/pricing/on-demand/",
    read_on="2026-11-30",
    note="$0.125 per million since the November 2024 on-demand price reduction",
)
STEP_FUNCTIONS_TRANSITION = Price(
    usd=0.025 / 1_000,
    per="state transition (Standard workflows)",
    source="AWS Step Functions Pricing",
    url="https://aws.amazon.com/step-functions/pricing/",
    read_on="2026-11-30",
    note="$0.0250 per 1,000 state transitions; retries count as transitions",
)
LAMBDA_REQUEST = Price(
    usd=0.20 / 1_000_000,
    per="request",
    source="AWS Lambda Pricing",
    url="https://aws.amazon.com/lambda/pricing/",
    read_on="2026-11-30",
    note="$0.20 per 1M requests",
)
LAMBDA_GB_SECOND = Price(
    usd=0.0000166667,
    per="GB-second (x86, first 6 billion GB-seconds a month)",
    source="AWS Lambda Pricing",
    url="https://aws.amazon.com/lambda/pricing/",
    read_on="2026-11-30",
    note="duration is billed per 1 ms at the function's configured memory",
)
API_GATEWAY_REST_REQUEST = Price(
    usd=3.50 / 1_000_000,
    per="REST API request (first 333 million a month)",
    source="Amazon API Gateway Pricing",
    url="https://aws.amazon.com/api-gateway/pricing/",
    read_on="2026-11-30",
    note="$3.50 per million",
)
SES_OUTBOUND_EMAIL = Price(
    usd=0.10 / 1_000,
    per="outbound email to one recipient (per-feature pricing, no SES pricing plan)",
    source="Amazon SES pricing",
    url="https://aws.amazon.com/ses/pricing/",
    read_on="not read: the figure the issue gave",
    note=(
        "$0.10 per 1,000 emails, as the issue that added it said; not checked against the page, which "
        "could not be reached then. SES also sells pricing plans (Essentials, Pro, Enterprise: "
        "PutAccountPricingAttributes in the SES v2 API reference), priced otherwise; read the page "
        "and put the date here"
    ),
)

TABLE: dict[str, Price] = {
    "dynamodb_write_unit": DYNAMODB_WRITE_UNIT,
    "dynamodb_read_unit": DYNAMODB_READ_UNIT,
    "step_functions_transition": STEP_FUNCTIONS_TRANSITION,
    "lambda_request": LAMBDA_REQUEST,
    "lambda_gb_second": LAMBDA_GB_SECOND,
    "api_gateway_rest_request": API_GATEWAY_REST_REQUEST,
    "ses_outbound_email": SES_OUTBOUND_EMAIL,
}


# --- No-code automation tools, for the lifecycle's comparison ---------------------------------------
# Not AWS prices, and not read from their pages: the bench has no network. They are assumptions,
# labelled as such, with the counting rule each tool is assumed to bill by; check both on the
# vendors' pages (plans, tiers and units change) and put the date here.

ZAPIER_TASK = Price(
    usd=19.99 / 750,
    per="task (Professional plan, 750 tasks a month, billed annually: $19.99 a month)",
    source="Zapier pricing (assumed, not read)",
    url="https://zapier.com/pricing",
    read_on="not read: an assumption",
    note=(
        "assumed: one task per action step that runs; triggers, Filter and Delay steps cost none. "
        "The plan price and its task allowance are from memory, not checked against the page; larger "
        "task tiers cost less per task"
    ),
)
MAKE_OPERATION = Price(
    usd=9.00 / 10_000,
    per="operation (Core plan, 10,000 operations a month, billed annually: $9 a month)",
    source="Make pricing (assumed, not read)",
    url="https://www.make.com/en/pricing",
    read_on="not read: an assumption",
    note=(
        "assumed: one operation per module run, the trigger module included (Make now sells credits, "
        "taken here as one per operation). The plan price and allowance are from memory, not checked "
        "against the page; larger tiers cost less per operation"
    ),
)

NO_CODE: dict[str, Price] = {"zapier_task": ZAPIER_TASK, "make_operation": MAKE_OPERATION}


@dataclass(frozen=True)
class NoCodeSteps:
    """What the same member lifecycle would take as Zaps or Make scenarios, counted from what ran.

    Each thing memberflow does for the member is one action step there: creating the member's
    account, adding the access tag, releasing a module (a tag or a membership-site call), adding a
    month's credits, sending an email. Make also runs a trigger module for every scenario run: the
    purchase, each payment, and each delayed continuation (memberflow's wake-ups: Make cannot wait
    weeks inside a run, so each is a scheduled run of its own). Zapier's Delay steps are taken to be
    free, which favours Zapier. Steps only a no-code build would add (looking the subscriber up
    before updating a field, formatting, a data store for the schedule) are not counted, so both
    figures are floors.
    """

    purchases: int
    modules: int
    rebills: int
    emails: int
    wakeups: int

    @property
    def actions(self) -> int:
        account_and_access = 2 * self.purchases
        return account_and_access + self.modules + self.rebills + self.emails

    @property
    def zapier_tasks(self) -> int:
        return self.actions

    @property
    def make_operations(self) -> int:
        return self.actions + self.purchases + self.rebills + self.wakeups

    def usd(self) -> dict[str, float]:
        return {
            "zapier": self.zapier_tasks * ZAPIER_TASK.usd,
            "make": self.make_operations * MAKE_OPERATION.usd,
        }


@dataclass(frozen=True)
class Usage:
    """What one event used, in billed units."""

    write_units: float
    read_units: float
    transitions: float
    lambda_requests: float
    lambda_gb_seconds: float
    api_requests: float
    emails: float
    """Emails the event queued to send, each to one recipient: SES bills them when they are sent."""

    def usd_by_service(self) -> dict[str, float]:
        dynamodb = self.write_units * DYNAMODB_WRITE_UNIT.usd + self.read_units * DYNAMODB_READ_UNIT.usd
        duration = self.lambda_gb_seconds * LAMBDA_GB_SECOND.usd
        return {
            "dynamodb": dynamodb,
            "step_functions": self.transitions * STEP_FUNCTIONS_TRANSITION.usd,
            "lambda": self.lambda_requests * LAMBDA_REQUEST.usd + duration,
            "api_gateway": self.api_requests * API_GATEWAY_REST_REQUEST.usd,
            "ses": self.emails * SES_OUTBOUND_EMAIL.usd,
        }

    def usd(self) -> float:
        return sum(self.usd_by_service().values())
