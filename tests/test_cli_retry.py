"""CLI rough edges around failures: ``--retry-times`` / ``--retry-delay`` (skopeo's flags) on every network command,
one warning per failed blob naming the attempts (not one line per attempt), errors naming the HTTP status, and
hints naming flags that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.cli import build_parser, main
from kitops_flows.registry import RetryPolicy
from kitops_flows.registry.errors import describe_transport_error
from kitops_flows.store import LocalStore


def _four_layers(root: Path) -> Path:
    for name in ("model.bin", "src/a.py", "data/d.csv", "README.md"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"content of {name}\n")
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel: {path: model.bin}\ncode: [{path: src}]\n"
                                  "datasets: [{name: d, path: data}]\ndocs: [{path: README.md}]\n")
    return root


def test_permanent_failure_one_warning_per_blob(registry, proxy_factory, tmp_path: Path,  # noqa: ANN001
                                                capsys: pytest.CaptureFixture[str]) -> None:
    proxy = proxy_factory(registry.host)
    proxy.fail_fraction(1.0, status=503, path_contains="/blobs/")
    home = str(tmp_path / "home")
    ref = f"{proxy.host}/retry/push:v1"
    assert main(["--config", home, "pack", str(_four_layers(tmp_path / "ctx")), "-t", ref]) == 0
    capsys.readouterr()
    code = main(["--config", home, "push", ref, "--plain-http", "--retry-times", "2", "--retry-delay", "10ms"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    *warnings, error = err
    blobs = {m.group(0) for line in warnings for m in [re.search(r"sha256:[0-9a-f]{64}", line)] if m}
    assert len(warnings) == len(blobs) == 5, err  # config + 4 layers, one line each, nothing per attempt
    assert all("(gave up after 3 attempts)" in w and "503 Service Unavailable" in w for w in warnings), warnings
    assert error.startswith("Error: ") and "503 Service Unavailable" in error and "gave up after 3 attempts" in error
    for blob in blobs:  # --retry-times 2: the first attempt and two retries
        assert proxy.count(f"/blobs/{blob}") == 3


def test_retry_flags_recover_and_say_so_once(registry, proxy_factory, tmp_path: Path,  # noqa: ANN001
                                             capsys: pytest.CaptureFixture[str]) -> None:
    proxy = proxy_factory(registry.host)
    home = str(tmp_path / "home")
    ref = f"{proxy.host}/retry/recover:v1"
    main(["--config", home, "pack", str(_four_layers(tmp_path / "ctx")), "-t", ref])
    proxy.fail_next(2, status=503, path_contains="/manifests/", method="PUT")
    capsys.readouterr()
    assert main(["--config", home, "push", ref, "--plain-http", "--retry-times", "3", "--retry-delay", "0.01"]) == 0
    err = capsys.readouterr().err
    assert "retrying in" not in err  # per-attempt lines are debug output
    assert err.count("succeeded on attempt 3") == 1 and "503 Service Unavailable" in err
    assert KitOpsClient(store=LocalStore(tmp_path / "other"), plain_http=True).resolve(ref).digest


def test_retry_flag_parsing_and_policy() -> None:
    parser = build_parser()
    args = parser.parse_args(["pull", "r.example.com/a:b", "--retry-times", "0", "--retry-delay", "1.5s"])
    policy = RetryPolicy.from_cli(args.retry_times, args.retry_delay)
    assert (policy.max_attempts, policy.delay(1), policy.delay(4)) == (1, 1.5, 1.5)
    assert RetryPolicy.from_cli(None, None) == RetryPolicy()
    assert parser.parse_args(["pull", "x", "--retry-delay", "250ms"]).retry_delay == 0.25
    with pytest.raises(SystemExit):
        parser.parse_args(["pull", "x", "--retry-times", "-1"])
    with pytest.raises(SystemExit):
        parser.parse_args(["pull", "x", "--retry-delay", "soon"])


def test_tls_hint_names_flags_the_cli_has() -> None:
    import ssl

    import requests

    exc = requests.exceptions.SSLError(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] nope"))
    hint = describe_transport_error(exc, "reg.example.com", plain_http=False)
    flags = re.findall(r"--[a-z][a-z-]+", hint)
    assert flags == ["--tls-cert", "--tls-verify"]
    options = set(build_parser()._subparsers._group_actions[0].choices["push"]._option_string_actions)  # noqa: SLF001
    assert set(flags) <= options
