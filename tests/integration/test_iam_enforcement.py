"""The harness bites: on moto with ``devstack.moto_iam``, what the packaged policy does not allow fails.

The roles are the template's, statement for statement. Each negative test takes that policy, removes
or steps around exactly one grant, and shows the call that needed it refused with
AccessDeniedException, as AWS refuses it; the limits tests show DynamoDB's size rules refusing what
AWS refuses. The pure tests at the end pin the (action, resource) pairs AWS checks per request and
the item sizes of the DynamoDB developer guide.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from pynamodb.exceptions import PutError

from app import app
from chalicelib.adapters.aws.ses import SesMailer
from chalicelib.adapters.aws.ssm import ssm_fetcher
from chalicelib.adapters.aws.stepfunctions import StepFunctionsScheduler
from chalicelib.domain.timers import Timer, TimerKind
from chalicelib.services.ports.mailer import MailerPermanent, OutgoingEmail
from devstack import moto_iam, moto_support
from devstack.moto_iam import (
    dynamodb_pairs,
    dynamodbstreams_pairs,
    lambda_pairs,
    sesv2_pairs,
    ssm_pairs,
    states_pairs,
)
from devstack.moto_support import TRANSACTION_LIMIT_BYTES, attribute_value_size, item_size, transaction_size
from infra.intrinsics import resolve
from infra.resources import (
    DELAY_STATE_MACHINE_ROLE,
    FUNCTION_ROLE,
    TIMER_FUNCTION,
    AppShape,
    build_template,
)
from tests.builders import inbox_record, unique_email
from tests.support.aws import AppAws, app_stores
from tests.support.stepfunctions import DelayStateMachine, delay_state_machine

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table"
CONTACTS = "memberflow-contacts"
EVENTS = "memberflow-events"


def denied(action: str, resource: str) -> str:
    """What AccessDeniedException says, as a regex: who is refused doing what on which ARN."""
    return rf"AccessDeniedException.*not authorized to perform: {action} on resource: {resource}(?: |$)"


def contact_item(email: str, **extra: Any) -> dict[str, Any]:
    return {"email": {"S": email}, **extra}


@pytest.fixture
def sfn() -> Iterator[DelayStateMachine]:
    with delay_state_machine(lambda event, context: {"fired": True}) as machine:
        yield machine


# --- the roles are the template's -----------------------------------------------------------------


def test_the_function_role_has_exactly_the_generated_statements(aws: AppAws) -> None:
    template = build_template(AppShape.from_app(app))
    cfn = aws.stack.cfn
    role = template["Resources"][FUNCTION_ROLE]["Properties"]
    expected = {p["PolicyName"]: resolve(p["PolicyDocument"], cfn) for p in role["Policies"]}
    for res in template["Resources"].values():
        if res.get("Type") == "AWS::IAM::Policy" and {"Ref": FUNCTION_ROLE} in res["Properties"]["Roles"]:
            expected[res["Properties"]["PolicyName"]] = resolve(res["Properties"]["PolicyDocument"], cfn)

    iam = aws.admin_client("iam")
    name = aws.stack.name(FUNCTION_ROLE)
    stored = {
        policy: iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]
    }
    assert stored == expected
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
    text = json.dumps(stored)
    assert "Fn::" not in text
    assert '"Ref"' not in text
    assert "dynamodb:TransactWriteItems" not in text  # each item is authorised as the write it wraps


# --- DynamoDB -------------------------------------------------------------------------------------


def test_a_write_the_policy_lacks_is_refused(aws: AppAws) -> None:
    aws.without("dynamodb:PutItem")
    with pytest.raises(PutError) as refused:
        app_stores().inbox.claim_event(inbox_record(email=unique_email()))
    assert refused.value.cause_response_code == "AccessDeniedException"
    assert refused.match(denied("dynamodb:PutItem", f"{TABLE}/{EVENTS}"))


def test_each_transaction_item_is_authorised_as_the_write_it_wraps(aws: AppAws) -> None:
    client = aws.app_client("dynamodb")
    event_id = f"evt-{uuid.uuid4().hex}"

    def transaction(email: str) -> dict[str, Any]:
        return {
            "TransactItems": [
                {"Put": {"TableName": CONTACTS, "Item": contact_item(email)}},
                {
                    "Update": {
                        "TableName": EVENTS,
                        "Key": {"id": {"S": event_id}},
                        "UpdateExpression": "SET #s = :s",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":s": {"S": "accepted"}},
                    }
                },
            ]
        }

    client.transact_write_items(**transaction(unique_email()))
    aws.without("dynamodb:UpdateItem")
    with pytest.raises(ClientError, match=denied("dynamodb:UpdateItem", f"{TABLE}/{EVENTS}")):
        client.transact_write_items(**transaction(unique_email()))


def test_a_table_outside_the_policy_is_refused(aws: AppAws) -> None:
    admin = aws.admin_client("dynamodb")
    admin.create_table(
        TableName="elsewhere",
        AttributeDefinitions=[{"AttributeName": "email", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "email", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    key = {"email": {"S": "ada@example.com"}}
    assert "Item" not in admin.get_item(TableName="elsewhere", Key=key)
    with pytest.raises(ClientError, match=denied("dynamodb:GetItem", f"{TABLE}/elsewhere")):
        aws.app_client("dynamodb").get_item(TableName="elsewhere", Key=key)


def test_an_index_is_authorised_as_its_own_arn(aws: AppAws) -> None:
    client = aws.app_client("dynamodb")
    query: dict[str, Any] = {
        "TableName": EVENTS,
        "IndexName": "by_status",
        "KeyConditionExpression": "#s = :s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": "failed"}},
    }
    assert client.query(**query)["Items"] == []
    aws.without("dynamodb:Query", sid="TableIndexes")
    by_id = {"#i": "id"}, {":i": {"S": "evt-1"}}
    assert (
        client.query(
            TableName=EVENTS,
            KeyConditionExpression="#i = :i",
            ExpressionAttributeNames=by_id[0],
            ExpressionAttributeValues=by_id[1],
        )["Items"]
        == []
    )
    with pytest.raises(ClientError, match=denied("dynamodb:Query", f"{TABLE}/{EVENTS}/index/by_status")):
        client.query(**query)


def test_actions_taken_away_one_after_another_all_stay_away(aws: AppAws) -> None:
    client = aws.app_client("dynamodb")
    key = {"email": {"S": unique_email()}}
    aws.without("dynamodb:GetItem")
    aws.without("dynamodb:BatchGetItem")
    with pytest.raises(ClientError, match=denied("dynamodb:GetItem", f"{TABLE}/{CONTACTS}")):
        client.get_item(TableName=CONTACTS, Key=key)
    with pytest.raises(ClientError, match=denied("dynamodb:BatchGetItem", f"{TABLE}/{CONTACTS}")):
        client.batch_get_item(RequestItems={CONTACTS: {"Keys": [key]}})
    client.put_item(TableName=CONTACTS, Item=key)  # the rest of the statement is still granted
    with pytest.raises(AssertionError, match="not granted dynamodb:GetItem"):
        aws.without("dynamodb:GetItem")


def test_a_batch_read_is_an_action_of_its_own(aws: AppAws) -> None:
    client = aws.app_client("dynamodb")
    key = {"email": {"S": unique_email()}}
    aws.without("dynamodb:BatchGetItem")
    assert "Item" not in client.get_item(TableName=CONTACTS, Key=key)
    with pytest.raises(ClientError, match=denied("dynamodb:BatchGetItem", f"{TABLE}/{CONTACTS}")):
        client.batch_get_item(RequestItems={CONTACTS: {"Keys": [key]}})


# --- DynamoDB's size limits -----------------------------------------------------------------------


def unvalidated_client() -> Any:
    # botocore would refuse over 100 actions itself; pynamodb turns that check off, and so does this.
    return boto3.client("dynamodb", config=Config(parameter_validation=False))


def big_puts(count: int, blob_bytes: int = 390_000) -> list[dict[str, Any]]:
    return [
        {"Put": {"TableName": CONTACTS, "Item": contact_item(unique_email(), blob={"S": "x" * blob_bytes})}}
        for _ in range(count)
    ]


def test_a_transaction_of_more_than_4_mb_is_refused_and_writes_nothing(aws: AppAws) -> None:
    client = aws.app_client("dynamodb")
    ten, eleven = big_puts(10), big_puts(11)  # 3.9 MB, then 4.3 MB: every item under 400 KB
    assert transaction_size({"TransactItems": eleven}) > TRANSACTION_LIMIT_BYTES
    client.transact_write_items(TransactItems=ten)
    with pytest.raises(ClientError, match=r"ValidationException.*4 MB"):
        client.transact_write_items(TransactItems=eleven)
    pages = aws.admin_client("dynamodb").get_paginator("scan").paginate(TableName=CONTACTS, Select="COUNT")
    assert sum(page["Count"] for page in pages) == 10


def test_an_item_over_400_kb_is_refused(aws: AppAws) -> None:
    client = aws.app_client("dynamodb")
    with pytest.raises(ClientError, match=r"ValidationException.*Item size has exceeded"):
        client.put_item(TableName=CONTACTS, Item=contact_item(unique_email(), blob={"S": "x" * 410_000}))


def test_a_transaction_of_more_than_100_actions_is_refused(aws: AppAws) -> None:
    puts = [{"Put": {"TableName": CONTACTS, "Item": contact_item(unique_email())}} for _ in range(101)]
    with pytest.raises(ClientError, match=r"ValidationException.*less than or equal to 100"):
        unvalidated_client().transact_write_items(TransactItems=puts)
    unvalidated_client().transact_write_items(TransactItems=puts[:100])


# --- Step Functions and Lambda --------------------------------------------------------------------


def timer() -> Timer:
    return Timer(
        kind=TimerKind.RUN_WAKEUP,
        key=f"r{uuid.uuid4().hex[:24]}-stepdigest",
        due_at=datetime.now(UTC).replace(microsecond=0),
        generation=1,
        email="ada@example.com",
    )


def test_starting_another_state_machine_is_refused(sfn: DelayStateMachine) -> None:
    own = sfn.client.describe_state_machine(stateMachineArn=sfn.state_machine_arn)
    other = sfn.client.create_state_machine(
        name="memberflow-test-other", definition=own["definition"], roleArn=own["roleArn"]
    )["stateMachineArn"]
    with pytest.raises(ClientError, match=denied("states:StartExecution", other)):
        StepFunctionsScheduler(other, client=sfn.app_client).start(timer())
    due = timer()
    StepFunctionsScheduler(sfn.state_machine_arn, client=sfn.app_client).start(due)
    assert sfn.wait_for(due.execution_name)["status"] == "SUCCEEDED"


def test_the_function_role_may_not_list_executions_nor_invoke_functions(sfn: DelayStateMachine) -> None:
    with pytest.raises(ClientError, match=denied("states:ListExecutions", sfn.state_machine_arn)):
        sfn.app_client.list_executions(stateMachineArn=sfn.state_machine_arn)
    with pytest.raises(ClientError, match=denied("lambda:InvokeFunction", sfn.function_arn)):
        sfn.aws.app_client("lambda").invoke(FunctionName=sfn.function_arn, Payload=b"{}")


def test_the_state_machine_role_invokes_the_timer_function_and_nothing_else(sfn: DelayStateMachine) -> None:
    as_machine = sfn.aws.role_credentials(DELAY_STATE_MACHINE_ROLE).client("lambda", "us-east-1")
    answer = as_machine.invoke(FunctionName=sfn.function_arn, Payload=json.dumps(timer().as_input()).encode())
    assert json.loads(answer["Payload"].read()) == {"fired": True}
    stack = sfn.aws.stack
    other = next(stack.arn(function) for function in stack.shape.functions if function != TIMER_FUNCTION)
    with pytest.raises(ClientError, match=denied("lambda:InvokeFunction", other)):
        as_machine.invoke(FunctionName=other, Payload=b"{}")


def test_a_state_machine_role_without_invoke_rights_fails_the_execution(sfn: DelayStateMachine) -> None:
    # The task runs as DelayStateMachineRole, not as moto's fixed credentials: take the grant away.
    sfn.aws.without("lambda:InvokeFunction", role=DELAY_STATE_MACHINE_ROLE)
    due = timer()
    sfn.start(due)
    execution = sfn.wait_for(due.execution_name)
    assert execution["status"] == "FAILED"
    assert "AccessDenied" in f"{execution.get('error')} {execution.get('cause')}"
    assert sfn.events == []


def test_a_service_integration_task_runs_as_the_state_machine_role_too(sfn: DelayStateMachine) -> None:
    # Not only Lambda tasks: a DynamoDB task signs as the role, which may not read the table.
    read = {
        "StartAt": "Read",
        "States": {
            "Read": {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:getItem",
                "Parameters": {"TableName": CONTACTS, "Key": {"email": {"S": "ada@example.com"}}},
                "End": True,
            }
        },
    }
    role = sfn.client.describe_state_machine(stateMachineArn=sfn.state_machine_arn)["roleArn"]
    reader = sfn.client.create_state_machine(
        name="memberflow-test-reader", definition=json.dumps(read), roleArn=role
    )["stateMachineArn"]
    execution = sfn.wait_for(sfn.client.start_execution(stateMachineArn=reader, name="read")["executionArn"])
    assert execution["status"] == "FAILED"
    role_name = sfn.aws.stack.name(DELAY_STATE_MACHINE_ROLE)
    assert re.search(
        rf"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/\S+ is not authorized to perform:"
        rf" dynamodb:GetItem on resource: {TABLE}/{CONTACTS} .*AccessDeniedException",
        execution["cause"],
    )


# --- SSM ------------------------------------------------------------------------------------------


def test_only_parameters_under_the_apps_prefix_are_readable(aws: AppAws) -> None:
    admin = aws.admin_client("ssm")
    for name in ("/memberflow/kit-token", "/elsewhere/kit-token"):
        admin.put_parameter(Name=name, Value=f"value of {name}", Type="SecureString")
    fetch = ssm_fetcher()
    assert fetch("/memberflow/kit-token") == "value of /memberflow/kit-token"
    parameter = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter"
    with pytest.raises(ClientError, match=denied("ssm:GetParameter", f"{parameter}/elsewhere/kit-token")):
        fetch("/elsewhere/kit-token")
    # GetParameters is an action of its own, which the role is not granted.
    with pytest.raises(ClientError, match=denied("ssm:GetParameters", f"{parameter}/memberflow/kit-token")):
        aws.app_client("ssm").get_parameters(Names=["/memberflow/kit-token"], WithDecryption=True)


# --- SES -------------------------------------------------------------------------------------------


def welcome(sender: str = "Ada <ada@example.com>", configuration_set: str | None = None) -> OutgoingEmail:
    return OutgoingEmail(
        sender=sender,
        to="member@members.test",
        subject="Welcome",
        text="Hello.",
        reference="mf-welcome",
        configuration_set=configuration_set,
    )


def test_sending_needs_ses_send_email(aws: AppAws) -> None:
    aws.admin_client("sesv2").create_email_identity(EmailIdentity="example.com")
    SesMailer().send(welcome())  # granted: the identity is in this account and region

    aws.without("ses:SendEmail")

    with pytest.raises(MailerPermanent) as refused:
        SesMailer().send(welcome())
    assert refused.value.code == "AccessDeniedException"
    assert refused.value.status == 403
    assert re.search(
        r"ses:SendEmail on resource: arn:aws:ses:us-east-1:\d+:identity/example\.com", str(refused.value)
    )


def test_only_the_stacks_configuration_set_may_be_named(aws: AppAws) -> None:
    aws.admin_client("sesv2").create_email_identity(EmailIdentity="ada@example.com")
    sets = f"arn:aws:ses:us-east-1:{ACCOUNT}:configuration-set"

    SesMailer().send(welcome(configuration_set="memberflow"))  # the parameter's default

    with pytest.raises(MailerPermanent, match=f"ses:SendEmail on resource: {sets}/marketing"):
        SesMailer().send(welcome(configuration_set="marketing"))


# --- moto_iam on its own ----------------------------------------------------------------------------


def modules_naming_boto_client_for() -> set[str]:
    """Every module of moto's interpreter whose source names ``boto_client_for``, read from moto's files."""
    import moto.stepfunctions.parser as parser

    root = Path(parser.__file__).parent
    return {
        ".".join((parser.__name__, *path.relative_to(root).with_suffix("").parts))
        for path in root.rglob("*.py")
        if "boto_client_for" in path.read_text(encoding="utf-8")
    }


def interpreter_client_factories() -> set[Any]:
    """``boto_client_for`` as every imported module of moto's interpreter holds it, ours or moto's."""
    return {
        module.boto_client_for
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser.") and hasattr(module, "boto_client_for")
    }


def test_install_is_idempotent_and_uninstall_gives_moto_back_its_own_code() -> None:
    from moto.awslambda.responses import LambdaResponse
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.sesv2.responses import SESV2Response
    from moto.ssm.responses import SimpleSystemManagerResponse
    from moto.stepfunctions.responses import StepFunctionResponse

    checked = (
        DynamoHandler,
        DynamoDBStreamsHandler,
        StepFunctionResponse,
        SimpleSystemManagerResponse,
        LambdaResponse,
        SESV2Response,
    )
    authorise = "_authenticate_and_authorize_normal_action"
    for name in modules_naming_boto_client_for():
        importlib.import_module(name)
    moto_support.install(iam=True)
    (patched,) = interpreter_client_factories()
    original = patched.__wrapped__
    assert original.__module__ == "moto.stepfunctions.parser.asl.utils.boto_client"
    assert not hasattr(original, "__wrapped__")
    dynamodb = {name: DynamoHandler.__dict__[name] for name in ("call_action", "transact_write_items")}

    moto_support.install(iam=True)
    assert interpreter_client_factories() == {patched}
    assert {name: DynamoHandler.__dict__[name] for name in dynamodb} == dynamodb  # not wrapped twice
    assert all(authorise in cls.__dict__ for cls in checked)

    moto_iam.uninstall()
    try:
        assert interpreter_client_factories() == {original}
        assert not any(authorise in cls.__dict__ for cls in checked)
        with pytest.raises(RuntimeError, match=r"install\(iam=True\)"), moto_iam.enforcing():
            pass
    finally:
        moto_support.install(iam=True)
    (reinstalled,) = interpreter_client_factories()
    assert reinstalled.__wrapped__ is original


def test_every_interpreter_module_that_makes_clients_is_patched() -> None:
    # Each of them imported boto_client_for by name; one left out would run its tasks as "ak"/"sk".
    assert modules_naming_boto_client_for() == set(moto_iam.INTERPRETER_CLIENT_MODULES)


WHERE = ("us-east-1", ACCOUNT, "aws")


def test_dynamodb_requests_are_checked_per_item_table_and_index() -> None:
    put = {"Put": {"TableName": "a", "Item": {}}}
    update = {"Update": {"TableName": "b", "Key": {}}}
    check = {"ConditionCheck": {"TableName": "a", "Key": {}}}
    delete = {"Delete": {"TableName": f"{TABLE}/c", "Key": {}}}
    assert dynamodb_pairs(
        "TransactWriteItems", {"TransactItems": [put, update, check, delete, put]}, *WHERE
    ) == [
        ("dynamodb:PutItem", f"{TABLE}/a"),
        ("dynamodb:UpdateItem", f"{TABLE}/b"),
        ("dynamodb:ConditionCheckItem", f"{TABLE}/a"),
        ("dynamodb:DeleteItem", f"{TABLE}/c"),
    ]
    gets = {"TransactItems": [{"Get": {"TableName": "a", "Key": {}}}, {"Get": {"TableName": "b", "Key": {}}}]}
    assert dynamodb_pairs("TransactGetItems", gets, *WHERE) == [
        ("dynamodb:GetItem", f"{TABLE}/a"),
        ("dynamodb:GetItem", f"{TABLE}/b"),
    ]
    batch = {"RequestItems": {"a": {}, "b": {}}}
    assert dynamodb_pairs("BatchWriteItem", batch, *WHERE) == [
        ("dynamodb:BatchWriteItem", f"{TABLE}/a"),
        ("dynamodb:BatchWriteItem", f"{TABLE}/b"),
    ]
    assert dynamodb_pairs("Scan", {"TableName": "a", "IndexName": "i"}, *WHERE) == [
        ("dynamodb:Scan", f"{TABLE}/a/index/i")
    ]
    assert dynamodb_pairs("Query", {"TableName": "a"}, *WHERE) == [("dynamodb:Query", f"{TABLE}/a")]
    assert dynamodb_pairs("ListTables", {}, *WHERE) == [("dynamodb:ListTables", "*")]


def test_stream_requests_are_checked_on_the_stream_they_read() -> None:
    stream = f"{TABLE}/memberflow-outbox/stream/2026-11-30T08:00:00.000"
    assert dynamodbstreams_pairs("DescribeStream", {"StreamArn": stream}, *WHERE) == [
        ("dynamodb:DescribeStream", stream)
    ]
    shard = {"StreamArn": stream, "ShardId": "shardId-1", "ShardIteratorType": "TRIM_HORIZON"}
    assert dynamodbstreams_pairs("GetShardIterator", shard, *WHERE) == [("dynamodb:GetShardIterator", stream)]
    # moto's iterators start with the stream's ARN; AWS checks GetRecords on that stream.
    iterator = {"ShardIterator": f"{stream}|1|c29tZXRoaW5n"}
    assert dynamodbstreams_pairs("GetRecords", iterator, *WHERE) == [("dynamodb:GetRecords", stream)]
    assert dynamodbstreams_pairs("ListStreams", {"TableName": "a"}, *WHERE) == [("dynamodb:ListStreams", "*")]


def test_step_functions_ssm_and_lambda_requests_are_checked_on_what_they_name() -> None:
    machine = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:m"
    execution = f"arn:aws:states:us-east-1:{ACCOUNT}:execution:m:e"
    assert states_pairs("StartExecution", {"stateMachineArn": machine}, *WHERE) == [
        ("states:StartExecution", machine)
    ]
    assert states_pairs("StopExecution", {"executionArn": execution}, *WHERE) == [
        ("states:StopExecution", execution)
    ]
    assert states_pairs("CreateStateMachine", {"name": "m"}, *WHERE) == [
        ("states:CreateStateMachine", machine)
    ]
    parameter = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter"
    assert ssm_pairs("GetParameter", {"Name": "/memberflow/a:3"}, *WHERE) == [
        ("ssm:GetParameter", f"{parameter}/memberflow/a")
    ]
    assert ssm_pairs("GetParameters", {"Names": ["/a", "b"]}, *WHERE) == [
        ("ssm:GetParameters", f"{parameter}/a"),
        ("ssm:GetParameters", f"{parameter}/b"),
    ]
    assert ssm_pairs("GetParametersByPath", {"Path": "/memberflow"}, *WHERE) == [
        ("ssm:GetParametersByPath", f"{parameter}/memberflow")
    ]
    function = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"
    assert lambda_pairs("Invoke", "f", None, *WHERE) == [("lambda:InvokeFunction", function)]
    assert lambda_pairs("Invoke", function, "live", *WHERE) == [("lambda:InvokeFunction", f"{function}:live")]
    assert lambda_pairs("Invoke", f"{ACCOUNT}:function:f", None, *WHERE) == [
        ("lambda:InvokeFunction", function)
    ]
    assert lambda_pairs("GetFunction", "f", None, *WHERE) == [("lambda:GetFunction", function)]


def test_ses_sends_are_checked_on_the_identity_and_the_configuration_set() -> None:
    ses = f"arn:aws:ses:us-east-1:{ACCOUNT}"
    send = {"FromEmailAddress": "Ada <ada@example.com>", "ConfigurationSetName": "memberflow"}
    # The address's own identity when it is verified, else its domain's.
    assert sesv2_pairs("SendEmail", send, *WHERE, verified=lambda i: i == "ada@example.com") == [
        ("ses:SendEmail", f"{ses}:identity/ada@example.com"),
        ("ses:SendEmail", f"{ses}:configuration-set/memberflow"),
    ]
    assert sesv2_pairs("SendEmail", {"FromEmailAddress": "ada@example.com"}, *WHERE) == [
        ("ses:SendEmail", f"{ses}:identity/example.com")
    ]
    named = {**send, "FromEmailAddressIdentityArn": f"{ses}:identity/example.org"}
    assert sesv2_pairs("SendEmail", named, *WHERE)[0] == ("ses:SendEmail", f"{ses}:identity/example.org")
    assert sesv2_pairs("CreateEmailIdentity", {"EmailIdentity": "example.com"}, *WHERE) == [
        ("ses:CreateEmailIdentity", f"{ses}:identity/example.com")
    ]
    assert sesv2_pairs("ListEmailIdentities", {}, *WHERE) == [("ses:ListEmailIdentities", "*")]


def test_item_sizes_follow_the_dynamodb_developer_guide() -> None:
    assert item_size({"name": {"S": "héllo"}}) == 4 + 6  # UTF-8 bytes of the name and of the value
    assert attribute_value_size({"N": "123.450"}) == 4  # 5 significant digits: 3 bytes, plus 1
    assert attribute_value_size({"N": "-0.0001"}) == 2
    assert attribute_value_size({"B": b"\x00" * 10}) == 10
    assert attribute_value_size({"B": "AAAA"}) == 3  # base64 on the wire, raw bytes counted
    assert attribute_value_size({"BOOL": True}) == attribute_value_size({"NULL": True}) == 1
    assert attribute_value_size({"SS": ["ab", "c"]}) == 3
    assert attribute_value_size({"L": []}) == attribute_value_size({"M": {}}) == 3
    assert attribute_value_size({"L": [{"S": "a"}, {"N": "1"}]}) == 3 + (1 + 1) + (1 + 2)
    assert attribute_value_size({"M": {"k": {"S": "v"}}}) == 3 + 1 + 1 + 1


def test_a_transaction_counts_put_items_and_the_keys_and_values_of_the_rest() -> None:
    key = {"email": {"S": "a@b.c"}}  # 5 + 5
    request = {
        "TransactItems": [
            {"Put": {"TableName": "t", "Item": {**key, "n": {"N": "10"}}}},  # 10 + 1 + 2
            {"Update": {"TableName": "t", "Key": key, "ExpressionAttributeValues": {":v": {"S": "xyz"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": key}},
        ]
    }
    assert transaction_size(request) == 13 + (10 + 3) + 10
