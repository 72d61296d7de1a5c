"""moto as the deployed app sees AWS: the packaged template's role, exactly its policy, IAM enforced.

``app_aws()`` is a context manager (use it in a fixture) that, inside ``mock_aws``, creates the
template's tables (named as the pynamodb models are bound now) and roles with exactly the statements
``make package`` generates (``devstack.stack.provision``; with ``lambdas=True`` also the functions and
the delay state machine, which runs as ``DelayStateMachineRole``), then runs the test as
``FunctionRole`` (credential environment variables, boto3's default session and pynamodb's cached
connections all point at it) with IAM enforced per action and resource (``devstack.moto_iam``). A call
the role may not make fails as it does in AWS, with ``AccessDeniedException``. Setup and inspection
that the app could not do itself go through ``admin_client`` (an IAM user allowed everything)::

    def test_a_contact_is_stored(aws: AppAws) -> None:
        app_stores().contacts.commit(...)                          # as FunctionRole
        aws.admin_client("dynamodb").scan(TableName="memberflow-contacts")

``without(action)`` takes one action out of the function role's policies for the rest of the test,
for tests that prove a call needs it; each call takes from what the earlier ones left.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pynamodb.connection.base as pynamodb_connection
import pytest
from moto import mock_aws

from chalicelib.services.ports import Stores
from devstack import moto_iam, moto_support
from devstack.stack import TABLES, Credentials, MotoStack, acting_as, botocore_session, provision
from devstack.stepfunctions import MOTO_CONFIG
from infra.resources import FUNCTION_ROLE

STACK_NAME = "memberflow-test"
"""``<app>-<stage>``: functions are ``memberflow-test-<name>``, its state machine ``<stack>-delays``."""
REGION = "us-east-1"


@dataclass
class AppAws:
    """The provisioned stack, the function role's credentials, and an admin beside them."""

    stack: MotoStack
    app_credentials: Credentials

    def admin_client(self, service: str) -> Any:
        """A client of the admin user: may do anything, for setup and for looking at state directly."""
        return self.stack.admin_client(service)

    def app_client(self, service: str) -> Any:
        """A client signed as the function role, as the app's own clients are."""
        return self.app_credentials.client(service, REGION)

    def role_credentials(self, role: str) -> Credentials:
        """Credentials of another role of the template (e.g. ``DelayStateMachineRole``)."""
        with moto_iam.suspended():
            return self.stack.assume(role, session="test")

    def without(self, action: str, *, role: str = FUNCTION_ROLE, sid: str | None = None) -> None:
        """Drop ``action`` from ``role``'s statements (only statement ``sid``, if given) for this test."""
        iam = self.admin_client("iam")
        role_name = self.stack.roles[role].name
        found = False
        # What IAM holds now, not the template's policies: an earlier call may have taken from them.
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
            for name in page["PolicyNames"]:
                document = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
                statements, removed = _without_action(document["Statement"], action, sid)
                if not removed:
                    continue
                found = True
                if not statements:  # IAM refuses a policy without statements
                    iam.delete_role_policy(RoleName=role_name, PolicyName=name)
                    continue
                iam.put_role_policy(
                    RoleName=role_name,
                    PolicyName=name,
                    PolicyDocument=json.dumps({**document, "Statement": statements}),
                )
        if not found:
            raise AssertionError(f"{role} is not granted {action}" + (f" in {sid}" if sid else ""))


def _without_action(
    statements: list[dict[str, Any]], action: str, sid: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """``statements`` less ``action`` (in statement ``sid`` only, if given), and whether any had it."""
    kept_statements = []
    removed = False
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if sid is None or statement.get("Sid") == sid:
            kept = [a for a in actions if a != action]
            removed = removed or len(kept) < len(actions)
            actions = kept
        if actions:
            kept_statements.append({**statement, "Action": actions})
    return kept_statements, removed


def app_stores() -> Stores:
    """The DynamoDB stores over the provisioned tables, signing as whoever the process is now."""
    from chalicelib.storage.dynamo import Tables, dynamo_stores

    return dynamo_stores(Tables(TABLES))


@contextmanager
def app_aws(*, lambdas: bool = False, tables: bool = True) -> Iterator[AppAws]:
    """The template's tables and roles in moto, the test running as ``FunctionRole``, IAM enforced."""
    from app import app

    moto_support.install(iam=True)
    with pytest.MonkeyPatch.context() as patch, mock_aws(config=MOTO_CONFIG):
        # pynamodb makes a botocore session per connection and thread, and every test makes new ones
        # (new credentials): let them share the parsed service models. pynamodb internals, pinned <6.2.
        patch.setattr(pynamodb_connection, "get_session", botocore_session)
        stack = provision(app, stack_name=STACK_NAME, region=REGION, tables=tables, lambdas=lambdas)
        credentials = stack.assume()
        with acting_as(credentials), moto_iam.enforcing():
            yield AppAws(stack, credentials)
