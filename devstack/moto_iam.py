"""Make moto authorise as AWS does: per action and resource, and Step Functions' tasks as their role.

moto can enforce IAM (``moto.core.authorization``), but for DynamoDB (and its Streams), Step
Functions, SSM, Lambda and SES it checks one action per request against the resource ``"*"``, so a
least-privilege policy (every statement names its ARNs) matches nothing and a test would have to
grant ``*`` to get anywhere, which proves nothing. AWS authorises each request as one or more
(action, resource ARN) pairs:

- DynamoDB: each transaction item as the ``PutItem``/``UpdateItem``/``DeleteItem``/``ConditionCheckItem``
  (``TransactWriteItems``) or ``GetItem`` (``TransactGetItems``) it wraps, on its table; a batch per
  table it touches; ``Query``/``Scan`` on an index against ``table/NAME/index/INDEX``; everything else
  on ``table/NAME``.
- DynamoDB Streams: as ``dynamodb:<Action>`` on the stream the request names (``GetRecords`` on the
  stream its shard iterator reads); ``ListStreams`` on ``*``.
- Step Functions: on the ``stateMachine`` or ``execution`` ARN the request names.
- SSM: on ``parameter/NAME`` for each parameter named.
- Lambda: ``Invoke`` is ``lambda:InvokeFunction`` on ``function:NAME`` (``:QUALIFIER`` when given).
- SES v2: ``SendEmail`` is ``ses:SendEmail`` on the sending identity (the From address if it is itself
  verified, else its domain) and, when the request names one, on its ``configuration-set/NAME``.

``install()`` teaches moto those pairs and checks every pair against the caller's policies (moto's
own ``IAMPolicy`` evaluation, so ``Deny`` and wildcards behave as moto's do); it also makes the Step
Functions interpreter call every task's service (Lambda, the service integrations, the Map state's
S3 reader and writer) as the state machine's role, assumed through moto's STS, as AWS does, instead of
moto's fixed ``ak``/``sk`` credentials, which no identity owns and enforcement rejects. Callers get it
through ``devstack.moto_support.install(iam=True)``, with the rest of what moto needs. The checks run
only while enforcement is on (moto's global switch: ``enforcing()`` for a block, ``enforce()`` for
good). What an allowed request does is unchanged, and nothing in memberflow is patched.

These are moto internals (``BaseResponse._authenticate_and_authorize_normal_action``, ``IAMRequest``,
``IAMPolicy``, the interpreter's ``boto_client_for``, ``sts_backends``); moto is pinned to
``>=5.2,<5.3`` in requirements-dev.txt.
"""

from __future__ import annotations

import functools
import importlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

Pair = tuple[str, str]
"""(IAM action, resource ARN): what AWS checks a policy against."""

_TRANSACT_WRITE_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_LAMBDA_ACTIONS = {"Invoke": "InvokeFunction", "InvokeWithResponseStream": "InvokeFunction"}
"""Lambda API operations whose IAM action has another name; the rest share theirs."""

_lock = threading.Lock()
_installed: dict[str, Any] = {}


# --- what AWS would check, per service --------------------------------------------------------


def _table_arn(table: str, region: str, account: str, partition: str) -> str:
    # DynamoDB accepts a table ARN wherever it takes a table name.
    return table if table.startswith("arn:") else f"arn:{partition}:dynamodb:{region}:{account}:table/{table}"


def dynamodb_pairs(
    action: str, params: Mapping[str, Any], region: str, account: str, partition: str
) -> list[Pair]:
    """The (action, ARN) pairs DynamoDB authorises for one request."""

    def table(name: str) -> str:
        return _table_arn(name, region, account, partition)

    if action == "TransactWriteItems":
        pairs = []
        for item in params.get("TransactItems", []):
            # One operation per item; more is moto's to refuse (after this, as AWS validates after IAM).
            for kind, operation in item.items():
                write = _TRANSACT_WRITE_ACTIONS.get(kind, kind)
                pairs.append((f"dynamodb:{write}", table(operation.get("TableName", "*"))))
        return _unique(pairs)
    if action == "TransactGetItems":
        gets = [item.get("Get", {}) for item in params.get("TransactItems", [])]
        return _unique([("dynamodb:GetItem", table(get.get("TableName", "*"))) for get in gets])
    if action in {"BatchGetItem", "BatchWriteItem"}:
        return _unique([(f"dynamodb:{action}", table(name)) for name in params.get("RequestItems", {})])
    name = params.get("TableName") or params.get("TableArn") or params.get("ResourceArn")
    if not name:
        return [(f"dynamodb:{action}", "*")]
    if action in {"Query", "Scan"} and params.get("IndexName"):
        return [(f"dynamodb:{action}", f"{table(name)}/index/{params['IndexName']}")]
    return [(f"dynamodb:{action}", table(name))]


def dynamodbstreams_pairs(
    action: str, params: Mapping[str, Any], region: str, account: str, partition: str
) -> list[Pair]:
    """The (action, ARN) pairs DynamoDB Streams authorises: the stream the request names.

    IAM names Streams' actions ``dynamodb:``. ``GetRecords`` names no stream, only a shard iterator,
    which AWS checks on the stream it reads: moto's iterators begin with that stream's ARN.
    """
    iam_action = f"dynamodb:{action}"
    stream = params.get("StreamArn")
    if not isinstance(stream, str) and isinstance(params.get("ShardIterator"), str):
        stream = params["ShardIterator"].split("|", 1)[0]
    if isinstance(stream, str) and stream.startswith("arn:"):
        return [(iam_action, stream)]
    return [(iam_action, "*")]


def states_pairs(
    action: str, params: Mapping[str, Any], region: str, account: str, partition: str
) -> list[Pair]:
    """The (action, ARN) pairs Step Functions authorises: the execution or state machine it names."""
    for key in ("executionArn", "stateMachineArn", "mapRunArn", "activityArn", "resourceArn"):
        if isinstance(params.get(key), str):
            return [(f"states:{action}", params[key])]
    if action == "CreateStateMachine" and isinstance(params.get("name"), str):
        return [
            (f"states:{action}", f"arn:{partition}:states:{region}:{account}:stateMachine:{params['name']}")
        ]
    return [(f"states:{action}", "*")]


def _parameter_arn(name: str, region: str, account: str, partition: str) -> str:
    if name.startswith("arn:"):
        return name
    # "/a/b:3" selects a version or label of /a/b; the policy is about /a/b.
    path = name.split(":", 1)[0].lstrip("/")
    return f"arn:{partition}:ssm:{region}:{account}:parameter/{path}"


def ssm_pairs(
    action: str, params: Mapping[str, Any], region: str, account: str, partition: str
) -> list[Pair]:
    """The (action, ARN) pairs SSM authorises: every parameter (or path) the request names."""
    names = params.get("Names") or [
        params[key] for key in ("Name", "Path") if isinstance(params.get(key), str)
    ]
    if not names:
        return [(f"ssm:{action}", "*")]
    return _unique([(f"ssm:{action}", _parameter_arn(n, region, account, partition)) for n in names])


def lambda_pairs(
    action: str, function: str | None, qualifier: str | None, region: str, account: str, partition: str
) -> list[Pair]:
    """The (action, ARN) pair Lambda authorises: ``Invoke`` is ``lambda:InvokeFunction`` on the function."""
    iam_action = f"lambda:{_LAMBDA_ACTIONS.get(action, action)}"
    if not function:
        return [(iam_action, "*")]
    if function.startswith("arn:"):
        arn = function
    elif ":function:" in function:  # a partial ARN: ACCOUNT:function:NAME[:QUALIFIER]
        arn = f"arn:{partition}:lambda:{region}:{function}"
    else:
        arn = f"arn:{partition}:lambda:{region}:{account}:function:{function}"
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return [(iam_action, arn)]


def _address(mailbox: str) -> str:
    """``a@example.com`` from ``Name <a@example.com>`` or a bare address."""
    from email.utils import parseaddr

    return parseaddr(mailbox)[1]


def sesv2_pairs(
    action: str,
    params: Mapping[str, Any],
    region: str,
    account: str,
    partition: str,
    verified: Callable[[str], bool] = lambda identity: False,
) -> list[Pair]:
    """The (action, ARN) pairs SES v2 authorises; ``verified`` says whether an identity exists.

    ``SendEmail`` is checked on the identity the message is sent from, and on the configuration set
    it names. (In the sandbox AWS also checks each recipient's identity; moto has no sandbox.)
    """
    arn = f"arn:{partition}:ses:{region}:{account}"
    iam_action = f"ses:{action}"
    if action == "SendEmail":
        if isinstance(params.get("FromEmailAddressIdentityArn"), str):
            identity_arn = params["FromEmailAddressIdentityArn"]
        else:
            address = _address(str(params.get("FromEmailAddress", "")))
            identity = address if verified(address) else address.rpartition("@")[2]
            identity_arn = f"{arn}:identity/{identity}"
        pairs = [(iam_action, identity_arn)]
        if isinstance(params.get("ConfigurationSetName"), str):
            pairs.append((iam_action, f"{arn}:configuration-set/{params['ConfigurationSetName']}"))
        return pairs
    if isinstance(params.get("EmailIdentity"), str):
        return [(iam_action, f"{arn}:identity/{params['EmailIdentity']}")]
    if isinstance(params.get("ConfigurationSetName"), str):
        return [(iam_action, f"{arn}:configuration-set/{params['ConfigurationSetName']}")]
    return [(iam_action, "*")]


def _unique(pairs: Sequence[Pair]) -> list[Pair]:
    return list(dict.fromkeys(pairs))


# --- the checks moto runs -----------------------------------------------------------------------


def _pairs_for(response: Any) -> list[Pair]:
    from moto.awslambda.responses import LambdaResponse
    from moto.dynamodb.responses import DynamoHandler

    action = response._get_action()
    where = (response.region, response.current_account, response.partition)
    if isinstance(response, DynamoHandler):
        return dynamodb_pairs(action, getattr(response, "params", None) or {}, *where)
    if isinstance(response, LambdaResponse):
        function = None
        parts = response.path.split("/")
        if "functions" in parts and len(parts) > parts.index("functions") + 1:
            function = unquote(parts[parts.index("functions") + 1]) or None
        qualifier = (response.querystring.get("Qualifier") or [None])[0]
        return lambda_pairs(action, function, qualifier, *where)
    try:
        params = json.loads(response.body or "{}")
    except (TypeError, ValueError):
        params = {}
    params = params if isinstance(params, dict) else {}
    if response.service_name == "sesv2":
        from moto.ses.models import ses_backends

        identities = ses_backends[response.current_account][response.region].email_identities
        return sesv2_pairs(action, params, *where, verified=lambda identity: identity in identities)
    service = _SERVICE_PAIRS[response.service_name]
    return service(action, params, *where)


_SERVICE_PAIRS: dict[str, Callable[[str, Mapping[str, Any], str, str, str], list[Pair]]] = {
    "dynamodbstreams": dynamodbstreams_pairs,
    "stepfunctions": states_pairs,
    "ssm": ssm_pairs,
}


@functools.lru_cache(maxsize=512)
def _parsed_policy(document: str) -> Any:
    from moto.iam.access_control import IAMPolicy

    return IAMPolicy(document)


def _document(policy: Any) -> str:
    """The JSON of a policy as moto's ``collect_policies`` returns it (inline text, user dict, managed)."""
    if isinstance(policy, str):
        return policy
    if isinstance(policy, dict):
        return str(policy["policy_document"])
    return str(next(v for v in policy.versions if v.is_default).document)


def _access_denied(response: Any, caller: str, action: str, resource: str, explicit: bool) -> Exception:
    from moto.core.exceptions import JsonRESTError

    why = (
        "with an explicit deny in an identity-based policy"
        if explicit
        else f"because no identity-based policy allows the {action} action"
    )
    error = JsonRESTError(
        "AccessDeniedException",
        f"User: {caller} is not authorized to perform: {action} on resource: {resource} {why}",
    )
    # Lambda and SES v2 answer 403; DynamoDB, Step Functions and SSM send AccessDeniedException as a 400.
    error.code = 403 if response.service_name in {"awslambda", "sesv2"} else 400
    return error


@functools.lru_cache(maxsize=1)
def _request_class() -> Any:
    """A moto ``IAMRequest`` that checks the request's AWS-true pairs instead of (action, "*")."""
    from moto.iam.access_control import IAMRequest, PermissionResult

    class AwsTrueRequest(IAMRequest):
        def __init__(self, *, response: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._response = response

        def check_action_permitted(self, resource: str) -> None:
            caller = self._access_key.arn
            policies = [_parsed_policy(_document(p)) for p in self._access_key.collect_policies()]
            for action, arn in _pairs_for(self._response):
                verdicts = {policy.is_action_permitted(action, arn) for policy in policies}
                if PermissionResult.DENIED in verdicts:
                    raise _access_denied(self._response, caller, action, arn, explicit=True)
                if PermissionResult.PERMITTED not in verdicts:
                    raise _access_denied(self._response, caller, action, arn, explicit=False)

    return AwsTrueRequest


def _authorize(self: Any, resource: str = "*") -> None:
    # moto builds the request object only when enforcement is on, from keyword arguments.
    self._authenticate_and_authorize_action(functools.partial(_request_class(), response=self), resource)


# --- Step Functions tasks as the state machine's role ----------------------------------------------


def _role_credentials(role_arn: str, region: str) -> Any:
    """Credentials of ``role_arn``, assumed the way the Step Functions service does (no caller to check)."""
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    account = role_arn.split(":")[4]
    backend = sts_backends[account][get_partition(region)]
    cache: dict[str, Any] = _installed.setdefault("roles", {})
    assumed = cache.get(role_arn)
    # A reset backend (a new mock_aws) forgets its assumed roles; assume again then.
    if assumed is None or assumed not in backend.assumed_roles:
        assumed = backend.assume_role(
            region_name=region,
            role_session_name="states",
            role_arn=role_arn,
            policy=None,  # type: ignore[arg-type]  # no session policy; moto's hint says str
            duration=3600,
            external_id=None,  # type: ignore[arg-type]
        )
        cache[role_arn] = assumed
    return assumed


def _boto_client_for(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role_arn = getattr(state_credentials, "role_arn", None)
        if not role_arn:
            return original(region=region, service=service, state_credentials=state_credentials)
        import boto3
        from botocore.config import Config
        from moto.core.models import botocore_stubber
        from moto.settings import moto_server_port
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

        assumed = _role_credentials(role_arn, region)
        # moto's own client (endpoint, no retries, timeouts), signed as the role instead of "ak"/"sk".
        timeout = TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS
        return boto3.client(
            service_name=service,
            region_name=region,
            aws_access_key_id=assumed.access_key_id,
            aws_secret_access_key=assumed.secret_access_key,
            aws_session_token=assumed.session_token,
            endpoint_url=None if botocore_stubber.enabled else f"http://localhost:{moto_server_port()}",
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=timeout,
                read_timeout=timeout,
            ),
        )

    return boto_client_for


_ASL = "moto.stepfunctions.parser.asl"
_EXEC = f"{_ASL}.component.state.exec"
INTERPRETER_CLIENT_MODULES = (
    f"{_ASL}.utils.boto_client",
    f"{_EXEC}.state_task.lambda_eval_utils",
    *(
        f"{_EXEC}.state_task.service.state_task_service_{service}"
        for service in (
            "aws_sdk",
            "batch",
            "dynamodb",
            "ecs",
            "events",
            "glue",
            "sfn",
            "sns",
            "sqs",
            "unsupported",
        )
    ),
    f"{_EXEC}.state_map.item_reader.eval.resource_eval_s3",
    f"{_EXEC}.state_map.result_writer.resource_eval.resource_eval_s3",
)
"""Every interpreter module that imported ``boto_client_for`` by name, so each holds its own reference
and each is patched; the tests hold this list to moto's source."""


# --- switching it on ------------------------------------------------------------------------------


def install() -> None:
    """Make moto authorise per action and resource (idempotent); via ``moto_support.install(iam=True)``."""
    from moto.awslambda.responses import LambdaResponse
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.sesv2.responses import SESV2Response
    from moto.ssm.responses import SimpleSystemManagerResponse
    from moto.stepfunctions.responses import StepFunctionResponse

    with _lock:
        if "classes" in _installed:
            return
        classes = (
            DynamoHandler,
            DynamoDBStreamsHandler,
            StepFunctionResponse,
            SimpleSystemManagerResponse,
            LambdaResponse,
            SESV2Response,
        )
        for cls in classes:
            cls._authenticate_and_authorize_normal_action = _authorize  # type: ignore[method-assign]
        modules = [importlib.import_module(name) for name in INTERPRETER_CLIENT_MODULES]
        original = modules[0].boto_client_for
        patched = _boto_client_for(original)
        for module in modules:
            module.boto_client_for = patched  # type: ignore[attr-defined]
        _installed.update(classes=classes, modules=modules, original=original)


def uninstall() -> None:
    """Give moto back its own authorisation (tests of this module use it; nothing else needs to)."""
    with _lock:
        if "classes" not in _installed:
            return
        for cls in _installed.pop("classes"):
            del cls._authenticate_and_authorize_normal_action
        original = _installed.pop("original")
        for module in _installed.pop("modules"):
            module.boto_client_for = original
        _installed.pop("roles", None)


def _require_installed() -> None:
    # Without install() moto checks each request against "*", which a least-privilege policy never allows.
    if "classes" not in _installed:
        raise RuntimeError("call devstack.moto_support.install(iam=True) before enforcing IAM")


@contextmanager
def enforcing() -> Iterator[None]:
    """IAM enforced for every request in the block (moto's global switch); needs ``install()`` first."""
    from moto.core.authorization import enable_iam_authentication

    _require_installed()
    with enable_iam_authentication():
        yield


def enforce() -> None:
    """IAM enforced for every request from now on, process-wide (the local stack never turns it off)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    _require_installed()
    # What enable_iam_authentication() does on entry, without the exit that restores the old values.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0


@contextmanager
def suspended() -> Iterator[None]:
    """No IAM checks in the block: for provisioning inside an enforced block (what CloudFormation does)."""
    from moto.core.authorization import disable_iam_authentication

    with disable_iam_authentication():
        yield
