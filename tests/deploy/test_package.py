"""The deploy bundle: the merge template built from the pynamodb models, and the full `make package` run.

The first half checks ``infra.resources`` alone (no ``chalice package``): tables against the tables
pynamodb itself creates in moto, the role's DynamoDB grants, the per-function patches, the delay state
machine (its definition is the ASL file, its substitution points at the timer function, its roles are
least privilege, nothing depends on itself), and cfn-lint on the overlay merged into a minimal SAM
template. The second half runs ``scripts/package.py`` end to end
on a copy of the project (Chalice fetches Linux wheels, so it needs the package index) and checks the
real output: cfn-lint clean, the same table checks, the zip size bar, the role, every function's
environment, and that the bundle imports with nothing but the Lambda runtime's boto3 beside it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from chalice.package import TemplateDeepMerger
from chalice.utils import to_cfn_resource_name
from moto import mock_aws

from chalicelib.metrics import (
    API_5XX,
    FAILED_OUTCOME,
    INBOX_OUTCOME,
    INBOX_SOURCES,
    NAMESPACE,
    OUTBOX_KINDS,
    OUTBOX_PARKED,
    PARKED_KINDS,
    SERVICE,
    SERVICE_DIMENSION,
    SWEEP_FAILED,
    SWEEP_KINDS,
    SWEEP_PARKED,
    TIMER_UNROUTED,
    TIMER_UNROUTED_REASONS,
    EmfMetrics,
)
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import ALL_MODELS
from chalicelib.storage.names import TableNames
from infra.resources import (
    DELAY_STATE_MACHINE,
    DELAY_STATE_MACHINE_ROLE,
    DELAYS_ASL,
    EMAIL_CONFIGURATION_SET,
    FUNCTION_ROLE,
    MAX_ALARM_METRICS,
    ROLE_ARN,
    STATE_MACHINE_ARN_ENV,
    TIMER_FUNCTION,
    AppShape,
    Fragment,
    alarms_group,
    build_template,
    check_packaged,
    definition_placeholders,
    delays_group,
    metric_alarm,
    table_bindings,
)

ROOT = Path(__file__).resolve().parents[2]
TABLE_ENV_VARS = {f"MEMBERFLOW_{name.upper()}_TABLE" for name in TableNames.__dataclass_fields__}
RUNTIME_ENV_VARS = {
    "MEMBERFLOW_CONFIG",
    "ADMIN_TOKEN",
    "MEMBER_SESSION_SECRET",
    "POWERTOOLS_SERVICE_NAME",
    "LOG_LEVEL",
    STATE_MACHINE_ARN_ENV,
}
_STATES = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
STATE_MACHINE_ARN = {"Fn::Sub": f"{_STATES}:stateMachine:${{AWS::StackName}}-delays"}
EXECUTIONS_ARN = {"Fn::Sub": f"{_STATES}:execution:${{AWS::StackName}}-delays:*"}
LAMBDA_RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")
"""What the Lambda Python runtime already provides, so the bundle must not need to carry it."""


def _load_package_script() -> ModuleType:
    # scripts/ is not a package: load the script by path, registered so its dataclasses resolve.
    name = "memberflow_package_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "package.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pkg = _load_package_script()


# --- helpers shared by both halves ---------------------------------------------------------------


def _keys(schema: list[Mapping[str, str]]) -> dict[str, str]:
    return {key["KeyType"]: key["AttributeName"] for key in schema}


def _table_shape(description: Mapping[str, Any]) -> dict[str, Any]:
    """Keys, attribute types and indexes, in a form both DescribeTable and CloudFormation reduce to."""
    return {
        "attributes": {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]},
        "keys": _keys(description["KeySchema"]),
        "gsis": {
            i["IndexName"]: (_keys(i["KeySchema"]), i["Projection"]["ProjectionType"])
            for i in description.get("GlobalSecondaryIndexes", [])
        },
        "lsis": sorted(i["IndexName"] for i in description.get("LocalSecondaryIndexes", [])),
    }


@pytest.fixture(scope="module")
def pynamodb_tables() -> Iterator[dict[str, dict[str, Any]]]:
    """What pynamodb's own create_table makes of each model, keyed by model name."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        shapes: dict[str, dict[str, Any]] = {}
        for model in ALL_MODELS:
            model.create_table(wait=True)
            description = client.describe_table(TableName=model.Meta.table_name)["Table"]
            assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
            shapes[model.__name__] = _table_shape(description)
        yield shapes


def assert_tables_match_models(
    resources: Mapping[str, Any], pynamodb_tables: dict[str, dict[str, Any]]
) -> None:
    tables = {name: res for name, res in resources.items() if res.get("Type") == "AWS::DynamoDB::Table"}
    bindings = table_bindings()
    assert sorted(tables) == sorted(b.logical_id for b in bindings)
    assert len(bindings) == len(ALL_MODELS)
    for binding in bindings:
        table = tables[binding.logical_id]
        props = table["Properties"]
        assert _table_shape(props) == pynamodb_tables[binding.model.__name__], binding.logical_id
        assert _keys(props["KeySchema"]) == {
            k: v
            for k, v in (("HASH", binding.model._hash_keyname), ("RANGE", binding.model._range_keyname))
            if v is not None
        }
        assert sorted(i["IndexName"] for i in props.get("GlobalSecondaryIndexes", [])) == sorted(
            binding.model._indexes
        )
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"] == {"SSEEnabled": True}
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def _statements(resources: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for res in resources.values():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::IAM::Role":
            found += [
                s for policy in props.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]
            ]
        if res.get("Type") in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            found += props["PolicyDocument"]["Statement"]
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def assert_dynamodb_grants_only_the_tables(resources: Mapping[str, Any]) -> None:
    tables = {name for name, res in resources.items() if res.get("Type") == "AWS::DynamoDB::Table"}
    streams = [t for t in tables if "StreamSpecification" in resources[t]["Properties"]]
    allowed = [{"Fn::GetAtt": [t, "Arn"]} for t in tables] + [
        {"Fn::Sub": f"${{{t}.Arn}}/index/*"} for t in tables
    ]
    allowed += [{"Fn::GetAtt": [t, "StreamArn"]} for t in streams]
    granted: set[str] = set()
    for statement in _statements(resources):
        actions = _as_list(statement["Action"])
        if not any(a.startswith("dynamodb:") for a in actions):
            continue
        assert statement["Effect"] == "Allow"
        assert all(a.startswith("dynamodb:") and "*" not in a for a in actions), actions
        for resource in _as_list(statement["Resource"]):
            assert resource in allowed, resource
            granted.add(json.dumps(resource))
    assert {json.dumps({"Fn::GetAtt": [t, "Arn"]}) for t in tables} <= granted
    for statement in _statements(resources):
        assert "*" not in _as_list(statement["Resource"])


def assert_every_function_is_patched(resources: Mapping[str, Any]) -> None:
    functions = {name: res for name, res in resources.items() if res["Type"] == "AWS::Serverless::Function"}
    assert functions
    for name, res in functions.items():
        props = res["Properties"]
        assert props["Role"] == ROLE_ARN, name
        env = props["Environment"]["Variables"]
        assert env.keys() >= TABLE_ENV_VARS | RUNTIME_ENV_VARS, name
        for binding in table_bindings():
            assert env[binding.env_var] == {"Ref": binding.logical_id}
        assert env["ADMIN_TOKEN"] == {"Fn::Sub": "ssm:${AdminTokenParameterName}"}
        assert env["MEMBER_SESSION_SECRET"] == {"Fn::Sub": "ssm:${MemberSessionSecretParameterName}"}
        assert env["ACCESS_API_TOKEN"] == {"Fn::Sub": "ssm:${AccessTokenParameterName}"}
        assert env["POWERTOOLS_SERVICE_NAME"] == "memberflow"
        # Built from the known name: a Ref to the state machine would be a circular dependency.
        assert env[STATE_MACHINE_ARN_ENV] == STATE_MACHINE_ARN


_PSEUDO = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def _references(value: Any) -> set[str]:
    """Logical ids a value points at through Ref, Fn::GetAtt or Fn::Sub (parameters included)."""
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value))
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    for key, inner in value.items():
        if key == "Ref" and isinstance(inner, str):
            found.add(inner)
        elif key == "Fn::GetAtt":
            found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
        elif key == "Fn::Sub":
            text, variables = (inner, {}) if isinstance(inner, str) else (inner[0], inner[1])
            found |= {name for name in _PSEUDO.findall(text) if name not in variables}
            found |= _references(variables)
        else:
            found |= _references(inner)
    return found


def assert_no_circular_dependency(resources: Mapping[str, Any]) -> None:
    graph = {
        name: (_references(res) | set(_as_list(res.get("DependsOn", [])))) & resources.keys()
        for name, res in resources.items()
    }
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise AssertionError("circular dependency: " + " -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


def assert_delay_state_machine(resources: Mapping[str, Any]) -> None:
    """The state machine runs the ASL file, invokes the timer function, and nothing more is allowed."""
    machine = resources[DELAY_STATE_MACHINE]
    assert machine["Type"] == "AWS::StepFunctions::StateMachine"
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["StateMachineName"] == {"Fn::Sub": "${AWS::StackName}-delays"}
    assert props["Definition"] == json.loads(DELAYS_ASL.read_text(encoding="utf-8"))
    assert "DefinitionString" not in props
    assert props["DefinitionSubstitutions"] == {"TimerFunctionArn": {"Fn::GetAtt": [TIMER_FUNCTION, "Arn"]}}
    assert definition_placeholders(props["Definition"]) == props["DefinitionSubstitutions"].keys()
    assert resources[TIMER_FUNCTION]["Properties"]["Role"] == ROLE_ARN
    assert props["RoleArn"] == {"Fn::GetAtt": [DELAY_STATE_MACHINE_ROLE, "Arn"]}

    role = resources[DELAY_STATE_MACHINE_ROLE]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert trust["Condition"]["ArnLike"] == {"aws:SourceArn": STATE_MACHINE_ARN}
    [policy] = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Sid": "InvokeTimerFunction",
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": [{"Fn::GetAtt": [TIMER_FUNCTION, "Arn"]}],
        }
    ]

    function_statements = resources[FUNCTION_ROLE]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    states = [s for s in function_statements if any(a.startswith("states:") for a in _as_list(s["Action"]))]
    assert {(tuple(_as_list(s["Action"])), json.dumps(s["Resource"])) for s in states} == {
        (("states:StartExecution",), json.dumps(STATE_MACHINE_ARN)),
        (("states:DescribeExecution", "states:StopExecution"), json.dumps(EXECUTIONS_ARN)),
    }
    # Only the delay state machine's role may invoke functions; nothing grants more than it names.
    invokers = [s for s in _statements(resources) if "lambda:InvokeFunction" in _as_list(s["Action"])]
    assert len(invokers) == 1
    for statement in _statements(resources):
        assert all("*" not in action for action in _as_list(statement["Action"])), statement

    alarm = resources["DelayExecutionsFailedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": DELAY_STATE_MACHINE}}]
    assert watched_series(alarm) == {
        _series("AWS/States", "ExecutionsFailed", StateMachineArn={"Ref": DELAY_STATE_MACHINE})
    }


Watched = tuple[str, str, tuple[tuple[str, str], ...]]
"""A series an alarm watches: namespace, metric name, and its dimensions (values as JSON)."""


def _series(namespace: str, name: str, **dimensions: Any) -> Watched:
    return namespace, name, tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in dimensions.items()))


def _app(name: str, **dimensions: str) -> Watched:
    return _series(NAMESPACE, name, **{SERVICE_DIMENSION: SERVICE, **dimensions})


APP_ALARMS: dict[str, set[Watched]] = {
    "InboxFailedAlarm": {_app(INBOX_OUTCOME, source=s, outcome=FAILED_OUTCOME) for s in INBOX_SOURCES},
    "SweepFailedAlarm": {_app(SWEEP_FAILED, kind=kind) for kind in SWEEP_KINDS},
    "SweepParkedAlarm": {_app(SWEEP_PARKED, kind=kind) for kind in PARKED_KINDS},
    "Api5xxAlarm": {_app(API_5XX)},
    "TimerUnroutedAlarm": {_app(TIMER_UNROUTED, reason=reason) for reason in TIMER_UNROUTED_REASONS},
    "OutboxParkedAlarm": {_app(OUTBOX_PARKED, kind=kind) for kind in OUTBOX_KINDS},
}
"""Each alarm on the app's metrics and every series (``chalicelib.metrics`` names) it must add up."""
ALARM_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def _metric(metric: Mapping[str, Any]) -> Watched:
    dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
    return _series(metric["Namespace"], metric["MetricName"], **dimensions)


def watched_series(alarm: Mapping[str, Any]) -> set[Watched]:
    """What an alarm adds up: its one metric (Sum), or every metric of its ``SUM(FILL(METRICS(), 0))``."""
    if "Metrics" not in alarm:
        assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 300)
        return {_metric(alarm)}
    stats = [m for m in alarm["Metrics"] if "MetricStat" in m]
    [total] = [m for m in alarm["Metrics"] if "MetricStat" not in m]
    assert total["Expression"] == "SUM(FILL(METRICS(), 0))"
    assert total["ReturnData"] is True
    assert all(m["ReturnData"] is False for m in stats)
    assert all((m["MetricStat"]["Stat"], m["MetricStat"]["Period"]) == ("Sum", 300) for m in stats)
    assert len(stats) <= MAX_ALARM_METRICS
    return {_metric(m["MetricStat"]["Metric"]) for m in stats}


def assert_alarms(resources: Mapping[str, Any], functions: tuple[str, ...]) -> None:
    """Every alarm is there, watches what the app publishes, pages through the topic, and says what to do."""
    alarms = {n: r["Properties"] for n, r in resources.items() if r.get("Type") == "AWS::CloudWatch::Alarm"}
    errors = {f"{function}ErrorsAlarm": function for function in functions}
    assert alarms.keys() == APP_ALARMS.keys() | errors.keys() | {"DelayExecutionsFailedAlarm"}
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == ALARM_ACTIONS, name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        # Every alarm comes from metric_alarm: it fires only when all its periods breach.
        assert alarm["DatapointsToAlarm"] == alarm["EvaluationPeriods"], name
    for name, series in APP_ALARMS.items():
        assert watched_series(alarms[name]) == series, name
        assert "GET /admin/" in alarms[name]["AlarmDescription"], name
    sweep = alarms["SweepFailedAlarm"]
    assert (sweep["EvaluationPeriods"], sweep["DatapointsToAlarm"]) == (2, 2)
    for name, function in errors.items():
        assert watched_series(alarms[name]) == {
            _series("AWS/Lambda", "Errors", FunctionName={"Ref": function})
        }
        description = alarms[name]["AlarmDescription"]["Fn::Sub"]
        assert f"/aws/lambda/${{{function}}}" in description, name


# --- infra.resources alone -----------------------------------------------------------------------

SHAPE = AppShape(
    functions=("APIHandler", TIMER_FUNCTION, "OutboxSweeper", "SweepRuns"),
    runtime="python3.11",
    dependency_layer=True,
)


def _chalice_like(shape: AppShape) -> dict[str, Any]:
    """The skeleton `chalice package` emits: functions with the placeholder role, and the layer."""
    functions = {
        name: {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Runtime": shape.runtime,
                "Handler": "app.app",
                "CodeUri": "./deployment.zip",
                "Layers": [{"Ref": "ManagedLayer"}],
                "Role": "arn:aws:iam::000000000000:role/placeholder",
                "Environment": {"Variables": {"FROM_STAGE": "kept"}},
            },
        }
        for name in shape.functions
    }
    layer = {
        "Type": "AWS::Serverless::LayerVersion",
        "Properties": {"ContentUri": "./layer-deployment.zip", "CompatibleRuntimes": [shape.runtime]},
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {"ManagedLayer": layer, **functions},
        "Outputs": {},
    }


def test_every_model_gets_the_table_pynamodb_would_create(pynamodb_tables: dict[str, dict[str, Any]]) -> None:
    assert_tables_match_models(build_template(SHAPE)["Resources"], pynamodb_tables)


def test_each_table_is_named_by_the_field_the_stores_bind_its_model_to() -> None:
    before = {model: model.Meta.table_name for model in ALL_MODELS}
    names = TableNames.with_prefix("probe-")
    tables = Tables(names)
    for binding in table_bindings():
        bound = getattr(tables, binding.field)
        assert issubclass(bound, binding.model)
        assert bound.Meta.table_name == getattr(names, binding.field)
    # Binding derives classes; the schema classes the template is built from keep their names.
    assert {model: model.Meta.table_name for model in ALL_MODELS} == before


def test_role_grants_dynamodb_on_the_generated_tables_only() -> None:
    resources = build_template(SHAPE)["Resources"]
    assert_dynamodb_grants_only_the_tables(resources)
    ssm = [s for s in _statements(resources) if "ssm:GetParameter" in _as_list(s["Action"])]
    assert [s["Action"] for s in ssm] == [["ssm:GetParameter"]]
    assert ssm[0]["Resource"]["Fn::Sub"].endswith(":parameter/memberflow/*")
    logs = resources["FunctionLogsPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Resource"]
    assert logs == [{"Fn::GetAtt": [f"{name}LogGroup", "Arn"]} for name in SHAPE.functions]


def test_role_may_scan_only_the_tables_a_store_scans() -> None:
    # POST /admin/kit/resync pages through the contacts' keys; the versions store scans its own
    # table. No other table, and no index, may be scanned.
    statements = _statements(build_template(SHAPE)["Resources"])
    scans = [s for s in statements if "dynamodb:Scan" in _as_list(s["Action"])]
    assert [(s["Sid"], s["Action"]) for s in scans] == [("TableScans", ["dynamodb:Scan"])]
    assert {r["Fn::GetAtt"][0] for r in _as_list(scans[0]["Resource"])} == {
        "ContactsTable",
        "VersionsTable",
    }


def test_role_may_send_email_from_this_accounts_identities_with_one_configuration_set() -> None:
    template = build_template(SHAPE)
    ses = [
        s
        for s in _statements(template["Resources"])
        if any(a.startswith("ses:") for a in _as_list(s["Action"]))
    ]
    here = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}"

    assert ses == [
        {
            "Sid": "SendEmail",
            "Effect": "Allow",
            "Action": ["ses:SendEmail"],
            "Resource": [
                {"Fn::Sub": f"{here}:identity/*"},
                {"Fn::Sub": f"{here}:configuration-set/${{{EMAIL_CONFIGURATION_SET}}}"},
            ],
        }
    ]
    parameter = template["Parameters"][EMAIL_CONFIGURATION_SET]
    # A name, never a pattern: "*" would let the functions send with any configuration set.
    assert parameter["Default"] == "memberflow"
    assert not re.fullmatch(parameter["AllowedPattern"], "*")
    assert re.fullmatch(parameter["AllowedPattern"], "memberflow-prod_2")


def test_merged_into_a_chalice_like_template_every_function_is_patched_and_lints_clean(
    tmp_path: Path,
) -> None:
    merge = build_template(SHAPE)
    merged = TemplateDeepMerger().merge(merge, _chalice_like(SHAPE))
    assert_every_function_is_patched(merged["Resources"])
    assert merged["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]["FROM_STAGE"] == "kept"
    assert check_packaged(merged, SHAPE, merge) == []
    path = tmp_path / "sam.json"
    path.write_text(json.dumps(merged), encoding="utf-8")
    assert pkg.run_cfn_lint(path) == 0


def test_check_packaged_reports_a_function_the_merge_missed() -> None:
    merge = build_template(AppShape(functions=("APIHandler", TIMER_FUNCTION)))
    merged = TemplateDeepMerger().merge(merge, _chalice_like(SHAPE))
    problems = check_packaged(merged, AppShape(functions=("APIHandler", TIMER_FUNCTION)), merge)
    assert any("OutboxSweeper runs as" in p for p in problems)


def test_the_delay_state_machine_runs_the_asl_file_and_invokes_only_the_timer_function() -> None:
    merged = TemplateDeepMerger().merge(build_template(SHAPE), _chalice_like(SHAPE))
    assert_delay_state_machine(merged["Resources"])
    assert merged["Outputs"]["DelayStateMachineArn"] == {"Value": {"Ref": DELAY_STATE_MACHINE}}


def test_nothing_in_the_template_depends_on_itself() -> None:
    merged = TemplateDeepMerger().merge(build_template(SHAPE), _chalice_like(SHAPE))
    assert_no_circular_dependency(merged["Resources"])
    assert DELAY_STATE_MACHINE in _references(merged["Resources"]["DelayExecutionsFailedAlarm"])
    assert TIMER_FUNCTION in _references(merged["Resources"][DELAY_STATE_MACHINE])
    for function in SHAPE.functions:
        assert DELAY_STATE_MACHINE not in _references(merged["Resources"][function])
    with pytest.raises(AssertionError, match="circular dependency: A -> B -> A"):
        assert_no_circular_dependency({"A": {"Properties": {"X": {"Ref": "B"}}}, "B": {"DependsOn": "A"}})


def test_the_timer_function_id_is_the_one_chalice_emits() -> None:
    assert to_cfn_resource_name("fire_timer") == TIMER_FUNCTION


def test_an_app_without_the_timer_function_cannot_be_packaged() -> None:
    # Skipping the state machine would deploy automations whose waits never end but by the sweep.
    with pytest.raises(ValueError, match=r"needs the function FireTimer .*only APIHandler, SweepRuns"):
        build_template(AppShape(functions=("APIHandler", "SweepRuns")))
    with pytest.raises(ValueError, match="FireTimer"):
        delays_group(AppShape(functions=("APIHandler",)))


def test_alarm_actions_follow_the_topic_parameter() -> None:
    template = build_template(SHAPE)
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    actions = template["Resources"]["DelayExecutionsFailedAlarm"]["Properties"]["AlarmActions"]
    assert actions == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""


def test_every_alarm_watches_the_app_metrics_and_every_function_and_pages_through_the_topic() -> None:
    assert_alarms(build_template(SHAPE)["Resources"], SHAPE.functions)
    group = alarms_group(SHAPE)
    assert group.parameters.keys() == {"AlarmTopicArn"}
    assert group.conditions.keys() == {"HasAlarmTopic"}


def test_the_alarms_watch_the_series_emf_metrics_publishes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real EMF lines, read as CloudWatch reads them, must land in the alarms' series.
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    emitted = {
        "InboxFailedAlarm": (INBOX_OUTCOME, {"source": "kit", "outcome": FAILED_OUTCOME}),
        "SweepFailedAlarm": (SWEEP_FAILED, {"kind": "event"}),
        "SweepParkedAlarm": (SWEEP_PARKED, {"kind": "run"}),
        "Api5xxAlarm": (API_5XX, {}),
        "TimerUnroutedAlarm": (TIMER_UNROUTED, {"reason": "unknown_kind"}),
    }
    alarms = build_template(SHAPE)["Resources"]
    for name, (metric, dimensions) in emitted.items():
        metrics = EmfMetrics()
        capsys.readouterr()
        metrics.count(metric, **dimensions)
        metrics.flush()
        [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
        [directive] = line["_aws"]["CloudWatchMetrics"]
        [names] = directive["Dimensions"]
        [definition] = directive["Metrics"]
        published = _series(directive["Namespace"], definition["Name"], **{k: line[k] for k in names})
        assert published in watched_series(alarms[name]["Properties"]), name


def test_an_alarm_takes_at_most_ten_metrics() -> None:
    metric = {"Namespace": NAMESPACE, "MetricName": API_5XX}
    assert len(metric_alarm("x", [metric] * MAX_ALARM_METRICS, label="ten")["Properties"]["Metrics"]) == 11
    with pytest.raises(ValueError, match="eleven: 11 series"):
        metric_alarm("x", [metric] * (MAX_ALARM_METRICS + 1), label="eleven")


def test_app_shape_is_read_from_chalice_output() -> None:
    shape = AppShape.from_sam(_chalice_like(SHAPE))
    assert shape == SHAPE
    assert shape.config_path == "/opt/python/lib/python3.11/site-packages/memberflow_config/memberflow.yaml"
    assert AppShape(("APIHandler",), dependency_layer=False).config_path == (
        "/var/task/memberflow_config/memberflow.yaml"
    )


def test_two_groups_cannot_define_the_same_resource() -> None:
    with pytest.raises(ValueError, match="resources defined twice: ContactsTable"):
        Fragment(resources={"ContactsTable": {}}).merge(Fragment(resources={"ContactsTable": {}}))
    with pytest.raises(ValueError, match=FUNCTION_ROLE):
        build_template(SHAPE, groups=[lambda shape: Fragment(resources={FUNCTION_ROLE: {}})])


# --- scripts/package.py steps that need no network -----------------------------------------------


def test_the_vendored_pynamodb_is_the_tested_one() -> None:
    assert pkg.pynamodb_requirement(ROOT).replace(" ", "") == "pynamodb>=6.1,<6.2"


def test_config_source_prefers_the_argument_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMBERFLOW_CONFIG", raising=False)
    assert pkg.config_source(ROOT) == ROOT / "config" / "example.yaml"
    monkeypatch.setenv("MEMBERFLOW_CONFIG", "config/minimal.yaml")
    assert pkg.config_source(ROOT) == ROOT / "config" / "minimal.yaml"
    assert pkg.config_source(ROOT, "/abs/prod.yaml") == Path("/abs/prod.yaml")


def test_an_invalid_config_is_not_bundled(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kit: [unclosed\n", encoding="utf-8")
    with pytest.raises(pkg.PackageError, match="not a valid config"):
        pkg.bundle_config(tmp_path, bad)
    assert not (tmp_path / "vendor").exists()


def test_a_function_zip_of_a_megabyte_fails_the_size_guard(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "deployment.zip", "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("blob", os.urandom(pkg.FUNCTION_ZIP_LIMIT))
    with pytest.raises(pkg.PackageError, match=r"deployment\.zip is"):
        pkg.check_zip_sizes(tmp_path)


# --- the full pipeline ---------------------------------------------------------------------------

PROJECT_PARTS = ("app.py", "chalicelib", "config", "infra", "requirements.txt", "requirements-dev.txt")


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, float]:
    """`scripts/package.py --stage dev` on a copy of the project, so vendor/ and out/ stay private."""
    if not (ROOT / "app.py").exists():
        pytest.skip("app.py is not written yet")
    project = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in PROJECT_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, project / part, ignore=ignore)
        else:
            shutil.copy2(source, project / part)
    (project / ".chalice").mkdir()
    shutil.copy2(ROOT / ".chalice" / "config.json", project / ".chalice" / "config.json")
    started = time.monotonic()
    result = pkg.package(project, "dev", project / "out", "config/example.yaml")
    return result, project, time.monotonic() - started


def _sam(packaged: tuple[Any, Path, float]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(packaged[0].template.read_text(encoding="utf-8"))
    return data


def test_package_output_passes_cfn_lint(packaged: tuple[Any, Path, float]) -> None:
    result, _, seconds = packaged
    print(f"package pipeline took {seconds:.1f}s; zips {result.zip_sizes}")
    assert result.lint_status == 0
    assert pkg.run_cfn_lint(result.template) == 0


def test_package_output_has_every_models_table(
    packaged: tuple[Any, Path, float], pynamodb_tables: dict[str, dict[str, Any]]
) -> None:
    assert_tables_match_models(_sam(packaged)["Resources"], pynamodb_tables)


def test_package_output_function_zip_is_under_a_megabyte(packaged: tuple[Any, Path, float]) -> None:
    sizes = packaged[0].zip_sizes
    assert sizes["deployment.zip"] < 1_000_000
    with zipfile.ZipFile(packaged[0].template.parent / "deployment.zip") as archive:
        names = archive.namelist()
    assert "app.py" in names
    assert not any(n.startswith(("botocore/", "pydantic_core/", "pynamodb/")) for n in names)


def test_package_output_holds_nothing_of_the_local_stack(packaged: tuple[Any, Path, float]) -> None:
    # make run's mailbox (GET /_local/mail) is served by devstack's local server, never by the app.
    with zipfile.ZipFile(packaged[0].template.parent / "deployment.zip") as archive:
        names = archive.namelist()
        sources = b"".join(archive.read(n) for n in names if n.endswith(".py"))
    assert not any(n.startswith("devstack/") for n in names)
    assert b"/_local/" not in sources
    apis = [
        res["Properties"]["DefinitionBody"]["paths"]
        for res in _sam(packaged)["Resources"].values()
        if "DefinitionBody" in res.get("Properties", {})
    ]
    assert apis
    assert [path for paths in apis for path in paths if path.startswith("/_local")] == []


def test_package_output_role_touches_only_the_generated_tables(packaged: tuple[Any, Path, float]) -> None:
    assert_dynamodb_grants_only_the_tables(_sam(packaged)["Resources"])


def test_package_output_has_the_delay_state_machine(packaged: tuple[Any, Path, float]) -> None:
    resources = _sam(packaged)["Resources"]
    assert resources[TIMER_FUNCTION]["Type"] == "AWS::Serverless::Function"
    assert resources[TIMER_FUNCTION]["Properties"]["Handler"] == "app.fire_timer"
    assert_delay_state_machine(resources)
    assert_no_circular_dependency(resources)
    sweep = [
        event
        for res in resources.values()
        if res["Type"] == "AWS::Serverless::Function"
        for event in res["Properties"].get("Events", {}).values()
        if event["Type"] == "Schedule"
    ]
    assert {"Type": "Schedule", "Properties": {"Schedule": "rate(5 minutes)"}} in sweep


def test_package_output_has_every_alarm(packaged: tuple[Any, Path, float]) -> None:
    template = _sam(packaged)
    assert_alarms(template["Resources"], AppShape.from_sam(template).functions)


def test_package_output_every_function_gets_the_environment(packaged: tuple[Any, Path, float]) -> None:
    template = _sam(packaged)
    assert_every_function_is_patched(template["Resources"])
    assert "EndpointURL" in template["Outputs"]
    assert {f"{b.logical_id}Name" for b in table_bindings()} <= template["Outputs"].keys()


def test_the_app_object_names_the_functions_chalice_package_emits(packaged: tuple[Any, Path, float]) -> None:
    # The moto harness builds its roles from AppShape.from_app; it must be the shape `make package` uses.
    from app import app

    assert AppShape.from_app(app).functions == AppShape.from_sam(_sam(packaged)).functions
    assert AppShape.from_app(app).functions == packaged[0].shape.functions


def test_package_output_bundle_imports_beside_only_the_runtime_boto3(
    packaged: tuple[Any, Path, float], tmp_path: Path
) -> None:
    result = packaged[0]
    task, opt, runtime = tmp_path / "task", tmp_path / "opt", tmp_path / "runtime"
    with zipfile.ZipFile(result.template.parent / "deployment.zip") as archive:
        archive.extractall(task)
    with zipfile.ZipFile(result.template.parent / "layer-deployment.zip") as archive:
        archive.extractall(opt)
    runtime.mkdir()
    site = Path(boto3.__file__).parents[1]
    for name in LAMBDA_RUNTIME_PACKAGES:
        (runtime / name).symlink_to(site / name)
    config = _sam(packaged)["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    config_in_layer = opt / Path(config["MEMBERFLOW_CONFIG"]).relative_to("/opt")
    assert config_in_layer.read_bytes() == (ROOT / "config" / "example.yaml").read_bytes()
    layer_site = opt / "python" / "lib" / result.shape.runtime / "site-packages"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": os.pathsep.join(map(str, (task, layer_site, runtime))),
    }
    # -S: no site-packages, so every import must come from the bundle or the runtime's boto3.
    # HTML email templates auto-escape with MarkupSafe; without it liquid fails only when one renders.
    probe = (
        "import app, pynamodb, liquid, markupsafe, chalicelib.adapters.email.templates; "
        # argon2-cffi's compiled core comes in the layer as a Linux wheel: it must load and hash.
        "from chalicelib.adapters.passwords import Argon2Passwords; "
        "assert Argon2Passwords().hash('x' * 10).startswith('$argon2id$'); "
        "print(app.app.app_name, pynamodb.__file__, liquid.__file__, markupsafe.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=task, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("memberflow ")
    assert done.stdout.count(str(layer_site)) == 3


def test_package_output_delivers_the_outbox_from_its_stream_and_a_minute_schedule(
    packaged: tuple[Any, Path, float],
) -> None:
    resources = _sam(packaged)["Resources"]
    assert resources["OutboxTable"]["Properties"]["StreamSpecification"] == {"StreamViewType": "KEYS_ONLY"}
    deliver = resources["DeliverOutbox"]["Properties"]
    assert deliver["Handler"] == "app.deliver_outbox"
    (source,) = deliver["Events"].values()
    assert source["Type"] == "DynamoDB"
    stream = source["Properties"]
    assert stream["Stream"] == {"Fn::GetAtt": ["OutboxTable", "StreamArn"]}
    assert stream["StartingPosition"] == "TRIM_HORIZON"
    assert [json.loads(f["Pattern"]) for f in stream["FilterCriteria"]["Filters"]] == [
        {"eventName": ["INSERT"]}
    ]
    retry = resources["RetryOutbox"]["Properties"]
    assert retry["Handler"] == "app.retry_outbox"
    assert retry["Timeout"] == 90
    assert [e["Properties"]["Schedule"] for e in retry["Events"].values()] == ["rate(1 minute)"]
    statements = resources["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (reads,) = [s for s in statements if s.get("Sid") == "OutboxStream"]
    assert reads["Resource"] == [{"Fn::GetAtt": ["OutboxTable", "StreamArn"]}]
    assert set(reads["Action"]) == {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }
    assert resources["OutboxParkedAlarm"]["Type"] == "AWS::CloudWatch::Alarm"
    # The shared rate limit's bucket table is one of the tables the role may use.
    assert "RateLimitsTable" in resources
