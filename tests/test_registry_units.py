"""Pure units of the registry package: upload policy table, challenge parsing, scopes, retry timing."""

from __future__ import annotations

import doctest

import pytest

import kitops_flows.registry.auth as auth_mod
import kitops_flows.registry.errors as errors_mod
import kitops_flows.registry.upload_policy as policy_mod
from kitops_flows.registry import RetryPolicy, UploadPolicy, UploadRule
from kitops_flows.registry.auth import merge_scopes, parse_challenge
from kitops_flows.registry.errors import describe_error_body
from kitops_flows.registry.retry import parse_retry_after


@pytest.mark.parametrize("module", [auth_mod, errors_mod, policy_mod])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


@pytest.mark.parametrize(("host", "size", "mode"), [
    ("ghcr.io", 10, "monolithic"),
    ("ghcr.io", 10 << 30, "monolithic"),
    ("europe-docker.pkg.dev", 10 << 30, "monolithic"),
    ("gcr.io", 10 << 30, "monolithic"),
    ("eu.gcr.io", 10 << 30, "monolithic"),
    ("123.dkr.ecr.us-east-1.amazonaws.com", 10 << 30, "monolithic"),
    ("123.dkr.ecr.cn-north-1.amazonaws.com.cn", 10 << 30, "monolithic"),
    ("GHCR.IO", 10 << 30, "monolithic"),
    ("registry.example.com", (100 << 20) - 1, "monolithic"),
    ("registry.example.com", 100 << 20, "chunked"),
    ("127.0.0.1:5000", 200 << 20, "chunked"),
    ("notghcr.io", 200 << 20, "chunked"),
])
def test_kit_upload_table(host: str, size: int, mode: str) -> None:
    assert UploadPolicy().mode_for(host, size) == mode


def test_upload_table_is_configurable() -> None:
    policy = UploadPolicy(chunk_size=8 << 20, rules=(UploadRule(r"slow\.example\.com", "chunked"),))
    assert policy.mode_for("slow.example.com:443", 1) == "chunked"
    assert policy.mode_for("ghcr.io", 9 << 20) == "chunked"  # the custom table replaced kit's
    with pytest.raises(ValueError):
        UploadPolicy(chunk_size=0)


def test_parse_challenges() -> None:
    c = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                        'scope="repository:library/ubuntu:pull",error="insufficient_scope"')
    assert c is not None and c.realm == "https://auth.docker.io/token"
    assert c.params["service"] == "registry.docker.io" and c.params["error"] == "insufficient_scope"
    both = parse_challenge('Basic realm="x", Bearer realm="https://t/token",service=s')
    assert both is not None and both.scheme == "bearer" and both.params["service"] == "s"
    assert parse_challenge("Negotiate abc") is None
    assert parse_challenge("") is None


def test_merge_scopes() -> None:
    assert merge_scopes(["repository:a:push"], ["repository:a:pull repository:b:pull"]) == (
        "repository:a:pull,push", "repository:b:pull")
    assert merge_scopes([]) == ()


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4)
    for attempt in range(1, 8):
        assert 0 <= policy.delay(attempt) <= min(4, 0.5 * 2 ** (attempt - 1))
    assert policy.delay(1, retry_after=30) == 4  # Retry-After is honoured up to max_delay
    assert parse_retry_after("7") == 7 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 1  # a date in the past: now


def test_error_body_rendering() -> None:
    assert describe_error_body(b"", "", 503) == "Service Unavailable"
    assert describe_error_body(b'{"errors":[{"code":"DENIED","message":""}]}', "application/json", 403) == "Forbidden"
    assert describe_error_body(b"<html>oops</html>", "text/html", 502) == "Bad Gateway (<html>oops</html>)"
