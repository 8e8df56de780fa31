"""Argument parsing of the client commands and the endpoint, region and credential conventions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from lambdad.cli import _parser
from lambdad.client import deploy, invoke, session
from lambdad.client.errors import CliError


def parse(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(list(argv))


def test_deploy_arguments() -> None:
    args = parse(
        "deploy", "src", "--name", "f", "--runtime", "python3.11", "--handler", "app.h",
        "--memory", "256", "--env", "STAGE=dev", "--env", "URL=http://x/?a=b", "--timeout", "9",
    )  # fmt: skip
    assert args.run is deploy.run
    assert args.directory == Path("src")
    assert deploy.configuration(args) == {
        "Runtime": "python3.11",
        "Handler": "app.h",
        "MemorySize": 256,
        "Timeout": 9,
        "Environment": {"Variables": {"STAGE": "dev", "URL": "http://x/?a=b"}},
    }
    assert args.data_dir == Path(".lambdad")


def test_deploy_rejects_env_without_equals(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("deploy", "src", "--name", "f", "--env", "NOVALUE")
    assert caught.value.code == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err


def test_deploy_changes_only_what_differs() -> None:
    current = {"Runtime": "python3.11", "Handler": "app.h", "MemorySize": 128, "Timeout": 3}
    args = parse("deploy", "src", "--name", "f", "--runtime", "python3.11", "--memory", "512")
    assert deploy.changes(current, deploy.configuration(args)) == {"MemorySize": 512}
    same_env = dict(current, Environment={"Variables": {"A1": "x"}})
    args = parse("deploy", "src", "--name", "f", "--env", "A1=x")
    assert deploy.changes(same_env, deploy.configuration(args)) == {}


@pytest.mark.parametrize(
    "argv",
    [
        ["invoke", "fn", '{"a": 1}', "--async"],
        ["invoke", "fn", "--async", '{"a": 1}'],
        ["invoke", "--async", "fn", '{"a": 1}'],
    ],
)
def test_invoke_options_anywhere(argv: list[str]) -> None:
    args = parse(*argv)
    assert (args.name, args.payload, args.is_async) == ("fn", '{"a": 1}', True)


def test_invoke_payload_sources(tmp_path: Path) -> None:
    assert invoke.read_payload(None, None) == b"{}"
    event = tmp_path / "event.json"
    event.write_text('{"k": [1]}')
    assert invoke.read_payload(None, event) == b'{"k": [1]}'
    with pytest.raises(CliError, match="not both"):
        invoke.read_payload("{}", event)
    with pytest.raises(CliError, match="not valid JSON"):
        invoke.read_payload("{oops", None)
    with pytest.raises(CliError, match="cannot read"):
        invoke.read_payload(None, tmp_path / "missing.json")


def test_logs_and_usage_defaults() -> None:
    logs = parse("logs", "fn", "-f", "--filter", "ERROR")
    assert (logs.follow, logs.since, logs.filter) == (True, "10m", "ERROR")
    usage = parse("usage", "--data-dir", "/srv/lambdad")
    assert (usage.since, usage.data_dir) == ("24h", Path("/srv/lambdad"))


def test_endpoint_precedence() -> None:
    env = {"AWS_ENDPOINT_URL": "http://aws:1", "LAMBDAD_ENDPOINT": "http://lambdad:2/"}
    assert session.resolve_endpoint("http://flag:3", env) == "http://flag:3"
    assert session.resolve_endpoint(None, env) == "http://lambdad:2"
    assert session.resolve_endpoint(None, {"AWS_ENDPOINT_URL": "http://aws:1"}) == "http://aws:1"
    assert session.resolve_endpoint(None, {}) == "http://localhost:9000"
    with pytest.raises(CliError, match="must be a URL"):
        session.resolve_endpoint("localhost:9000", {})


def test_region_precedence() -> None:
    assert session.resolve_region("eu-west-1", {"AWS_DEFAULT_REGION": "us-west-2"}) == "eu-west-1"
    assert session.resolve_region(None, {"AWS_DEFAULT_REGION": "us-west-2"}) == "us-west-2"
    assert session.resolve_region(None, {}) == "us-east-1"


def test_local_keys_from_data_dir(tmp_path: Path) -> None:
    assert session.local_keys(tmp_path) is None
    (tmp_path / "credentials.json").write_text(json.dumps({"access_key_id": "LK", "secret_access_key": "S"}))
    keys = session.local_keys(tmp_path)
    assert keys is not None and (keys.access_key_id, keys.secret_access_key) == ("LK", "S")
    assert "S" not in repr(keys)
    (tmp_path / "credentials.json").write_text("{")
    with pytest.raises(CliError, match="cannot read lambdad's keys"):
        session.local_keys(tmp_path)


def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


def test_connect_prefers_the_aws_chain_then_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _isolated_env(monkeypatch, tmp_path)
    (tmp_path / "credentials.json").write_text(json.dumps({"access_key_id": "LK", "secret_access_key": "S"}))
    args = parse("functions", "--data-dir", str(tmp_path))
    assert session.connect(args, {}).keys.access_key_id == "LK"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    api = session.connect(args, {})
    assert (api.keys.access_key_id, api.keys.source, api.region) == ("AKIAENV", "env", "us-east-1")


def test_connect_without_any_credentials_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _isolated_env(monkeypatch, tmp_path)
    with pytest.raises(CliError, match="no credentials: set AWS_ACCESS_KEY_ID") as caught:
        session.connect(parse("functions", "--data-dir", str(tmp_path)), {})
    assert caught.value.status == 3
    with pytest.raises(CliError, match="nosuch"):
        session.connect(parse("functions", "--profile", "nosuch", "--data-dir", str(tmp_path)), {})


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    out = capsys.readouterr().out
    for command in ("serve", "deploy", "invoke", "logs", "functions", "usage"):
        assert f"    {command} " in out or f"    {command}\n" in out
