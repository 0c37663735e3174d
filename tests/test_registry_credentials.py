"""Credential resolution order, credential helpers, and login/logout against real registries."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from token_issuer import token_registry  # noqa: F401 - pytest fixture

from kitops_flows.errors import AuthenticationError
from kitops_flows.registry import (
    RegistryClient,
    RegistryCredentials,
    login,
    logout,
    resolve_credentials,
)


def write_config(path: Path, doc: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def auth_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_repr_and_str_hide_password() -> None:
    creds = RegistryCredentials("alice", "hunter2-secret")
    assert "hunter2" not in repr(creds) and "hunter2" not in str(creds) and "hunter2" not in f"{[creds]}"
    assert "alice" in repr(creds)


def test_resolution_order(tmp_path: Path) -> None:
    host = "reg.example.com:5000"
    kitops_home, docker_config, home = tmp_path / "kitops", tmp_path / "dockercfg", tmp_path / "home"
    env = {"DOCKER_CONFIG": str(docker_config), "HOME": str(home)}
    assert resolve_credentials(host, kitops_home=kitops_home, env=env) is None

    write_config(home / ".docker/config.json", {"auths": {host: auth_entry("from-home", "p4")}})
    assert resolve_credentials(host, kitops_home=kitops_home, env=env) == RegistryCredentials("from-home", "p4")

    write_config(docker_config / "config.json", {"auths": {f"https://{host}": auth_entry("from-docker-config", "p3")}})
    assert resolve_credentials(host, kitops_home=kitops_home, env=env).username == "from-docker-config"

    write_config(kitops_home / "credentials.json", {"auths": {host: auth_entry("from-kit", "p:2")}})
    assert resolve_credentials(host, kitops_home=kitops_home, env=env) == RegistryCredentials("from-kit", "p:2")

    env |= {"KITOPS_REGISTRY_USERNAME": "from-env", "KITOPS_REGISTRY_PASSWORD": "p1"}
    assert resolve_credentials(host, kitops_home=kitops_home, env=env) == RegistryCredentials("from-env", "p1")

    # KITOPS_REGISTRY scopes the env credentials to one host
    env["KITOPS_REGISTRY"] = "other.example.com"
    assert resolve_credentials(host, kitops_home=kitops_home, env=env).username == "from-kit"
    assert resolve_credentials("other.example.com", kitops_home=kitops_home, env=env).username == "from-env"
    # another host is not given someone else's credentials
    assert resolve_credentials("third.example.com", kitops_home=kitops_home, env={"HOME": str(home)}) is None


def test_username_password_fields_and_docker_hub_key(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "home/.docker/config.json", {"auths": {
        "https://index.docker.io/v1/": {"username": "hubuser", "password": "hubpass"},
    }})
    env = {"HOME": str(cfg.parent.parent)}
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert resolve_credentials(name, kitops_home=None, env=env) == RegistryCredentials("hubuser", "hubpass")


def test_credential_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-kftest"
    helper.write_text('#!/bin/sh\nread server\n[ "$1" = get ] || exit 2\n'
                      'case "$server" in *helped.example.com*) '
                      'echo "{\\"ServerURL\\":\\"$server\\",\\"Username\\":\\"helper-user\\",\\"Secret\\":\\"helper-secret\\"}";;'
                      ' *) echo "credentials not found in native keychain"; exit 1;; esac\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    home = tmp_path / "home"
    env = {"HOME": str(home)}

    write_config(home / ".docker/config.json", {"credHelpers": {"helped.example.com": "kftest"}})
    assert resolve_credentials("helped.example.com", kitops_home=None, env=env) == \
        RegistryCredentials("helper-user", "helper-secret")

    write_config(home / ".docker/config.json", {"credsStore": "kftest",
                                                "auths": {"plain.example.com": auth_entry("plain", "pw")}})
    assert resolve_credentials("helped.example.com", kitops_home=None, env=env).username == "helper-user"
    assert resolve_credentials("plain.example.com", kitops_home=None, env=env).username == "plain"
    assert resolve_credentials("unknown.example.com", kitops_home=None, env=env) is None  # helper exit 1

    write_config(home / ".docker/config.json", {"credsStore": "not-installed-kftest"})
    assert resolve_credentials("helped.example.com", kitops_home=None, env=env) is None


def test_unreadable_config_is_skipped(tmp_path: Path) -> None:
    kitops_home = tmp_path / "kitops"
    kitops_home.mkdir()
    (kitops_home / "credentials.json").write_text("{not json")
    write_config(tmp_path / "home/.docker/config.json", {"auths": {"h.example.com": auth_entry("u", "p")}})
    assert resolve_credentials("h.example.com", kitops_home=kitops_home,
                               env={"HOME": str(tmp_path / "home")}).username == "u"


# -- login / logout (real registries) -----------------------------------------------------------------------

def test_login_wrong_password_writes_nothing(auth_registry, kitops_home: Path) -> None:  # noqa: ANN001
    with pytest.raises(AuthenticationError) as err:
        login(auth_registry.host, auth_registry.username, "wrong-Pa55word", kitops_home=kitops_home, plain_http=True)
    assert "wrong-Pa55word" not in str(err.value)
    assert not (kitops_home / "credentials.json").exists()


def test_login_then_use_then_logout(auth_registry, kitops_home: Path) -> None:  # noqa: ANN001
    existing = {"auths": {"other.example.com": auth_entry("keep", "me")}, "credsStore": ""}
    write_config(kitops_home / "credentials.json", existing)
    path = login(auth_registry.host, auth_registry.username, auth_registry.password, kitops_home=kitops_home,
                 plain_http=True)
    assert path == kitops_home / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["auths"]["other.example.com"] == auth_entry("keep", "me")  # other entries kept
    assert doc["auths"][auth_registry.host] == auth_entry(auth_registry.username, auth_registry.password)

    creds = resolve_credentials(auth_registry.host, kitops_home=kitops_home)
    assert creds == RegistryCredentials(auth_registry.username, auth_registry.password)
    RegistryClient(auth_registry.host, credentials=creds, plain_http=True).ping()

    assert logout(auth_registry.host, kitops_home=kitops_home) is True
    assert resolve_credentials(auth_registry.host, kitops_home=kitops_home) is None
    assert json.loads(path.read_text())["auths"] == {"other.example.com": auth_entry("keep", "me")}
    assert logout(auth_registry.host, kitops_home=kitops_home) is False


def test_login_token_registry(token_registry, kitops_home: Path) -> None:  # noqa: ANN001, F811
    with pytest.raises(AuthenticationError):
        login(token_registry.host, token_registry.username, "nope", kitops_home=kitops_home, plain_http=True)
    assert not (kitops_home / "credentials.json").exists()
    login(token_registry.host, token_registry.username, token_registry.password, kitops_home=kitops_home,
          plain_http=True)
    assert resolve_credentials(token_registry.host, kitops_home=kitops_home).username == token_registry.username


def test_login_unreachable_registry_writes_nothing(kitops_home: Path) -> None:
    with pytest.raises(Exception, match="refused"):
        login("127.0.0.1:9", "u", "p", kitops_home=kitops_home, plain_http=True)
    assert not (kitops_home / "credentials.json").exists()


def test_secret_values_are_every_form_a_log_could_show() -> None:
    creds = RegistryCredentials("ciuser", "s3cr3t")
    token = base64.b64encode(b"ciuser:s3cr3t").decode()
    assert creds.secret_values() == ("s3cr3t", token)
    assert creds.basic_auth_value() == f"Basic {token}"
    assert RegistryCredentials("ciuser", "").secret_values() == ()
