"""Secret references resolved from an injected environment and a fake SSM fetch (no AWS)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.aws.ssm import ssm_fetcher
from chalicelib.config import SecretResolver, SecretUnavailable
from chalicelib.config.secrets import ParsedSecretRef, parse_secret_ref
from chalicelib.domain.errors import MemberflowError
from chalicelib.entrypoints.http import status_of


class FakeSsm:
    """A parameter store in a dict that records every path it was asked for."""

    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters
        self.asked: list[str] = []

    def __call__(self, path: str) -> str:
        self.asked.append(path)
        return self.parameters[path]  # KeyError for a missing one, as the contract says


class TestParse:
    @pytest.mark.parametrize(
        ("ref", "parsed"),
        [
            ("env:THRIVECART_SECRET", ParsedSecretRef("env", "THRIVECART_SECRET")),
            ("ssm:/memberflow/prod/tc", ParsedSecretRef("ssm", "/memberflow/prod/tc")),
            ("correct horse", ParsedSecretRef("literal")),
            ("environment:X", ParsedSecretRef("literal")),
        ],
    )
    def test_kinds(self, ref: str, parsed: ParsedSecretRef) -> None:
        assert parse_secret_ref(ref) == parsed

    def test_a_parsed_literal_keeps_no_copy_of_the_value(self) -> None:
        assert "hunter2" not in repr(parse_secret_ref("hunter2"))


class TestEnv:
    def test_reads_the_variable(self) -> None:
        resolver = SecretResolver(environ={"THRIVECART_SECRET": "tc-value"})
        assert resolver.resolve("env:THRIVECART_SECRET") == "tc-value"

    def test_a_missing_variable_names_the_ref_but_no_value(self) -> None:
        resolver = SecretResolver(environ={"OTHER": "other-value"})
        with pytest.raises(SecretUnavailable) as caught:
            resolver.resolve("env:THRIVECART_SECRET")
        error = caught.value
        assert str(error) == (
            "secret env:THRIVECART_SECRET is unavailable: environment variable THRIVECART_SECRET is not set"
        )
        assert "other-value" not in str(error)
        assert (error.code, status_of(error), error.ref) == (
            "secret_unavailable",
            503,
            "env:THRIVECART_SECRET",
        )
        assert error.retryable
        assert "THRIVECART_SECRET" not in error.answer  # the caller hears no reference or path
        assert isinstance(error, MemberflowError)

    def test_an_empty_variable_is_unavailable(self) -> None:
        with pytest.raises(SecretUnavailable, match="environment variable X is empty"):
            SecretResolver(environ={"X": ""}).resolve("env:X")

    def test_values_are_cached_per_ref(self) -> None:
        environ = {"X": "first"}
        resolver = SecretResolver(environ=environ)
        assert resolver.resolve("env:X") == "first"
        environ["X"] = "second"
        assert resolver.resolve("env:X") == "first"

    def test_a_failure_is_not_cached(self) -> None:
        environ: dict[str, str] = {}
        resolver = SecretResolver(environ=environ)
        with pytest.raises(SecretUnavailable):
            resolver.resolve("env:X")
        environ["X"] = "now-set"
        assert resolver.resolve("env:X") == "now-set"


class TestSsm:
    def test_reads_the_parameter_once(self) -> None:
        ssm = FakeSsm({"/memberflow/tc": "tc-value"})
        resolver = SecretResolver(environ={}, fetch_ssm=ssm)
        assert resolver.resolve("ssm:/memberflow/tc") == "tc-value"
        assert resolver.resolve("ssm:/memberflow/tc") == "tc-value"
        assert ssm.asked == ["/memberflow/tc"]

    def test_a_missing_parameter_names_the_ref(self) -> None:
        resolver = SecretResolver(environ={}, fetch_ssm=FakeSsm({}))
        with pytest.raises(SecretUnavailable) as caught:
            resolver.resolve("ssm:/memberflow/kit")
        assert str(caught.value) == (
            "secret ssm:/memberflow/kit is unavailable: SSM parameter /memberflow/kit does not exist"
        )

    def test_other_failures_keep_only_the_exception_type(self) -> None:
        def broken(path: str) -> str:
            raise RuntimeError("leaky-detail")

        with pytest.raises(SecretUnavailable) as caught:
            SecretResolver(environ={}, fetch_ssm=broken).resolve("ssm:/x")
        assert (
            str(caught.value)
            == "secret ssm:/x is unavailable: reading SSM parameter /x failed (RuntimeError)"
        )

    def test_env_refs_never_touch_ssm(self) -> None:
        ssm = FakeSsm({})
        SecretResolver(environ={"X": "v"}, fetch_ssm=ssm).resolve("env:X")
        assert ssm.asked == []


class TestLiteralsAndOptional:
    def test_a_literal_is_its_own_value(self) -> None:
        ssm = FakeSsm({})
        assert SecretResolver(environ={}, fetch_ssm=ssm).resolve("plain-secret") == "plain-secret"
        assert ssm.asked == []

    def test_resolve_optional(self) -> None:
        resolver = SecretResolver(environ={"X": "v"})
        assert resolver.resolve_optional(None) is None
        assert resolver.resolve_optional("env:X") == "v"

    def test_a_malformed_ref_is_unavailable_without_echoing_it(self) -> None:
        with pytest.raises(SecretUnavailable) as caught:
            SecretResolver(environ={}).resolve("env:not valid")
        assert caught.value.ref == "<malformed reference>"

    def test_repr_shows_no_values(self) -> None:
        resolver = SecretResolver(environ={"X": "top-secret"})
        resolver.resolve("env:X")
        assert "top-secret" not in repr(resolver)


class FakeSsmClient:
    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters
        self.calls: list[dict[str, Any]] = []

    def get_parameter(self, *, Name: str, WithDecryption: bool) -> dict[str, Any]:
        self.calls.append({"Name": Name, "WithDecryption": WithDecryption})
        if Name not in self.parameters:
            raise ClientError(
                {"Error": {"Code": "ParameterNotFound", "Message": "not found"}}, "GetParameter"
            )
        return {"Parameter": {"Name": Name, "Value": self.parameters[Name]}}


class TestSsmFetcher:
    def test_creates_the_client_on_first_use_and_decrypts(self) -> None:
        client = FakeSsmClient({"/a": "value-a"})
        made: list[FakeSsmClient] = []

        def factory() -> FakeSsmClient:
            made.append(client)
            return client

        fetch = ssm_fetcher(factory)
        assert made == []
        assert fetch("/a") == "value-a"
        fetch("/a")
        assert len(made) == 1
        assert client.calls[0] == {"Name": "/a", "WithDecryption": True}

    def test_a_missing_parameter_is_a_key_error(self) -> None:
        fetch = ssm_fetcher(lambda: FakeSsmClient({}))
        with pytest.raises(KeyError):
            fetch("/missing")

    def test_other_aws_errors_propagate(self) -> None:
        class Denied(FakeSsmClient):
            def get_parameter(self, *, Name: str, WithDecryption: bool) -> dict[str, Any]:
                raise ClientError(
                    {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter"
                )

        with pytest.raises(ClientError):
            ssm_fetcher(lambda: Denied({}))("/x")

    def test_plugs_into_the_resolver(self) -> None:
        resolver = SecretResolver(environ={}, fetch_ssm=ssm_fetcher(lambda: FakeSsmClient({"/p": "v"})))
        assert resolver.resolve("ssm:/p") == "v"
        with pytest.raises(SecretUnavailable, match="does not exist"):
            resolver.resolve("ssm:/q")
