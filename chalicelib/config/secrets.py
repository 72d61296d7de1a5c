"""Secret references and their resolution.

A secret key in the config file holds a *reference*, never (if the operator follows the advice) the
secret itself: ``env:NAME`` reads an environment variable, ``ssm:/path`` reads an SSM Parameter Store
SecureString, anything else is a literal (accepted, with a warning at load time). ``parse_secret_ref``
is the one reader of that syntax; the config model validates with it and ``SecretResolver`` resolves
with it. The resolver's inputs are injected (an environ mapping and an SSM fetch function), so tests
and the local stack need no AWS; the real SSM fetcher is built lazily on the first ``ssm:`` lookup.
Nothing here ever puts a secret value into a message, a log line or a repr.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from chalicelib.domain.errors import Unavailable
from chalicelib.observability import SECRETS

SsmFetch = Callable[[str], str]
"""Returns the decrypted value of an SSM parameter; raises ``KeyError`` when it does not exist."""

ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
SSM_PATH_PATTERN = r"/[A-Za-z0-9_.\-/]+"

_ENV_NAME_RE = re.compile(ENV_NAME_PATTERN)
_SSM_PATH_RE = re.compile(SSM_PATH_PATTERN)
_PREFIX_RE = re.compile(r"(env|ssm):", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedSecretRef:
    """What a reference points at. A literal keeps no copy of its value, so this is safe to log."""

    kind: Literal["env", "ssm", "literal"]
    target: str = ""
    """The variable name for ``env``, the parameter path for ``ssm``, empty for a literal."""


def parse_secret_ref(ref: str) -> ParsedSecretRef:
    """Read ``env:NAME``, ``ssm:/path`` or a literal; raise ``ValueError`` for a malformed reference."""
    if not ref:
        raise ValueError("secret reference is empty; use env:NAME or ssm:/path")
    prefix = _PREFIX_RE.match(ref)
    if prefix is None:
        return ParsedSecretRef("literal")
    kind = prefix.group(1)
    target = ref[prefix.end() :]
    if kind not in ("env", "ssm"):
        # "ENV:FOO" is almost certainly a mistyped reference; taking it as a literal secret would
        # silently make the string "ENV:FOO" the password.
        raise ValueError(f"write the prefix in lowercase: {kind.lower()}:{target}")
    if kind == "env":
        if not _ENV_NAME_RE.fullmatch(target):
            raise ValueError(
                f"invalid environment variable name {target!r} in env:{target}: "
                f"expected letters, digits and '_', not starting with a digit"
            )
        return ParsedSecretRef("env", target)
    if not _SSM_PATH_RE.fullmatch(target):
        raise ValueError(
            f"invalid SSM parameter path {target!r} in ssm:{target}: "
            f"expected a path starting with '/', e.g. ssm:/memberflow/prod/thrivecart-secret"
        )
    return ParsedSecretRef("ssm", target)


def describe_ref(ref: str) -> str:
    """A loggable name for a reference: the reference itself, or ``<literal>`` for a literal."""
    try:
        parsed = parse_secret_ref(ref)
    except ValueError:
        return "<malformed reference>"
    return "<literal>" if parsed.kind == "literal" else ref


class SecretUnavailable(Unavailable):
    """A referenced secret cannot be read: the variable is unset or empty, or the parameter is missing.

    A deployment problem, not the caller's: the answer is a 503 (senders retry while an operator
    fixes it) with a generic message; the reference and reason go to the logs only.
    """

    code = "secret_unavailable"
    public_message = "a secret memberflow needs cannot be read right now; the details are in its logs"

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(f"secret {describe_ref(ref)} is unavailable: {reason}")
        self.ref = describe_ref(ref)
        self.reason = reason


class SecretResolver:
    """Turns secret references into values, once per reference.

    ``environ`` defaults to ``os.environ``; ``fetch_ssm`` defaults to the boto3-backed fetcher from
    ``chalicelib.adapters.aws.ssm``, created only when the first ``ssm:`` reference is resolved.
    Failures are not cached, so a parameter created after a failed lookup is found on the next try.
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        fetch_ssm: SsmFetch | None = None,
    ) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._fetch_ssm = fetch_ssm
        self._cache: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<SecretResolver cached={len(self._cache)}>"

    def resolve(self, ref: str) -> str:
        """The value behind ``ref``; raises ``SecretUnavailable`` (naming the ref) when it has none."""
        cached = self._cache.get(ref)
        if cached is not None:
            return cached
        try:
            parsed = parse_secret_ref(ref)
        except ValueError as exc:
            raise SecretUnavailable(ref, str(exc)) from None
        if parsed.kind == "literal":
            value = ref
        else:
            value = (
                self._read_env(ref, parsed.target) if parsed.kind == "env" else self._read_ssm(ref, parsed)
            )
        # Every value that leaves here is a secret: the log formatter and the inbox mask it from now on.
        SECRETS.register(value)
        self._cache[ref] = value
        return value

    def resolve_optional(self, ref: str | None) -> str | None:
        """``resolve`` for keys that may be left out of the config: ``None`` stays ``None``."""
        return None if ref is None else self.resolve(ref)

    def _read_env(self, ref: str, name: str) -> str:
        value = self._environ.get(name)
        if value is None:
            raise SecretUnavailable(ref, f"environment variable {name} is not set")
        if not value:
            # An empty secret would make "no secret sent" compare equal to the expected one.
            raise SecretUnavailable(ref, f"environment variable {name} is empty")
        return value

    def _read_ssm(self, ref: str, parsed: ParsedSecretRef) -> str:
        fetch = self._ssm()
        try:
            value = fetch(parsed.target)
        except KeyError:
            raise SecretUnavailable(ref, f"SSM parameter {parsed.target} does not exist") from None
        except Exception as exc:
            # The exception text of boto3 names the parameter, never its value, but keep only the
            # type here so that a custom fetcher cannot leak anything through the message.
            raise SecretUnavailable(
                ref, f"reading SSM parameter {parsed.target} failed ({type(exc).__name__})"
            ) from exc
        if not value:
            raise SecretUnavailable(ref, f"SSM parameter {parsed.target} is empty")
        return value

    def _ssm(self) -> SsmFetch:
        if self._fetch_ssm is None:
            # Imported here so that loading the config never imports boto3.
            from chalicelib.adapters.aws.ssm import ssm_fetcher

            self._fetch_ssm = ssm_fetcher()
        return self._fetch_ssm
