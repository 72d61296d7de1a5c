"""``infra.intrinsics``: CloudFormation's intrinsics evaluated against given names, and nothing guessed.

The moto harness recreates the template's roles from these resolutions, so a resolver that returned
something for what it cannot know would grant the tests a policy that differs from the deployed one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app import app
from devstack.stack import function_names, plan, template_roles
from infra.intrinsics import (
    NO_VALUE,
    Physical,
    Stack,
    UnresolvedIntrinsic,
    decide_conditions,
    parameter_defaults,
    physical,
    plan_stack,
    resolve,
)
from infra.resources import (
    DELAY_STATE_MACHINE,
    DELAY_STATE_MACHINE_ROLE,
    FUNCTION_ROLE,
    TIMER_FUNCTION,
    AppShape,
    build_template,
)

STACK = Stack(
    name="memberflow-test",
    region="eu-west-1",
    account_id="111122223333",
    resources={
        "ContactsTable": Physical(
            "contacts", {"Arn": "arn:aws:dynamodb:eu-west-1:111122223333:table/contacts"}
        ),
        "ResumeRun": Physical("fn", {"Arn": "arn:aws:lambda:eu-west-1:111122223333:function:fn"}),
    },
    parameters={"Prefix": "/memberflow/"},
    conditions={"HasTopic": False},
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "AWS::StackName"}, "memberflow-test"),
        ({"Ref": "AWS::Partition"}, "aws"),
        ({"Ref": "Prefix"}, "/memberflow/"),
        ({"Ref": "ContactsTable"}, "contacts"),
        ({"Fn::GetAtt": ["ContactsTable", "Arn"]}, "arn:aws:dynamodb:eu-west-1:111122223333:table/contacts"),
        ({"Fn::GetAtt": "ResumeRun.Arn"}, "arn:aws:lambda:eu-west-1:111122223333:function:fn"),
        (
            {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${Prefix}*"},
            "arn:aws:ssm:eu-west-1:111122223333:parameter/memberflow/*",
        ),
        (
            {"Fn::Sub": "${ContactsTable.Arn}/index/*"},
            "arn:aws:dynamodb:eu-west-1:111122223333:table/contacts/index/*",
        ),
        ({"Fn::Sub": "${AWS::StackName}-delays"}, "memberflow-test-delays"),
        ({"Fn::Sub": ["${Name}-${AWS::Region}", {"Name": {"Ref": "ContactsTable"}}]}, "contacts-eu-west-1"),
        ({"Fn::Sub": "${!Literal} ${ContactsTable}"}, "${Literal} contacts"),
        ({"Fn::If": ["HasTopic", "yes", "no"]}, "no"),
        ({"Fn::Join": [":", ["a", {"Ref": "ContactsTable"}]]}, "a:contacts"),
        (
            {"Resource": [{"Ref": "ContactsTable"}, {"Fn::If": ["HasTopic", "x", {"Ref": "AWS::NoValue"}]}]},
            {"Resource": ["contacts"]},
        ),
        ({"Keep": {"Fn::If": ["HasTopic", "x", {"Ref": "AWS::NoValue"}]}, "Other": 1}, {"Other": 1}),
    ],
)
def test_intrinsics_resolve_to_the_given_names(value: Any, expected: Any) -> None:
    assert resolve(value, STACK) == expected


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ({"Ref": "Unknown"}, "Ref to Unknown"),
        ({"Fn::GetAtt": ["Unknown", "Arn"]}, "Unknown, which is not a known resource"),
        ({"Fn::GetAtt": ["ContactsTable", "StreamArn"]}, r"ContactsTable.StreamArn: only \['Arn'\]"),
        ({"Fn::Sub": "${Unknown.Arn}"}, "Unknown"),
        ({"Fn::Sub": "${Nope}"}, "Ref to Nope"),
        ({"Fn::If": ["Undecided", 1, 2]}, "Undecided, which was not decided"),
        ({"Fn::ImportValue": "shared-topic"}, "Fn::ImportValue is not supported"),
        ({"Fn::Select": [0, ["a"]]}, "Fn::Select is not supported"),
        ({"Fn::Sub": 3}, "Fn::Sub takes"),
        ({"Deep": [{"Ref": "Unknown"}]}, "Ref to Unknown"),
    ],
)
def test_what_cannot_be_resolved_raises(value: Any, complaint: str) -> None:
    with pytest.raises(UnresolvedIntrinsic, match=complaint):
        resolve(value, STACK)


def test_no_value_is_only_a_marker() -> None:
    assert resolve({"Ref": "AWS::NoValue"}, STACK) is NO_VALUE


def test_physical_names_are_what_cloudformation_reports() -> None:
    assert physical("AWS::IAM::Role", "r", STACK) == Physical(
        "r", {"Arn": "arn:aws:iam::111122223333:role/r"}
    )
    machine = "arn:aws:states:eu-west-1:111122223333:stateMachine:m"
    assert physical("AWS::StepFunctions::StateMachine", "m", STACK) == Physical(
        machine, {"Arn": machine, "Name": "m"}
    )
    assert physical("AWS::Logs::LogGroup", "/aws/lambda/f", STACK).attributes["Arn"] == (
        "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/f:*"
    )
    function = "arn:aws:lambda:eu-west-1:111122223333:function:f"
    assert physical("AWS::Lambda::Function", function, STACK) == Physical("f", {"Arn": function})
    with pytest.raises(UnresolvedIntrinsic, match="AWS::SNS::Topic"):
        physical("AWS::SNS::Topic", "t", STACK)


def test_plan_names_resources_by_their_name_property_or_the_stack() -> None:
    template = {
        "Resources": {
            "Group": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": {"Fn::Sub": "/aws/lambda/${Fn}"}},
            },
            "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {}},
        }
    }
    function = physical("AWS::Lambda::Function", "stack-fn", STACK)
    planned = plan_stack(template, STACK, {"Fn": function})
    assert planned.resources["Group"].ref == "/aws/lambda/stack-fn"
    assert planned.resources["Role"].ref == "memberflow-test-Role"
    assert "Alarm" not in planned.resources  # no naming rule: referring to it raises later
    with pytest.raises(UnresolvedIntrinsic, match=r"cannot name Group \(Ref to Fn"):
        plan_stack(template, STACK, {})


def test_conditions_are_decided_from_the_parameters() -> None:
    template = {
        "Parameters": {"Topic": {"Type": "String", "Default": ""}, "Days": {"Type": "Number", "Default": 30}},
        "Conditions": {
            "HasTopic": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Topic"}, ""]}]},
            "Either": {"Fn::Or": [{"Condition": "HasTopic"}, {"Fn::Equals": [{"Ref": "Days"}, "30"]}]},
        },
    }
    stack = Stack(name="s", region="r", account_id="1", parameters=parameter_defaults(template))
    assert stack.parameters == {"Topic": "", "Days": "30"}
    assert decide_conditions(template, stack) == {"HasTopic": False, "Either": True}
    with pytest.raises(UnresolvedIntrinsic, match="has no default"):
        parameter_defaults({"Parameters": {"Required": {"Type": "String"}}})


def test_the_packaged_roles_resolve_completely() -> None:
    shape = AppShape.from_app(app)
    template = build_template(shape)
    cfn = plan(
        template,
        stack_name="memberflow-test",
        region="us-east-1",
        functions=function_names(app, "memberflow-test"),
    )
    roles = template_roles(template, cfn)
    assert set(roles) == {FUNCTION_ROLE, DELAY_STATE_MACHINE_ROLE}
    text = json.dumps({name: (role.trust, role.policies) for name, role in roles.items()})
    assert "Fn::" not in text
    assert '"Ref"' not in text
    assert cfn.resources[DELAY_STATE_MACHINE].attributes["Name"] == "memberflow-test-delays"
    invoke = roles[DELAY_STATE_MACHINE_ROLE].policies["invoke-timer-function"]["Statement"][0]
    assert invoke["Resource"] == ["arn:aws:lambda:us-east-1:123456789012:function:memberflow-test-fire_timer"]
    assert cfn.resources[TIMER_FUNCTION].ref == "memberflow-test-fire_timer"
    statements = [s for p in roles[FUNCTION_ROLE].policies.values() for s in p["Statement"]]
    start = next(s for s in statements if s["Sid"] == "DelayStart")
    assert start["Resource"] == "arn:aws:states:us-east-1:123456789012:stateMachine:memberflow-test-delays"
