"""Process settings, read once from the environment; the only module that looks at ``os.environ``.

Table names and the config path come from the deployment (CloudFormation fills them in); the admin
token, the access API token and the member session secret are secret references like any config
secret (``env:NAME``, ``ssm:/path`` or a literal), so in AWS they live in SSM Parameter Store and
never in the function's environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chalicelib.storage.names import TableNames

APP_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = "config/example.yaml"


@dataclass(frozen=True)
class Settings:
    config_path: Path
    tables: TableNames
    admin_token_ref: str | None
    environ: Mapping[str, str]
    """Where ``env:`` secret references are resolved."""
    public_base_url: str | None = None
    """Base of the generated operation URLs; derived from the request when unset."""
    state_machine_arn: str | None = None
    """The delay state machine that wakes waiting automation runs; unset, runs wait for the sweep."""
    kit_api_base_url: str | None = None
    """``KIT_API_BASE_URL``, used as given; unset means Kit's own (the client's ``DEFAULT_BASE_URL``)."""
    member_session_secret_ref: str | None = None
    """``MEMBER_SESSION_SECRET``: a secret reference (or, locally, the key itself) for signing member
    session tokens; unset, member logins are refused (``make run`` sets a local one)."""
    access_token_ref: str | None = None
    """``ACCESS_API_TOKEN``: the membership site's bearer token for ``/access/*``, a secret reference
    like the admin token's; unset, the access API answers 401 to everyone."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        config_path = Path(env.get("MEMBERFLOW_CONFIG") or DEFAULT_CONFIG)
        if not config_path.is_absolute():
            config_path = APP_ROOT / config_path
        default = TableNames.with_prefix(env.get("MEMBERFLOW_TABLE_PREFIX", "memberflow-"))
        tables = TableNames(
            contacts=env.get("MEMBERFLOW_CONTACTS_TABLE", default.contacts),
            events=env.get("MEMBERFLOW_EVENTS_TABLE", default.events),
            ledger=env.get("MEMBERFLOW_LEDGER_TABLE", default.ledger),
            timeline=env.get("MEMBERFLOW_TIMELINE_TABLE", default.timeline),
            outbox=env.get("MEMBERFLOW_OUTBOX_TABLE", default.outbox),
            runs=env.get("MEMBERFLOW_RUNS_TABLE", default.runs),
            versions=env.get("MEMBERFLOW_VERSIONS_TABLE", default.versions),
            run_history=env.get("MEMBERFLOW_RUN_HISTORY_TABLE", default.run_history),
            markers=env.get("MEMBERFLOW_MARKERS_TABLE", default.markers),
            rate_limits=env.get("MEMBERFLOW_RATE_LIMITS_TABLE", default.rate_limits),
            kit_state=env.get("MEMBERFLOW_KIT_STATE_TABLE", default.kit_state),
            members=env.get("MEMBERFLOW_MEMBERS_TABLE", default.members),
        )
        admin = env.get("ADMIN_TOKEN") or None
        # A bare token in the environment is the local default; refs are resolved like config secrets.
        return cls(
            config_path=config_path,
            tables=tables,
            admin_token_ref=admin,
            environ=env,
            public_base_url=env.get("PUBLIC_BASE_URL") or None,
            state_machine_arn=env.get("MEMBERFLOW_STATE_MACHINE_ARN") or None,
            kit_api_base_url=env.get("KIT_API_BASE_URL") or None,
            member_session_secret_ref=env.get("MEMBER_SESSION_SECRET") or None,
            access_token_ref=env.get("ACCESS_API_TOKEN") or None,
        )
