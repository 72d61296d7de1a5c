"""CloudFormation's intrinsic functions, evaluated outside CloudFormation against known physical names.

The tests and the local stack recreate the template's IAM roles in moto, and a role policy is only the
one ``make package`` deploys if its ``Ref``/``Fn::GetAtt``/``Fn::Sub`` resolve to the ARNs CloudFormation
would give the same resources. ``resolve`` does that for a ``Stack``: the pseudo parameters, the
template's parameter values, the conditions (already decided), and a ``Physical`` per logical id
(``physical`` builds one from a resource type and a name the way CloudFormation reports it). Anything
it cannot evaluate (an intrinsic it does not implement, a logical id or attribute it was not given,
an undecided condition) raises ``UnresolvedIntrinsic``: a policy half-resolved would silently grant
less, or more, than the template does. ``plan_stack`` gives every resource of a template a name, so the
resolver has something to point at: the template's own where it sets one, else the stable stand-in
``<stack>-<LogicalId>`` (CloudFormation would add a random suffix). A policy that reaches those
resources only through ``Ref``/``Fn::GetAtt``, as memberflow's do, allows the same whatever they are
called, so the naming scheme does not matter to what is tested.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()
"""What ``{"Ref": "AWS::NoValue"}`` evaluates to; lists and objects drop it, as CloudFormation does."""

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")

NAME_PROPERTIES: Mapping[str, str] = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::Policy": "PolicyName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Serverless::Function": "FunctionName",
}
"""The property that names each resource type this module can name; without it CloudFormation makes one up."""


class UnresolvedIntrinsic(ValueError):
    """An intrinsic function or reference that this resolver cannot evaluate for the given stack."""


@dataclass(frozen=True)
class Physical:
    """What CloudFormation reports for one resource: its ``Ref`` value and its ``Fn::GetAtt`` attributes."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stack:
    """Where the template is deployed, and what each of its logical ids became."""

    name: str
    region: str
    account_id: str
    partition: str = "aws"
    resources: Mapping[str, Physical] = field(default_factory=dict)
    parameters: Mapping[str, str] = field(default_factory=dict)
    conditions: Mapping[str, bool] = field(default_factory=dict)

    @property
    def pseudo_parameters(self) -> dict[str, str]:
        return {
            "AWS::StackName": self.name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com",
        }

    def with_resources(self, resources: Mapping[str, Physical]) -> Stack:
        return replace(self, resources={**self.resources, **resources})


def physical(resource_type: str, name: str, stack: Stack) -> Physical:
    """A resource of ``resource_type`` named ``name`` (a state machine's or function's ARN also works)."""
    prefix = f"arn:{stack.partition}"
    where = f"{stack.region}:{stack.account_id}"
    if resource_type == "AWS::DynamoDB::Table":
        arn = f"{prefix}:dynamodb:{where}:table/{name}"
        # The stream's label is a timestamp only the created table knows; any of its streams will do.
        return Physical(name, {"Arn": arn, "StreamArn": f"{arn}/stream/*"})
    if resource_type == "AWS::IAM::Role":
        return Physical(name, {"Arn": f"{prefix}:iam::{stack.account_id}:role/{name}"})
    if resource_type == "AWS::IAM::Policy":
        return Physical(name)
    if resource_type == "AWS::IAM::ManagedPolicy":
        return Physical(f"{prefix}:iam::{stack.account_id}:policy/{name}")
    if resource_type == "AWS::Logs::LogGroup":
        return Physical(name, {"Arn": f"{prefix}:logs:{where}:log-group:{name}:*"})
    if resource_type == "AWS::StepFunctions::StateMachine":
        arn = name if name.startswith("arn:") else f"{prefix}:states:{where}:stateMachine:{name}"
        return Physical(arn, {"Arn": arn, "Name": arn.rsplit(":", 1)[-1]})
    if resource_type in {"AWS::Lambda::Function", "AWS::Serverless::Function"}:
        arn = name if name.startswith("arn:") else f"{prefix}:lambda:{where}:function:{name}"
        return Physical(arn.split(":")[6], {"Arn": arn})
    raise UnresolvedIntrinsic(f"no rule for the physical names of {resource_type}")


def resolve(value: Any, stack: Stack) -> Any:
    """``value`` with every intrinsic function evaluated; raises ``UnresolvedIntrinsic`` on what it cannot."""
    if isinstance(value, list):
        return [item for item in (resolve(v, stack) for v in value) if item is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return _ref(argument, stack)
        if key == "Fn::GetAtt":
            return _get_att(argument, stack)
        if key == "Fn::Sub":
            return _sub(argument, stack)
        if key == "Fn::If":
            return _if(argument, stack)
        if key == "Fn::Join":
            return _join(argument, stack)
        # {"Condition": "Name"} is the intrinsic; a policy's Condition block is an object.
        if key.startswith("Fn::") or (key == "Condition" and isinstance(argument, str)):
            raise UnresolvedIntrinsic(f"{key} is not supported here")
    resolved = {key: resolve(inner, stack) for key, inner in value.items()}
    return {key: inner for key, inner in resolved.items() if inner is not NO_VALUE}


def _ref(name: Any, stack: Stack) -> Any:
    if not isinstance(name, str):
        raise UnresolvedIntrinsic(f"Ref takes a name, not {name!r}")
    if name == "AWS::NoValue":
        return NO_VALUE
    pseudo = stack.pseudo_parameters
    if name in pseudo:
        return pseudo[name]
    if name in stack.parameters:
        return stack.parameters[name]
    if name in stack.resources:
        return stack.resources[name].ref
    raise UnresolvedIntrinsic(f"Ref to {name}, which is neither a parameter nor a known resource")


def _get_att(argument: Any, stack: Stack) -> str:
    if isinstance(argument, str):
        argument = argument.split(".", 1)
    if not (isinstance(argument, list) and len(argument) == 2 and all(isinstance(a, str) for a in argument)):
        raise UnresolvedIntrinsic(f"Fn::GetAtt takes [LogicalId, Attribute], not {argument!r}")
    logical_id, attribute = argument
    if logical_id not in stack.resources:
        raise UnresolvedIntrinsic(f"Fn::GetAtt of {logical_id}, which is not a known resource")
    attributes = stack.resources[logical_id].attributes
    if attribute not in attributes:
        raise UnresolvedIntrinsic(f"Fn::GetAtt {logical_id}.{attribute}: only {sorted(attributes)} are known")
    return attributes[attribute]


def _sub(argument: Any, stack: Stack) -> str:
    if isinstance(argument, str):
        text, variables = argument, {}
    elif isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
        text, variables = argument[0], {key: resolve(v, stack) for key, v in argument[1].items()}
    else:
        raise UnresolvedIntrinsic(f"Fn::Sub takes a string or [string, {{variables}}], not {argument!r}")
    if not isinstance(text, str):
        raise UnresolvedIntrinsic(f"Fn::Sub's template must be a string, not {text!r}")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):  # ${!Literal} is how a template writes a literal ${Literal}
            return "${" + name[1:] + "}"
        if name in variables:
            found = variables[name]
        elif "." in name:
            found = _get_att(name.split(".", 1), stack)
        else:
            found = _ref(name, stack)
        if not isinstance(found, str):
            raise UnresolvedIntrinsic(f"Fn::Sub variable ${{{name}}} is not a string: {found!r}")
        return found

    return _SUB_VARIABLE.sub(substitute, text)


def _if(argument: Any, stack: Stack) -> Any:
    if not (isinstance(argument, list) and len(argument) == 3 and isinstance(argument[0], str)):
        raise UnresolvedIntrinsic(f"Fn::If takes [Condition, then, else], not {argument!r}")
    condition, then, otherwise = argument
    if condition not in stack.conditions:
        raise UnresolvedIntrinsic(f"Fn::If on the condition {condition}, which was not decided")
    return resolve(then if stack.conditions[condition] else otherwise, stack)


def _join(argument: Any, stack: Stack) -> str:
    if not (isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str)):
        raise UnresolvedIntrinsic(f"Fn::Join takes [delimiter, [values]], not {argument!r}")
    values = resolve(argument[1], stack)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise UnresolvedIntrinsic(f"Fn::Join needs a list of strings, got {values!r}")
    return str(argument[0]).join(values)


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """Every template parameter at its default, as CloudFormation passes them (strings); none may lack one."""
    values: dict[str, str] = {}
    for name, parameter in template.get("Parameters", {}).items():
        if "Default" not in parameter:
            raise UnresolvedIntrinsic(f"the parameter {name} has no default; pass its value")
        default = parameter["Default"]
        values[name] = ",".join(map(str, default)) if isinstance(default, list) else str(default)
    return values


def decide_conditions(template: Mapping[str, Any], stack: Stack) -> dict[str, bool]:
    """The template's Conditions decided for ``stack``'s parameters (Fn::Equals, Not, And, Or, Condition)."""
    definitions: Mapping[str, Any] = template.get("Conditions", {})
    decided: dict[str, bool] = {}

    def decide(value: Any, path: tuple[str, ...]) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Condition":
                if argument in path or argument not in definitions:
                    raise UnresolvedIntrinsic(f"condition {argument} is unknown or refers to itself")
                if argument not in decided:
                    decided[argument] = decide(definitions[argument], (*path, argument))
                return decided[argument]
            if key == "Fn::Equals" and isinstance(argument, list) and len(argument) == 2:
                left, right = (resolve(a, stack) for a in argument)
                return bool(left == right)
            if key == "Fn::Not" and isinstance(argument, list) and len(argument) == 1:
                return not decide(argument[0], path)
            if key == "Fn::And" and isinstance(argument, list):
                return all(decide(a, path) for a in argument)
            if key == "Fn::Or" and isinstance(argument, list):
                return any(decide(a, path) for a in argument)
        raise UnresolvedIntrinsic(f"cannot decide the condition {value!r}")

    for name in definitions:
        decide({"Condition": name}, ())
    return decided


def plan_stack(template: Mapping[str, Any], stack: Stack, given: Mapping[str, Physical]) -> Stack:
    """``stack`` with a ``Physical`` for every resource of ``template`` whose type ``physical`` knows.

    ``given`` wins (``devstack.stack`` gives tables as the models name them and functions as
    ``function_names`` does, before anything exists in moto). Otherwise a resource is named by its
    name property, resolved against what is known so far (a log group named after its function), else
    ``<stack>-<LogicalId>``. A name that never resolves raises.
    """
    planned = stack.with_resources(given)
    pending = {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if logical_id not in given and resource.get("Type") in NAME_PROPERTIES
    }
    while pending:
        progressed = False
        errors: dict[str, str] = {}
        for logical_id, resource in list(pending.items()):
            name_value = resource.get("Properties", {}).get(NAME_PROPERTIES[resource["Type"]])
            try:
                name = f"{stack.name}-{logical_id}" if name_value is None else resolve(name_value, planned)
            except UnresolvedIntrinsic as error:
                errors[logical_id] = str(error)
                continue
            planned = planned.with_resources({logical_id: physical(resource["Type"], name, planned)})
            del pending[logical_id]
            progressed = True
        if not progressed:
            raise UnresolvedIntrinsic(
                f"cannot name {', '.join(f'{k} ({v})' for k, v in sorted(errors.items()))}"
            )
    return planned
