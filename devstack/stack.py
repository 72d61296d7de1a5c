"""The packaged template's identities in moto, so code runs with exactly the rights it gets in AWS.

``provision(app, stack_name=..., region=...)`` builds the merge template for the app's shape (the one
``make package`` deploys: ``AppShape.from_app`` names the functions as ``chalice package`` does),
names every resource of stack ``stack_name`` (tables as ``TABLES`` names them, functions
``<stack>-<chalice name>``, ``${AWS::StackName}-delays`` for the state machine), and creates in moto,
as an admin IAM user with full access: every table, with its stream if it has one (first, as
CloudFormation would: a policy names a stream by the ARN the table's creation gave it); every
``AWS::IAM::Role`` of the template with its trust policy and inline policies, every
``AWS::IAM::Policy`` on the roles it names, all with their intrinsics resolved
(``infra.intrinsics``); the functions (stubs: the code runs in this process), with the template's
timeouts; and every state machine, from its ``Definition`` and ``DefinitionSubstitutions``. The table and
function names are stable stand-ins, not what a deployment gets: the template sets no ``TableName``
or ``FunctionName``, so CloudFormation names them ``<stack>-<LogicalId>-<suffix>`` (e.g.
``<stack>-APIHandler-<suffix>``), but the policies only ever reach them through ``Fn::GetAtt``/``Ref``,
so the naming scheme does not matter to what is tested. A role gets the template's statements and
nothing else; no moto-only statement is needed, because ``devstack.moto_iam`` authorises each
transaction item as the write it wraps.

``acting_as(credentials)`` then points the process at an identity, e.g. the function role
(``MotoStack.assume``): the credential environment variables and boto3's default session, which cache
credentials; the stores' pynamodb connection reads them when it first signs, so a container is built
after the switch. With ``devstack.moto_iam.enforcing()`` on, a call
the template does not allow fails as it would in AWS. Provisioning must run while enforcement is off
(or ``moto_iam.suspended()``), as CloudFormation and Lambda, not the app, do it in AWS.
"""

from __future__ import annotations

import functools
import io
import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.storage.names import TableNames
from infra.intrinsics import (
    Physical,
    Stack,
    decide_conditions,
    parameter_defaults,
    physical,
    plan_stack,
    resolve,
)
from infra.resources import (
    API_HANDLER,
    FUNCTION_ROLE,
    AppShape,
    app_functions,
    build_template,
    substitute_definition,
    table_bindings,
)

ACCOUNT_ID = "123456789012"
"""moto's default account: the one whose IAM the admin's and the roles' keys belong to."""
TABLES = TableNames.with_prefix("memberflow-")
"""The tables' names: what the app uses when no ``MEMBERFLOW_*_TABLE`` variable says otherwise."""
ADMIN_USER = "memberflow-admin"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
LAMBDA_TIMEOUT_SECONDS = 30
"""A function's timeout when the template sets none (the stages' ``lambda_timeout``): in moto, and what
its handler's context reports (``devstack.stepfunctions``)."""

CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def environ(self) -> dict[str, str]:
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            # botocore still reads the legacy name when the new one is absent; set both or neither.
            env.update(AWS_SESSION_TOKEN=self.session_token, AWS_SECURITY_TOKEN=self.session_token)
        return env

    def client(self, service: str, region: str) -> Any:
        """A boto3 client signed with these credentials only, whatever the environment holds."""
        return _client(self, region, service)


@functools.lru_cache(maxsize=16)
def _client(credentials: Credentials, region: str, service: str) -> Any:
    # Creating a client costs ~20 ms; identities recur (the bootstrap key in every test), so keep them.
    return _session(credentials, region).client(service)


@functools.lru_cache(maxsize=1)
def _loader() -> Any:
    import botocore.session

    return botocore.session.get_session().get_component("data_loader")


def botocore_session() -> Any:
    """A new botocore session (its own credentials) that shares the service models already parsed.

    Every session parses the service models and endpoints again (~50 ms a client), and identities
    change with every test: boto3 and pynamodb would pay it for each client in each test.
    """
    import botocore.session

    core = botocore.session.get_session()
    core.register_component("data_loader", _loader())
    return core


@functools.lru_cache(maxsize=8)
def _session(credentials: Credentials, region: str | None) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        region_name=region,
        botocore_session=botocore_session(),
    )


@dataclass(frozen=True)
class RoleSpec:
    """One IAM role as the template defines it: trust policy and every policy on it, resolved."""

    name: str
    trust: Mapping[str, Any]
    policies: Mapping[str, Mapping[str, Any]]


@dataclass
class MotoStack:
    """What ``provision`` made: names and ARNs by logical id, and the admin that made them."""

    cfn: Stack
    template: dict[str, Any]
    shape: AppShape
    admin: Credentials
    roles: dict[str, RoleSpec]

    @property
    def region(self) -> str:
        return self.cfn.region

    def arn(self, logical_id: str) -> str:
        return self.cfn.resources[logical_id].attributes["Arn"]

    def name(self, logical_id: str) -> str:
        return self.cfn.resources[logical_id].ref

    def admin_client(self, service: str) -> Any:
        return self.admin.client(service, self.region)

    def timeout(self, logical_id: str) -> int:
        """The function's timeout in seconds: the template's ``Timeout``, else the stage's."""
        properties = self.template["Resources"].get(logical_id, {}).get("Properties", {})
        return int(properties.get("Timeout", LAMBDA_TIMEOUT_SECONDS))

    def assume(self, role: str = FUNCTION_ROLE, session: str = "memberflow") -> Credentials:
        """Credentials of the template's role ``role``, assumed as its service (Lambda, Step Functions) would.

        Call it with enforcement off: the trust policy names a service, which no test identity is.
        """
        response = self.admin_client("sts").assume_role(RoleArn=self.arn(role), RoleSessionName=session)
        issued = response["Credentials"]
        return Credentials(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])


def function_names(app: Any, stack_name: str) -> dict[str, str]:
    """Logical id → a stable stand-in for the function's name: ``<stack>``, or ``<stack>-<chalice name>``.

    Not what a ``chalice package`` deployment gets (CloudFormation names those functions
    ``<stack>-APIHandler-<suffix>``); the policies only reach functions through ``Fn::GetAtt``/``Ref``,
    so the scheme does not matter to what is tested.
    """
    return {
        logical_id: stack_name if logical_id == API_HANDLER else f"{stack_name}-{name}"
        for logical_id, name in app_functions(app).items()
    }


PLANNED_STREAM_LABEL = "1970-01-01T00:00:00.000"
"""A stream's label is the time it was enabled, which no plan can know: a planned ``StreamArn`` ends in
this one until ``provision`` creates the table and takes the ARN moto gave its stream."""


def plan(template: Mapping[str, Any], *, stack_name: str, region: str, functions: Mapping[str, str]) -> Stack:
    """Every resource's physical name for a stack ``stack_name``: tables named as ``TABLES`` names them.

    A table with a ``StreamSpecification`` also gets a ``StreamArn`` (labelled ``PLANNED_STREAM_LABEL``).
    """
    base = Stack(
        name=stack_name, region=region, account_id=ACCOUNT_ID, parameters=parameter_defaults(template)
    )
    resources: Mapping[str, Any] = template.get("Resources", {})
    given: dict[str, Physical] = {}
    for binding in table_bindings():
        table = physical("AWS::DynamoDB::Table", getattr(TABLES, binding.field), base)
        if "StreamSpecification" in resources.get(binding.logical_id, {}).get("Properties", {}):
            table = _with_stream(table, f"{table.attributes['Arn']}/stream/{PLANNED_STREAM_LABEL}")
        given[binding.logical_id] = table
    given.update(
        {logical_id: physical("AWS::Lambda::Function", name, base) for logical_id, name in functions.items()}
    )
    planned = plan_stack(template, base, given)
    return replace(planned, conditions=decide_conditions(template, planned))


def template_roles(template: Mapping[str, Any], stack: Stack) -> dict[str, RoleSpec]:
    """Each ``AWS::IAM::Role`` by logical id with its trust policy and every policy the template puts on it.

    Inline ``Policies`` and each ``AWS::IAM::Policy`` / ``AWS::IAM::ManagedPolicy`` that lists the role
    in ``Roles``, resolved. A policy on users or groups, or naming a role
    the template does not define, raises: it would be a grant the harness cannot reproduce.
    """
    resources: Mapping[str, Any] = template.get("Resources", {})
    roles = {name: res for name, res in resources.items() if res.get("Type") == "AWS::IAM::Role"}
    by_name = {stack.resources[logical_id].ref: logical_id for logical_id in roles}
    policies: dict[str, dict[str, Mapping[str, Any]]] = {logical_id: {} for logical_id in roles}

    def add(logical_id: str, name: str, document: Mapping[str, Any]) -> None:
        if name in policies[logical_id]:
            raise ValueError(f"two policies named {name} on {logical_id}")
        policies[logical_id][name] = document

    for logical_id, role in roles.items():
        for policy in role.get("Properties", {}).get("Policies", []):
            add(logical_id, resolve(policy["PolicyName"], stack), resolve(policy["PolicyDocument"], stack))
    for logical_id, res in resources.items():
        if res.get("Type") not in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            continue
        props = res.get("Properties", {})
        if props.get("Users") or props.get("Groups"):
            raise ValueError(f"{logical_id} applies to users or groups; only roles are reproduced")
        name = props.get("PolicyName") or props.get("ManagedPolicyName") or logical_id
        document = resolve(props["PolicyDocument"], stack)
        for role_name in resolve(props.get("Roles", []), stack):
            if role_name not in by_name:
                raise ValueError(
                    f"{logical_id} applies to the role {role_name}, which the template does not define"
                )
            add(by_name[role_name], resolve(name, stack), document)
    return {
        logical_id: RoleSpec(
            name=stack.resources[logical_id].ref,
            trust=resolve(role["Properties"]["AssumeRolePolicyDocument"], stack),
            policies=policies[logical_id],
        )
        for logical_id, role in roles.items()
    }


BOOTSTRAP = Credentials("bootstrap-memberflow", "bootstrap")
"""Signs the calls that create the admin user, which exists only after them; moto checks nothing then."""


def create_admin(region: str, user: str = ADMIN_USER) -> Credentials:
    """An IAM user with full access: provisioning, and tests looking at the state directly."""
    iam = BOOTSTRAP.client("iam", region)
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="everything", PolicyDocument=json.dumps(ADMIN_POLICY))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def _stub_code() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # Never run: devstack.stepfunctions routes invocations to the handlers in this process.
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def provision(
    app: Any,
    *,
    stack_name: str,
    region: str,
    shape: AppShape | None = None,
    tables: bool = True,
    lambdas: bool = True,
) -> MotoStack:
    """The template's roles and (optionally) tables, functions and state machines in moto; see the module."""
    shape = shape or AppShape.from_app(app)
    template = build_template(shape)
    names = function_names(app, stack_name)
    missing = sorted(set(shape.functions) - names.keys())
    if missing:
        raise ValueError(f"the shape has functions the app does not define: {missing}")
    cfn = plan(template, stack_name=stack_name, region=region, functions=names)
    admin = create_admin(region)
    if tables:
        # Before the roles, as CloudFormation orders them: a policy names a stream by the ARN its
        # table's creation gave it (Fn::GetAtt <Table>.StreamArn).
        cfn = create_tables(template, cfn, admin)
    stack = MotoStack(
        cfn=cfn, template=template, shape=shape, admin=admin, roles=template_roles(template, cfn)
    )
    iam = stack.admin_client("iam")
    for spec in stack.roles.values():
        iam.create_role(RoleName=spec.name, AssumeRolePolicyDocument=json.dumps(spec.trust))
        for policy_name, document in spec.policies.items():
            iam.put_role_policy(
                RoleName=spec.name, PolicyName=policy_name, PolicyDocument=json.dumps(document)
            )
    if lambdas:
        _create_functions(stack)
        _create_state_machines(stack)
    return stack


def create_tables(template: Mapping[str, Any], cfn: Stack, admin: Credentials) -> Stack:
    """Every ``AWS::DynamoDB::Table`` of the template, as CloudFormation would create it, by the admin.

    From the template rather than ``Model.create_table``: it is what ``make package`` deploys (the
    deploy tests hold it to the models), and one admin client is cheaper than a pynamodb connection
    per model. Returns ``cfn`` with each stream's ARN as moto gave it.
    """
    client = admin.client("dynamodb", cfn.region)
    streams: dict[str, Physical] = {}
    for logical_id, res in template["Resources"].items():
        if res.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = resolve(res["Properties"], cfn)
        name = cfn.resources[logical_id].ref
        request: dict[str, Any] = {
            key: props[key]
            for key in (
                "AttributeDefinitions",
                "KeySchema",
                "BillingMode",
                "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes",
                "ProvisionedThroughput",
            )
            if key in props
        }
        if "StreamSpecification" in props:
            request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        # SSESpecification is left out: encryption at rest changes nothing the app sees, and moto
        # would generate a KMS key (an RSA key pair, ~60 ms) for every test.
        created = client.create_table(TableName=name, **request)["TableDescription"]
        if "LatestStreamArn" in created:
            streams[logical_id] = _with_stream(cfn.resources[logical_id], created["LatestStreamArn"])
        if "TimeToLiveSpecification" in props:
            client.update_time_to_live(
                TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"]
            )
    return cfn.with_resources(streams)


def _with_stream(table: Physical, stream_arn: str) -> Physical:
    return Physical(table.ref, {**table.attributes, "StreamArn": stream_arn})


def _create_functions(stack: MotoStack) -> None:
    client = stack.admin_client("lambda")
    resources = stack.template["Resources"]
    code = _stub_code()
    for logical_id in stack.shape.functions:
        role = resolve(resources[logical_id]["Properties"]["Role"], stack.cfn)
        arn = client.create_function(
            FunctionName=stack.name(logical_id),
            Runtime=stack.shape.runtime,
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": code},
            Timeout=stack.timeout(logical_id),
        )["FunctionArn"]
        if arn != stack.arn(logical_id):
            raise RuntimeError(f"moto named {logical_id} {arn}, the policies expect {stack.arn(logical_id)}")


def _create_state_machines(stack: MotoStack) -> None:
    client = stack.admin_client("stepfunctions")
    for logical_id, res in stack.template["Resources"].items():
        if res.get("Type") != "AWS::StepFunctions::StateMachine":
            continue
        props = res["Properties"]
        if "Definition" in props:
            substitutions = resolve(props.get("DefinitionSubstitutions", {}), stack.cfn)
            definition = json.dumps(substitute_definition(props["Definition"], substitutions))
        else:
            definition = resolve(props["DefinitionString"], stack.cfn)
        arn = client.create_state_machine(
            name=stack.cfn.resources[logical_id].attributes["Name"],
            definition=definition,
            roleArn=resolve(props["RoleArn"], stack.cfn),
            type=props.get("StateMachineType", "STANDARD"),
        )["stateMachineArn"]
        if arn != stack.arn(logical_id):
            raise RuntimeError(f"moto named {logical_id} {arn}, the policies expect {stack.arn(logical_id)}")


def reset_cached_clients(credentials: Credentials | None = None, region: str | None = None) -> None:
    """Forget the process-wide credential cache: boto3's default session.

    With ``credentials``, boto3's default session becomes theirs (cached per identity); without, boto3
    makes a new one from the environment when next asked. The clients a container owns (the stores'
    shared pynamodb connection, the Step Functions scheduler's and the SSM fetcher's boto3 clients) are left
    alone: each is made on its first call, from the identity the process has then, so switch before a
    container serves anything (tests build theirs inside ``acting_as``, ``make run`` after
    ``become_function_role``) and they sign as the right identity.
    """
    import boto3

    boto3.DEFAULT_SESSION = None if credentials is None else _session(credentials, region)


@contextmanager
def acting_as(credentials: Credentials) -> Iterator[None]:
    """The process signs as ``credentials`` in the block: environment and boto3 (and so pynamodb) alike."""
    # Looked up now, not bound at import: chalice.test.Client swaps os.environ for a copy per call.
    environ = os.environ
    saved = {name: environ.get(name) for name in CREDENTIAL_VARIABLES}
    switch_to(credentials)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        reset_cached_clients()


def switch_to(credentials: Credentials) -> None:
    """Sign as ``credentials`` from now on (what ``acting_as`` does for a block)."""
    environ = os.environ
    for name in CREDENTIAL_VARIABLES:
        environ.pop(name, None)
    environ.update(credentials.environ())
    reset_cached_clients(credentials, environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION"))


LOCAL_IAM = "LOCAL_IAM"
"""``make run``'s switch: ``off`` runs the app with moto's default credentials and no IAM checks."""


def local_iam_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``make run`` enforces IAM: yes unless ``LOCAL_IAM`` is ``off``, ``0``, ``false`` or ``no``."""
    value = (os.environ if environ is None else environ).get(LOCAL_IAM, "on").strip().lower()
    if value in {"", "on", "1", "true", "yes"}:
        return True
    if value in {"off", "0", "false", "no"}:
        return False
    raise ValueError(f"{LOCAL_IAM} must be on or off, not {value!r}")


def become_function_role(stack: MotoStack) -> Credentials:
    """For the rest of the process, sign as the template's function role and have IAM enforced.

    What Lambda does for every function in AWS: everything the app runs in this process from now on
    (routes, the timer handler, the scheduled sweep) has exactly the role's rights. Call it after
    ``moto_support.install(iam=True)`` and after provisioning, which needs more.
    """
    from devstack import moto_iam

    credentials = stack.assume()
    switch_to(credentials)
    moto_iam.enforce()
    return credentials
