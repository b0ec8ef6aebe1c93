"""The `trustgate` command: its planes come from one table; a bare `trustgate` starts the
proxy; `trustgate run` hands each plane a settings object instead of editing the
environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from trustgate import run as run_module
from trustgate.cli import build_parser, main
from trustgate.planes import PLANES, Plane

SECRET = "cli-test-secret-key-0123456789abcdef-0123"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The planes `Plane.serve` was asked to start (nothing is started)."""
    names: list[str] = []
    monkeypatch.setattr(Plane, "serve", lambda self: names.append(self.name))
    return names


def test_a_bare_trustgate_starts_the_proxy(served: list[str]) -> None:
    assert main([]) == 0
    assert served == ["proxy"]


@pytest.mark.parametrize("name", ["proxy", "telemetry"])
def test_each_plane_has_a_subcommand_that_starts_it(served: list[str], name: str) -> None:
    assert main([name]) == 0
    assert served == [name]


def test_the_subcommands_are_the_planes_then_run_receipts_and_asyncapi() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    names = [*(p.name for p in PLANES), "run", "receipts", "asyncapi"]
    assert list(commands.choices or ()) == names
    assert "port 8081" in parser.format_help()


def test_a_plane_whose_package_is_missing_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], served: list[str]
) -> None:
    monkeypatch.setattr(Plane, "installed", lambda self: False)
    assert main(["telemetry"]) == 2
    assert served == []
    err = capsys.readouterr().err
    assert "the telemetry package (trustgate-telemetry) is not installed" in err


def test_run_gives_each_plane_its_settings_and_leaves_the_environment_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("SERVER_SECRET_KEY", "TELEMETRY_SINK_FILE", "KAFKA_BROKERS", "DB_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:1/given")
    monkeypatch.setenv("SERVER_PROXY_PORT", "18081")
    before = dict(os.environ)
    started: dict[str, BaseSettings] = {}

    async def serve(planes: list[tuple[Plane, BaseSettings]]) -> int:
        started.update({plane.name: settings for plane, settings in planes})
        return 0

    monkeypatch.setattr(run_module, "serve", serve)
    assert run_module.run(str(tmp_path / "data")) == 0

    assert dict(os.environ) == before
    assert list(started) == [p.name for p in PLANES]
    key = (tmp_path / "data" / "secret_key").read_text(encoding="utf-8").strip()
    events = str(tmp_path / "data" / "telemetry" / "events.jsonl")
    admin: Any = started["admin"]
    proxy: Any = started["proxy"]
    telemetry: Any = started["telemetry"]
    for settings in (admin, proxy, telemetry):
        assert settings.server_secret_key == key
        assert settings.nats_url == "nats://127.0.0.1:1"
    assert admin.database_url == "postgresql://u:p@127.0.0.1:1/given"
    assert telemetry.sink_file == events
    assert proxy.port == 18081
    banner = capsys.readouterr().err
    assert "proxy      http://127.0.0.1:18081" in banner
    assert f"events to {events}" in banner


def test_run_keeps_a_given_secret_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SERVER_SECRET_KEY", SECRET)
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:1/given")
    monkeypatch.setenv("KAFKA_BROKERS", "kafka:9092")
    started: dict[str, Any] = {}

    async def serve(planes: list[tuple[Plane, BaseSettings]]) -> int:
        started.update({plane.name: settings for plane, settings in planes})
        return 0

    monkeypatch.setattr(run_module, "serve", serve)
    assert run_module.run(str(tmp_path / "data")) == 0
    assert not (tmp_path / "data" / "secret_key").exists()
    assert started["admin"].server_secret_key == SECRET
    assert started["telemetry"].sink_file is None
    assert started["telemetry"].kafka_brokers == "kafka:9092"


@pytest.mark.parametrize("name", ["admin", "proxy", "mcp", "telemetry", "policy-cache"])
def test_a_bad_setting_ends_the_plane_with_what_is_wrong_and_never_its_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A secret key too short is refused by name, exit 2, no traceback, and the value
    (a secret, even when wrong) appears nowhere in what the command prints."""
    wrong = "too-short-secret-0123"
    monkeypatch.setenv("SERVER_SECRET_KEY", wrong)
    monkeypatch.delenv("TRUSTGATE_SECRETS_KEY", raising=False)
    assert main([name]) == 2
    err = capsys.readouterr().err
    assert "trustgate: invalid settings: SERVER_SECRET_KEY" in err
    assert wrong not in err and "Traceback" not in err


def test_every_settings_class_hides_the_values_it_refuses() -> None:
    """pydantic puts a refused value in its error text unless told not to: every settings
    class a plane reads (its own, Redis's, the database's, the MCP OAuth server's) says so."""
    from trustgate_core.counters.settings import RedisSettings
    from trustgate_core.settings import CoreSettings, DatabaseSettings
    from trustgate_mcp.oauth.settings import OAuthSettings

    classes: list[type[BaseSettings]] = [
        CoreSettings,
        DatabaseSettings,
        RedisSettings,
        OAuthSettings,
        *(plane.settings_class() for plane in PLANES if plane.installed()),
    ]
    for settings in classes:
        assert settings.model_config.get("hide_input_in_errors") is True, settings.__name__
