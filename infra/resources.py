"""The CloudFormation merge template for ``chalice package --merge-template``, built from the pynamodb models.

Chalice emits the functions, the REST API and the dependency layer; this module writes the overlay
that Chalice deep-merges into its SAM output: one DynamoDB table per model in ``ALL_MODELS`` (keys,
indexes, TTL and billing mode read from the model classes, so the schema lives only in
``chalicelib.storage.models``), one least-privilege role shared by every function, a log group per
function, the template Parameters, the runtime environment patched into each function, and Outputs.
The template is assembled from resource groups: each group is a function from the app's shape
(``AppShape``: which functions Chalice emits) to a ``Fragment`` of parameters, resources, outputs,
role statements and environment variables, so a state machine, schedules or alarms are one more group
in ``DEFAULT_GROUPS``. ``delays_group`` is such a group: the Standard state machine that fires every
durable timer (``chalicelib.domain.timers``) into the timer function, built from
``infra/delays.asl.json`` (the same file the tests and the local stack execute in moto).
``alarms_group`` owns ``AlarmTopicArn`` and the alarms on the app's own metrics (generated from
``chalicelib.metrics.CATALOGUE``) and on every function's ``Errors``. Usage:
``python -m infra.resources --output build/merge.json [--sam out/sam.json | --function APIHandler ...]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pynamodb.attributes import TTLAttribute
from pynamodb.models import Model

from chalicelib.metrics import (
    API_5XX,
    CATALOGUE,
    FAILED_OUTCOME,
    INBOX_OUTCOME,
    NAMESPACE,
    OUTBOX_PARKED,
    SERVICE,
    SERVICE_DIMENSION,
    SWEEP_FAILED,
    SWEEP_PARKED,
    TIMER_UNROUTED,
    checked_series,
)
from chalicelib.storage.models import TABLE_MODELS
from chalicelib.storage.names import TableNames

SAM_FUNCTION = "AWS::Serverless::Function"
MANAGED_LAYER = "ManagedLayer"
"""Logical id of the layer Chalice builds from requirements.txt and vendor/ when ``automatic_layer`` is on."""
FUNCTION_ROLE = "FunctionRole"
ROLE_ARN: dict[str, Any] = {"Fn::GetAtt": [FUNCTION_ROLE, "Arn"]}
BUNDLED_CONFIG = "memberflow_config/memberflow.yaml"
"""Where scripts/package.py puts the chosen YAML config, relative to vendor/."""
SSM_PREFIX = "/memberflow/"
SERVICE_NAME = "memberflow"

TABLE_ACTIONS = (
    # A batch is its own action, not the GetItem it repeats: the stores read items by key in batches
    # after a keys-only index query.
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)
"""TransactWriteItems/TransactGetItems need no action of their own: each item is authorised as the
PutItem/UpdateItem/DeleteItem/GetItem/ConditionCheckItem it wraps (DynamoDB guide, "Using IAM with
DynamoDB transactions")."""
INDEX_ACTIONS = ("dynamodb:Query",)
SCAN_ACTIONS = ("dynamodb:Scan",)
"""Granted only on the tables a store scans (``Meta.scanned``); no index is scanned."""
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653)

DELAYS_ASL = Path(__file__).resolve().with_name("delays.asl.json")
"""The timer state machine's definition (JSONPath); ``${TimerFunctionArn}`` is its only substitution."""
TIMER_FUNCTION = "FireTimer"
"""Chalice's logical id for ``@app.lambda_function(name="fire_timer")`` (``to_cfn_resource_name``)."""
"""The same function under its name from when run wake-ups were the only timers."""
DELAY_STATE_MACHINE = "DelayStateMachine"
DELAY_STATE_MACHINE_ROLE = "DelayStateMachineRole"
DELAY_STATE_MACHINE_NAME = "${AWS::StackName}-delays"
"""An explicit name, so the functions learn the ARN from ``Fn::Sub`` rather than a ``Ref``: the state
machine references the timer function, so a ``Ref`` back from the functions would be a circular
dependency. State machine names allow 80 characters, so keep the stack name within 73."""
STATE_MACHINE_ARN_ENV = "MEMBERFLOW_STATE_MACHINE_ARN"
_STATES_ARN = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
DELAY_STATE_MACHINE_ARN = f"{_STATES_ARN}:stateMachine:{DELAY_STATE_MACHINE_NAME}"
DELAY_EXECUTIONS_ARN = f"{_STATES_ARN}:execution:{DELAY_STATE_MACHINE_NAME}:*"
HAS_ALARM_TOPIC = "HasAlarmTopic"
ALARM_TOPIC = "AlarmTopicArn"
ALARM_PERIOD = 300
"""Seconds per evaluation period of every alarm: the sweep's rate, and CloudWatch's usual 5 minutes."""
MAX_ALARM_METRICS = 10
"""CloudWatch takes at most 10 metrics in one alarm's metric math."""
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


@dataclass(frozen=True)
class AppShape:
    """What Chalice emits for the app: the function logical ids, their runtime, and the managed layer."""

    functions: tuple[str, ...]
    runtime: str = f"python{sys.version_info.major}.{sys.version_info.minor}"
    dependency_layer: bool = True

    @classmethod
    def from_sam(cls, template: Mapping[str, Any]) -> AppShape:
        """Read the shape from a template that ``chalice package`` generated (with or without a merge)."""
        resources: Mapping[str, Any] = template.get("Resources", {})
        functions = sorted(name for name, res in resources.items() if res.get("Type") == SAM_FUNCTION)
        if not functions:
            raise ValueError("the template has no AWS::Serverless::Function")
        runtimes = {resources[name]["Properties"]["Runtime"] for name in functions}
        layer = {"Ref": MANAGED_LAYER}
        layered = {layer in resources[name]["Properties"].get("Layers", []) for name in functions}
        if len(runtimes) != 1 or len(layered) != 1:
            raise ValueError(f"functions disagree on runtime or managed layer: {sorted(runtimes)}")
        return cls(functions=tuple(functions), runtime=runtimes.pop(), dependency_layer=layered.pop())

    @classmethod
    def from_app(cls, app: Any, *, dependency_layer: bool = True) -> AppShape:
        """The shape ``chalice package`` would emit for a Chalice app object, without running it."""
        return cls(functions=tuple(sorted(app_functions(app))), dependency_layer=dependency_layer)

    @property
    def config_path(self) -> str:
        """The bundled config's absolute path inside the Lambda sandbox."""
        if self.dependency_layer:
            # Chalice's automatic layer carries vendor/ (under python/lib/<runtime>/site-packages),
            # not the function zip, and layers unpack under /opt.
            return f"/opt/python/lib/{self.runtime}/site-packages/{BUNDLED_CONFIG}"
        return f"/var/task/{BUNDLED_CONFIG}"


API_HANDLER = "APIHandler"
"""Chalice's logical id for the one function that serves every route (its Chalice name is api_handler)."""


def app_functions(app: Any) -> dict[str, str]:
    """Each function's logical id in ``chalice package`` output, mapped to its Chalice name.

    Mirrors ``chalice.deploy.appgraph``: one function per pure Lambda function and per event source
    (schedules included), the routes' handler and its authorizers, and the websocket handlers, each
    named by ``to_cfn_resource_name`` except the routes' handler, which Chalice renames APIHandler.
    """
    from chalice.utils import to_cfn_resource_name

    names = [function.name for function in app.pure_lambda_functions]
    names += [source.name for source in app.event_sources]
    functions = {to_cfn_resource_name(name): name for name in names}
    if app.routes:
        functions[API_HANDLER] = "api_handler"
        functions.update({to_cfn_resource_name(a.name): a.name for a in app.builtin_auth_handlers})
    routes = {handler.route_key_handled for handler in app.websocket_handlers.values()}
    socket = {"$connect": "websocket_connect", "$disconnect": "websocket_disconnect"}
    names = [name for key, name in socket.items() if key in routes]
    if routes - socket.keys():
        names.append("websocket_message")
    functions.update({to_cfn_resource_name(name): name for name in names})
    return functions


@dataclass
class Fragment:
    """One resource group's share of the template; ``statements`` go to the function role's policy."""

    parameters: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    statements: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    conditions: dict[str, Any] = field(default_factory=dict)
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Properties to merge into a Chalice function by logical id (its event source, its timeout)."""

    def merge(self, other: Fragment) -> Fragment:
        """Both fragments together; two groups defining the same name is a bug, not an override."""
        merged = Fragment(statements=[*self.statements, *other.statements])
        for section in ("parameters", "resources", "outputs", "environment", "conditions"):
            mine: dict[str, Any] = getattr(self, section)
            theirs: dict[str, Any] = getattr(other, section)
            clash = sorted(mine.keys() & theirs.keys())
            if clash:
                raise ValueError(f"{section} defined twice: {', '.join(clash)}")
            setattr(merged, section, {**mine, **theirs})
        for name in self.functions.keys() | other.functions.keys():
            mine_f, theirs_f = self.functions.get(name, {}), other.functions.get(name, {})
            clash = sorted(mine_f.keys() & theirs_f.keys())
            if clash:
                raise ValueError(f"{name} properties defined twice: {', '.join(clash)}")
            merged.functions[name] = {**mine_f, **theirs_f}
        return merged


Group = Callable[[AppShape], Fragment]


@dataclass(frozen=True)
class TableBinding:
    """A model and the ``TableNames`` field that names its table at runtime."""

    field: str
    model: type[Model]

    @property
    def logical_id(self) -> str:
        return "".join(part.capitalize() for part in self.field.split("_")) + "Table"

    @property
    def env_var(self) -> str:
        return f"MEMBERFLOW_{self.field.upper()}_TABLE"


def table_bindings(models: Mapping[str, type[Model]] = TABLE_MODELS) -> tuple[TableBinding, ...]:
    """Pair each model with the ``TableNames`` field that names its table (``TABLE_MODELS``)."""
    fields = {f.name for f in dataclasses.fields(TableNames)}
    if set(models) != fields:
        raise ValueError(f"TableNames fields and models differ: {sorted(set(models) ^ fields)}")
    if len(set(models.values())) != len(models):
        raise ValueError("two TableNames fields name the same model")
    return tuple(TableBinding(field=name, model=model) for name, model in models.items())


def _key_schema(keys: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    # DynamoDB wants HASH before RANGE; pynamodb lists index keys in attribute order.
    ordered = sorted(keys, key=lambda key: key["KeyType"] != "HASH")
    return [{"AttributeName": key["AttributeName"], "KeyType": key["KeyType"]} for key in ordered]


def _index(index: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "IndexName": index["index_name"],
        "KeySchema": _key_schema(index["key_schema"]),
        "Projection": dict(index["projection"]),
    }


def _has_indexes(model: type[Model]) -> bool:
    schema = model._get_schema()
    return bool(schema["global_secondary_indexes"] or schema["local_secondary_indexes"])


def table_resource(model: type[Model]) -> dict[str, Any]:
    """An ``AWS::DynamoDB::Table`` with exactly the model's keys, indexes and TTL."""
    billing = getattr(model.Meta, "billing_mode", None)
    if billing != "PAY_PER_REQUEST":
        raise ValueError(f"{model.__name__}.Meta.billing_mode is {billing!r}; the stack is on-demand only")
    schema = model._get_schema()
    properties: dict[str, Any] = {
        "BillingMode": billing,
        "AttributeDefinitions": sorted(
            (
                {"AttributeName": a["AttributeName"], "AttributeType": a["AttributeType"]}
                for a in schema["attribute_definitions"]
            ),
            key=lambda a: a["AttributeName"],
        ),
        "KeySchema": _key_schema(schema["key_schema"]),
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
    }
    if schema["global_secondary_indexes"]:
        properties["GlobalSecondaryIndexes"] = [_index(i) for i in schema["global_secondary_indexes"]]
    if schema["local_secondary_indexes"]:
        properties["LocalSecondaryIndexes"] = [_index(i) for i in schema["local_secondary_indexes"]]
    ttl = next((a for a in model.get_attributes().values() if isinstance(a, TTLAttribute)), None)
    if ttl is not None:
        properties["TimeToLiveSpecification"] = {"AttributeName": ttl.attr_name, "Enabled": True}
    stream = getattr(model.Meta, "stream_view_type", None)
    if stream:
        properties["StreamSpecification"] = {"StreamViewType": stream}
    # Data outlives the stack: deleting or replacing it must never drop a table.
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": properties,
    }


def tables_group(shape: AppShape) -> Fragment:
    """Every model's table, item access to exactly those tables, and their names for the functions."""
    bindings = table_bindings()
    table_arns = [{"Fn::GetAtt": [b.logical_id, "Arn"]} for b in bindings]
    index_arns = [{"Fn::Sub": f"${{{b.logical_id}.Arn}}/index/*"} for b in bindings if _has_indexes(b.model)]
    statements: list[dict[str, Any]] = [
        {"Sid": "TableItems", "Effect": "Allow", "Action": list(TABLE_ACTIONS), "Resource": table_arns}
    ]
    if index_arns:
        statements.append(
            {"Sid": "TableIndexes", "Effect": "Allow", "Action": list(INDEX_ACTIONS), "Resource": index_arns}
        )
    scanned = [
        {"Fn::GetAtt": [b.logical_id, "Arn"]} for b in bindings if getattr(b.model.Meta, "scanned", False)
    ]
    if scanned:
        statements.append(
            {"Sid": "TableScans", "Effect": "Allow", "Action": list(SCAN_ACTIONS), "Resource": scanned}
        )
    return Fragment(
        resources={b.logical_id: table_resource(b.model) for b in bindings},
        outputs={f"{b.logical_id}Name": {"Value": {"Ref": b.logical_id}} for b in bindings},
        statements=statements,
        environment={b.env_var: {"Ref": b.logical_id} for b in bindings},
    )


def secrets_group(shape: AppShape) -> Fragment:
    """The admin token, access API token and member session secret references, and read access to the
    app's SSM parameters (config secrets too)."""
    return Fragment(
        parameters={
            "AdminTokenParameterName": {
                "Type": "String",
                "Default": f"{SSM_PREFIX}admin-token",
                "AllowedPattern": f"^{SSM_PREFIX}[A-Za-z0-9_.\\-/]+$",
                "Description": f"SSM SecureString with the admin bearer token (under {SSM_PREFIX})",
            },
            "MemberSessionSecretParameterName": {
                "Type": "String",
                "Default": f"{SSM_PREFIX}member-session-secret",
                "AllowedPattern": f"^{SSM_PREFIX}[A-Za-z0-9_.\\-/]+$",
                "Description": f"SSM SecureString signing member session tokens (under {SSM_PREFIX})",
            },
            "AccessTokenParameterName": {
                "Type": "String",
                "Default": f"{SSM_PREFIX}access-api-token",
                "AllowedPattern": f"^{SSM_PREFIX}[A-Za-z0-9_.\\-/]+$",
                "Description": (
                    f"SSM SecureString with the access API's bearer token, for the membership site "
                    f"(under {SSM_PREFIX})"
                ),
            },
        },
        statements=[
            {
                "Sid": "AppParameters",
                "Effect": "Allow",
                "Action": ["ssm:GetParameter"],
                "Resource": {
                    "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
                    f"{SSM_PREFIX}*"
                },
            }
        ],
        environment={
            "ADMIN_TOKEN": {"Fn::Sub": "ssm:${AdminTokenParameterName}"},
            "MEMBER_SESSION_SECRET": {"Fn::Sub": "ssm:${MemberSessionSecretParameterName}"},
            "ACCESS_API_TOKEN": {"Fn::Sub": "ssm:${AccessTokenParameterName}"},
        },
    )


def runtime_group(shape: AppShape) -> Fragment:
    """Where the bundled config is, and how the functions log."""
    return Fragment(
        parameters={
            "LogLevel": {
                "Type": "String",
                "Default": "INFO",
                "AllowedValues": ["DEBUG", "INFO", "WARNING", "ERROR"],
                "Description": "LOG_LEVEL of every function",
            }
        },
        environment={
            "MEMBERFLOW_CONFIG": shape.config_path,
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "LOG_LEVEL": {"Ref": "LogLevel"},
        },
    )


def logs_group(shape: AppShape) -> Fragment:
    """A log group per function, with retention, and write access to exactly those groups."""
    groups = {f"{name}LogGroup": name for name in shape.functions}
    resources: dict[str, Any] = {
        group: {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{{function}}}"},
                "RetentionInDays": {"Ref": "LogRetentionInDays"},
            },
        }
        for group, function in groups.items()
    }
    # A separate policy, not a role statement: the group names come from the functions, which
    # already depend on the role, so an inline statement would be a circular dependency.
    resources["FunctionLogsPolicy"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "function-logs",
            "Roles": [{"Ref": FUNCTION_ROLE}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "FunctionLogs",
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": [{"Fn::GetAtt": [group, "Arn"]} for group in groups],
                    }
                ],
            },
        },
    }
    return Fragment(
        parameters={
            "LogRetentionInDays": {
                "Type": "Number",
                "Default": 30,
                "AllowedValues": list(LOG_RETENTION_DAYS),
                "Description": "Retention of the functions' log groups",
            }
        },
        resources=resources,
    )


def delays_definition(path: Path = DELAYS_ASL) -> dict[str, Any]:
    """The timer state machine's ASL as an object, placeholders (``${TimerFunctionArn}``) left in."""
    definition: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return definition


def definition_placeholders(definition: Any) -> set[str]:
    """Every ``${Name}`` in a definition: what its ``DefinitionSubstitutions`` must provide."""
    if isinstance(definition, str):
        return set(_PLACEHOLDER.findall(definition))
    if isinstance(definition, Mapping):
        return set().union(*(definition_placeholders(value) for value in definition.values()))
    if isinstance(definition, list):
        return set().union(*(definition_placeholders(value) for value in definition))
    return set()


def substitute_definition(definition: Any, substitutions: Mapping[str, str]) -> Any:
    """What CloudFormation's ``DefinitionSubstitutions`` does, for moto (the tests and the local stack)."""
    if isinstance(definition, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(1) not in substitutions:
                raise KeyError(f"no substitution for ${{{match.group(1)}}}")
            return substitutions[match.group(1)]

        return _PLACEHOLDER.sub(replace, definition)
    if isinstance(definition, Mapping):
        return {key: substitute_definition(value, substitutions) for key, value in definition.items()}
    if isinstance(definition, list):
        return [substitute_definition(value, substitutions) for value in definition]
    return definition


def delays_group(shape: AppShape) -> Fragment:
    """The Standard state machine that fires every durable timer, its own role, and the wiring.

    One execution per timer (``Timer.as_input()``): a Wait until ``$.due_at``, then a Task that invokes
    the timer function with the execution input unchanged, two billed state transitions in all. The
    functions may start executions of exactly this state machine and describe or stop exactly its
    executions; the state machine may invoke exactly the timer function. An app without
    ``fire_timer`` is an error, not a silent skip: without it no timer would ever fire and waiting runs
    would wake only through the sweep.
    """
    if TIMER_FUNCTION not in shape.functions:
        raise ValueError(
            f"the timer state machine needs the function {TIMER_FUNCTION}"
            ' (@app.lambda_function(name="fire_timer") in app.py); the app has only'
            f" {', '.join(shape.functions) or 'no functions'}"
        )
    timer_arn = {"Fn::GetAtt": [TIMER_FUNCTION, "Arn"]}
    state_machine_arn = {"Fn::Sub": DELAY_STATE_MACHINE_ARN}
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "states.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        # Only this stack's delay state machine may use it (confused deputy).
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                            "ArnLike": {"aws:SourceArn": state_machine_arn},
                        },
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "invoke-timer-function",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "InvokeTimerFunction",
                                "Effect": "Allow",
                                "Action": ["lambda:InvokeFunction"],
                                "Resource": [timer_arn],
                            }
                        ],
                    },
                }
            ],
        },
    }
    state_machine = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": {"Fn::Sub": DELAY_STATE_MACHINE_NAME},
            "StateMachineType": "STANDARD",
            "RoleArn": {"Fn::GetAtt": [DELAY_STATE_MACHINE_ROLE, "Arn"]},
            # An object, not DefinitionString, so cfn-lint validates the ASL too.
            "Definition": delays_definition(),
            "DefinitionSubstitutions": {"TimerFunctionArn": timer_arn},
        },
    }
    executions_failed = {
        "Namespace": "AWS/States",
        "MetricName": "ExecutionsFailed",
        "Dimensions": [{"Name": "StateMachineArn", "Value": {"Ref": DELAY_STATE_MACHINE}}],
    }
    alarm = metric_alarm(
        "A timer execution failed, so what it was for (a waiting automation run) did not happen on"
        " time; the sweep_runs schedule resumes overdue runs, the execution history says why",
        [executions_failed],
        label="failed timer executions",
    )
    return Fragment(
        resources={
            DELAY_STATE_MACHINE_ROLE: role,
            DELAY_STATE_MACHINE: state_machine,
            "DelayExecutionsFailedAlarm": alarm,
        },
        outputs={"DelayStateMachineArn": {"Value": {"Ref": DELAY_STATE_MACHINE}}},
        statements=[
            {
                "Sid": "DelayStart",
                "Effect": "Allow",
                "Action": ["states:StartExecution"],
                "Resource": state_machine_arn,
            },
            {
                "Sid": "DelayExecutions",
                "Effect": "Allow",
                "Action": ["states:DescribeExecution", "states:StopExecution"],
                "Resource": {"Fn::Sub": DELAY_EXECUTIONS_ARN},
            },
        ],
        environment={STATE_MACHINE_ARN_ENV: state_machine_arn},
    )


EMAIL_CONFIGURATION_SET = "EmailConfigurationSet"
_SES_ARN = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}"


def email_group(shape: AppShape) -> Fragment:
    """Sending through SES v2: ``ses:SendEmail`` on this account's identities and one configuration set.

    SES v2 authorises a send on the identity it is sent from (in the sandbox, on each recipient's
    identity too) and on the configuration set it names, so the grant is every identity in this
    account and region (which ones are verified is SES's business, not the role's) and exactly the
    configuration set of the stack parameter. The parameter is a name, never a wildcard, so a send
    naming any other configuration set is refused.
    """
    return Fragment(
        parameters={
            EMAIL_CONFIGURATION_SET: {
                "Type": "String",
                "Default": SERVICE_NAME,
                "AllowedPattern": "^[A-Za-z0-9_-]{1,64}$",
                "Description": "SES configuration set the functions may send with (the one the config names)",
            }
        },
        statements=[
            {
                "Sid": "SendEmail",
                "Effect": "Allow",
                "Action": ["ses:SendEmail"],
                "Resource": [
                    {"Fn::Sub": f"{_SES_ARN}:identity/*"},
                    {"Fn::Sub": f"{_SES_ARN}:configuration-set/${{{EMAIL_CONFIGURATION_SET}}}"},
                ],
            }
        ],
    )


DELIVERY_FUNCTION = "DeliverOutbox"
"""Chalice's logical id for ``@app.on_dynamodb_record(name="deliver_outbox")``."""
RETRY_FUNCTION = "RetryOutbox"
"""Chalice's logical id for ``@app.schedule(name="retry_outbox")``, the retry trigger."""
DELIVERY_EVENT_SOURCE = f"{DELIVERY_FUNCTION}DynamodbEventSource"
OUTBOX_TABLE = "OutboxTable"
DELIVERY_TIMEOUT = 60
RETRY_TIMEOUT = 90
"""The sweep runs until 20 s before this; a minute apart, two sweeps overlap briefly and share the
rate limit, so a backlog drains at the limit with no gap between them."""
OUTBOX_PARKED_DESCRIPTION = (
    "memberflow parked at least one outbox item in the last 5 minutes (metric OutboxParked, all kinds"
    " added up): a Kit change, email, sequence subscription or outbound webhook was refused for good"
    " or kept failing for about a day. Nothing else is held back. List them with"
    " GET /admin/outbox?email=<contact>&status=parked, read the reason in last_error"
    " (GET /admin/outbox/{id}), fix the cause, then POST /admin/outbox/{id}/retry. GET /admin/kit shows"
    " Kit's backlog and parked count."
)


def delivery_group(shape: AppShape) -> Fragment:
    """The outbox's delivery: its stream into ``deliver_outbox`` (new items only), the retry trigger's
    timeout, read access to the stream, and an alarm on parked items."""
    from chalicelib.services.delivery import STREAM_FILTERS

    functions: dict[str, dict[str, Any]] = {}
    statements: list[dict[str, Any]] = []
    if DELIVERY_FUNCTION in shape.functions:
        functions[DELIVERY_FUNCTION] = {
            "Timeout": DELIVERY_TIMEOUT,
            "Events": {
                DELIVERY_EVENT_SOURCE: {
                    "Type": "DynamoDB",
                    "Properties": {
                        "Stream": {"Fn::GetAtt": [OUTBOX_TABLE, "StreamArn"]},
                        "StartingPosition": "TRIM_HORIZON",
                        "BatchSize": 10,
                        "MaximumBatchingWindowInSeconds": 0,
                        # Ten batches of a shard at once (items of one key stay in order), so
                        # a launch's burst of new items is handed on within seconds.
                        "ParallelizationFactor": 10,
                        # A batch that fails is not retried for ever: the retry trigger finds its
                        # items anyway, so the stream moves on.
                        "MaximumRetryAttempts": 2,
                        "BisectBatchOnFunctionError": True,
                        "FilterCriteria": {
                            "Filters": [{"Pattern": json.dumps(pattern)} for pattern in STREAM_FILTERS]
                        },
                    },
                }
            },
        }
        statements.append(
            {
                "Sid": "OutboxStream",
                "Effect": "Allow",
                # What Lambda's event source mapping reads the stream with, on this stream only.
                "Action": [
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams",
                ],
                "Resource": [{"Fn::GetAtt": [OUTBOX_TABLE, "StreamArn"]}],
            }
        )
    if RETRY_FUNCTION in shape.functions:
        functions[RETRY_FUNCTION] = {"Timeout": RETRY_TIMEOUT}
    return Fragment(
        functions=functions,
        statements=statements,
        resources={
            "OutboxParkedAlarm": metric_alarm(
                OUTBOX_PARKED_DESCRIPTION, every_series(OUTBOX_PARKED), label="parked outbox items"
            )
        },
    )


def alarm_actions() -> dict[str, Any]:
    """Notify ``AlarmTopicArn`` when the stack has one (``alarms_group`` defines it and its condition)."""
    return {"Fn::If": [HAS_ALARM_TOPIC, [{"Ref": ALARM_TOPIC}], {"Ref": "AWS::NoValue"}]}


def app_metric(name: str, **dimensions: str) -> dict[str, Any]:
    """A series ``chalicelib.metrics`` publishes, as CloudWatch knows it (powertools adds ``service``)."""
    checked_series(name, 0, dimensions)
    named = {SERVICE_DIMENSION: SERVICE, **dimensions}
    return {
        "Namespace": NAMESPACE,
        "MetricName": name,
        "Dimensions": [{"Name": key, "Value": value} for key, value in sorted(named.items())],
    }


def every_series(name: str, **fixed: str) -> list[dict[str, Any]]:
    """Each series of ``name`` with the ``fixed`` values, and every value ``CATALOGUE`` allows elsewhere."""
    free = {key: values for key, values in CATALOGUE[name].items() if key not in fixed}
    return [
        app_metric(name, **fixed, **dict(zip(free, values, strict=True)))
        for values in itertools.product(*free.values())
    ]


def metric_alarm(
    description: Any, series: Sequence[Mapping[str, Any]], *, label: str, periods: int = 1
) -> dict[str, Any]:
    """An alarm when the 5-minute Sum of ``series``, added up, is 1 or more ``periods`` periods in a row."""
    watched: dict[str, Any]
    if len(series) == 1:
        watched = {**series[0], "Statistic": "Sum", "Period": ALARM_PERIOD}
    elif len(series) <= MAX_ALARM_METRICS:
        stats = [
            {
                "Id": f"m{index}",
                "MetricStat": {"Metric": dict(metric), "Period": ALARM_PERIOD, "Stat": "Sum"},
                "ReturnData": False,
            }
            for index, metric in enumerate(series)
        ]
        # FILL: a series without data at a timestamp adds 0 instead of blanking the sum there.
        total = {"Id": "total", "Expression": "SUM(FILL(METRICS(), 0))", "Label": label, "ReturnData": True}
        watched = {"Metrics": [*stats, total]}
    else:
        raise ValueError(f"{label}: {len(series)} series, and an alarm takes at most {MAX_ALARM_METRICS}")
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            **watched,
            "EvaluationPeriods": periods,
            "DatapointsToAlarm": periods,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": alarm_actions(),
        },
    }


INBOX_FAILED_DESCRIPTION = (
    "memberflow kept at least one inbox record as failed in the last 5 minutes (metric InboxOutcome,"
    " outcome=failed, all sources added up): a ThriveCart or Kit webhook, a hook, an admin change, an"
    " automation step or a confirmation of Kit calls arrived but was not applied. Nothing is lost: the"
    " record keeps its payload and error."
    " List them with GET /admin/events?status=failed (add &source=kit to narrow), read one with"
    " GET /admin/events/{event_id}, fix the cause (the traceback is in the log group of the function that"
    " received it, /aws/lambda/<stack>-APIHandler-..., -FireTimer-... or -SweepRuns-...), then replay it"
    " with POST /admin/events/{event_id}/replay."
)
SWEEP_FAILED_DESCRIPTION = (
    "The sweep_runs schedule could not process some items in two sweeps in a row (metric SweepFailed, 10"
    " minutes; kind=run is a due run, kind=event an inbox record, kind=contact a contact whose overdue"
    " drip, period-end or dunning timers could not be applied). Such an item stays due and is retried"
    " (a contact after 10 minutes to 6 hours), and runs and events are parked after repeated failures"
    " (SweepParkedAlarm). The errors are in the"
    " SweepRuns function's log group; GET /admin/runs?status=waiting and GET /admin/events?status=failed"
    " show what is stuck. A short DynamoDB or Kit outage clears by itself."
)
SWEEP_PARKED_DESCRIPTION = (
    "The sweep gave up on an item after repeated failures and parked it (metric SweepParked, last 5"
    " minutes): nothing retries it any more, an operator must. kind=run: find it with"
    " GET /admin/runs?status=failed and read its history with GET /admin/runs/{run_id}; kind=event:"
    " GET /admin/events?status=failed, then POST /admin/events/{event_id}/replay once the cause is fixed."
    " The SweepRuns function's log group has the errors that led to it."
)
API_5XX_DESCRIPTION = (
    "The API answered at least one request with a 5xx status in the last 5 minutes (metric Api5xx)."
    " ThriveCart and Kit retry webhooks that got a 5xx, but a lasting failure loses deliveries and locks"
    " operators out of /admin. In the APIHandler function's log group look for 'unhandled error' (a bug,"
    " with its traceback), 'config invalid' (the bundled config is broken: deploy a valid one; GET"
    " /admin/config shows the loaded one) or 'request refused' with status 503 (DynamoDB, SSM or another"
    " dependency was unavailable; callers may retry)."
)
TIMER_UNROUTED_DESCRIPTION = (
    "The timer function dropped a fired timer in the last 5 minutes (metric TimerUnrouted): its input"
    " was not a timer (reason=malformed) or no service owns its kind (reason=unknown_kind), typically an"
    " execution started by another release of memberflow. It is not retried. The FireTimer function's"
    " log group says which kind or what was wrong; the timer state machine's execution history has the"
    " input. A waiting run whose timer was dropped is still woken by the sweep;"
    " GET /admin/runs?status=waiting lists the runs that wait."
)
FUNCTION_ERRORS_HINTS = {
    API_HANDLER: "API Gateway answered those requests with 502 or 504; webhook senders retry them.",
    TIMER_FUNCTION: "The timer execution that invoked it failed too; the sweep resumes the run.",
    "SweepRuns": "That sweep did not finish; the next one starts within 5 minutes.",
}
"""What a failed invocation means for the functions the app has today, by logical id."""


def function_errors_description(function: str) -> dict[str, Any]:
    text = (
        f"The ${{{function}}} function failed an invocation in the last 5 minutes (AWS/Lambda Errors): it"
        " crashed, timed out or ran out of memory, which the app cannot count itself. Its log group"
        f" /aws/lambda/${{{function}}} shows 'Task timed out', 'Runtime exited' or the traceback."
    )
    hint = FUNCTION_ERRORS_HINTS.get(function)
    return {"Fn::Sub": f"{text} {hint}" if hint else text}


def alarms_group(shape: AppShape) -> Fragment:
    """Where alarms notify, the alarms on the app's own metrics, and one on each function's errors.

    The app alarms watch series generated from ``chalicelib.metrics.CATALOGUE`` (every source of a
    failed inbox record, both kinds of sweep item), so a source or kind added there is watched by the
    next package. ``AWS/Lambda`` ``Errors`` catches what the app cannot count: a crash outside the
    ``api`` decorator, a timeout, running out of memory. Every alarm fires on a single occurrence
    (at least 1 in 5 minutes; the sweep's failures in two sweeps in a row), since memberflow's traffic
    is low enough that a ratio or a higher bar would hide a total outage.
    """
    resources: dict[str, Any] = {
        "InboxFailedAlarm": metric_alarm(
            INBOX_FAILED_DESCRIPTION,
            every_series(INBOX_OUTCOME, outcome=FAILED_OUTCOME),
            label="failed inbox records",
        ),
        "SweepFailedAlarm": metric_alarm(
            SWEEP_FAILED_DESCRIPTION, every_series(SWEEP_FAILED), label="sweep failures", periods=2
        ),
        "SweepParkedAlarm": metric_alarm(
            SWEEP_PARKED_DESCRIPTION, every_series(SWEEP_PARKED), label="parked sweep items"
        ),
        "Api5xxAlarm": metric_alarm(API_5XX_DESCRIPTION, every_series(API_5XX), label="5xx answers"),
        "TimerUnroutedAlarm": metric_alarm(
            TIMER_UNROUTED_DESCRIPTION, every_series(TIMER_UNROUTED), label="dropped timers"
        ),
    }
    for function in shape.functions:
        errors = {
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
        }
        resources[f"{function}ErrorsAlarm"] = metric_alarm(
            function_errors_description(function), [errors], label=f"{function} errors"
        )
    return Fragment(
        parameters={
            ALARM_TOPIC: {
                "Type": "String",
                "Default": "",
                "AllowedPattern": "^(arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]+)?$",
                "Description": "SNS topic the alarms notify (empty: alarms without actions)",
            }
        },
        conditions={HAS_ALARM_TOPIC: {"Fn::Not": [{"Fn::Equals": [{"Ref": ALARM_TOPIC}, ""]}]}},
        resources=resources,
    )


DEFAULT_GROUPS: tuple[Group, ...] = (
    tables_group,
    secrets_group,
    runtime_group,
    logs_group,
    delays_group,
    alarms_group,
    email_group,
    delivery_group,
)


def function_role(statements: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The one role every function runs as; its inline policy is the union of the groups' statements."""
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "memberflow-runtime",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": [dict(s) for s in statements]},
                }
            ],
        },
    }


def build_template(shape: AppShape, groups: Sequence[Group] = DEFAULT_GROUPS) -> dict[str, Any]:
    """The merge template: every group's fragment, the function role, and a patch per function."""
    fragment = Fragment()
    for group in groups:
        fragment = fragment.merge(group(shape))
    resources = dict(fragment.resources)
    if FUNCTION_ROLE in resources:
        raise ValueError(f"a group defines {FUNCTION_ROLE}, which build_template owns")
    resources[FUNCTION_ROLE] = function_role(fragment.statements)
    unknown = sorted(fragment.functions.keys() - set(shape.functions))
    if unknown:
        raise ValueError(f"groups patch functions the app does not have: {', '.join(unknown)}")
    for name in shape.functions:
        if name in resources:
            raise ValueError(f"a group defines a resource named like the function {name}")
        # Chalice's deep merge replaces its placeholder Role string and adds to its Environment.
        patch = fragment.functions.get(name, {})
        if {"Role", "Environment"} & patch.keys():
            raise ValueError(f"a group sets the Role or Environment of {name}, which build_template owns")
        resources[name] = {
            "Properties": {
                "Role": ROLE_ARN,
                "Environment": {"Variables": dict(fragment.environment)},
                **patch,
            }
        }
    outputs = {**fragment.outputs, "FunctionRoleArn": {"Value": ROLE_ARN}}
    template: dict[str, Any] = {
        "Description": f"{SERVICE_NAME}: Chalice app with its tables, roles, logs and delay state machine",
        "Parameters": fragment.parameters,
        "Resources": resources,
        "Outputs": outputs,
    }
    if fragment.conditions:
        template["Conditions"] = fragment.conditions
    return template


def check_packaged(template: Mapping[str, Any], shape: AppShape, merge: Mapping[str, Any]) -> list[str]:
    """Problems with a packaged template: a function the merge missed or a patch that did not land."""
    problems: list[str] = []
    resources: Mapping[str, Any] = template.get("Resources", {})
    packaged = sorted(name for name, res in resources.items() if res.get("Type") == SAM_FUNCTION)
    if packaged != sorted(shape.functions):
        problems.append(f"functions {packaged} differ from the merge template's {sorted(shape.functions)}")
    expected = merge["Resources"]
    for name in packaged:
        props = resources[name]["Properties"]
        if props.get("Role") != ROLE_ARN:
            problems.append(f"{name} runs as {props.get('Role')!r}, not {FUNCTION_ROLE}")
        wanted = expected.get(name, {}).get("Properties", {}).get("Environment", {}).get("Variables", {})
        got = props.get("Environment", {}).get("Variables", {})
        missing = sorted(key for key, value in wanted.items() if got.get(key) != value)
        if not wanted:
            problems.append(f"the merge template sets no environment for {name}")
        elif missing:
            problems.append(f"{name} lacks environment variables {missing}")
    for name, res in resources.items():
        if "Type" not in res:
            problems.append(f"{name} has no Type: the merge template patched a resource Chalice did not emit")
    return problems


def write_template(template: Mapping[str, Any], output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.resources", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="where to write the merge template")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--sam", type=Path, help="a chalice-generated sam.json to read the functions from")
    source.add_argument(
        "--function",
        action="append",
        default=[],
        help="function logical id (repeatable; default: every function the app defines)",
    )
    args = parser.parse_args(argv)
    if args.sam is not None:
        shape = AppShape.from_sam(json.loads(args.sam.read_text(encoding="utf-8")))
    else:
        default = ["APIHandler", TIMER_FUNCTION, "SweepRuns", DELIVERY_FUNCTION, RETRY_FUNCTION]
        shape = AppShape(functions=tuple(args.function or default))
    try:
        template = build_template(shape)
    except ValueError as exc:
        print(f"cannot build the merge template: {exc}", file=sys.stderr)
        return 1
    write_template(template, args.output)
    print(f"wrote {args.output} for functions {', '.join(shape.functions)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
