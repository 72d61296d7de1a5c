"""SSM Parameter Store, as the secret resolver needs it: one decrypted read by parameter name.

``ssm_fetcher()`` returns a function with the ``SsmFetch`` shape of ``chalicelib.config.secrets``.
The boto3 client is created on the first call, not at import or when the fetcher is built, so a
config that references no ``ssm:`` secret never touches AWS. A missing parameter becomes ``KeyError``
(the contract the resolver relies on); every other AWS error propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

_NOT_FOUND_CODES = frozenset({"ParameterNotFound", "ParameterVersionNotFound"})


class _SsmClient(Protocol):
    def get_parameter(self, *, Name: str, WithDecryption: bool) -> dict[str, Any]: ...


def ssm_fetcher(client_factory: Callable[[], Any] | None = None) -> Callable[[str], str]:
    """A ``fetch(path) -> value`` function backed by ``ssm.get_parameter(WithDecryption=True)``."""
    client: _SsmClient | None = None

    def make_client() -> Any:
        import boto3

        return boto3.client("ssm")

    factory = client_factory or make_client

    def fetch(path: str) -> str:
        # Imported on the first read, with the client: botocore costs a cold start tens of milliseconds.
        from botocore.exceptions import ClientError

        nonlocal client
        if client is None:
            client = cast(_SsmClient, factory())
        try:
            response = client.get_parameter(Name=path, WithDecryption=True)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND_CODES:
                raise KeyError(path) from None
            raise
        return str(response["Parameter"]["Value"])

    return fetch
