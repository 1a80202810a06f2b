"""Settings from the environment: names, defaults, one line per problem."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.settings import SettingsError, load_settings

BASE = {
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_SIGNING_SECRET": "s",
    "NORTHFLANK_API_TOKEN": "n",
}


def test_defaults() -> None:
    settings = load_settings("http", environ=dict(BASE))

    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.northflank_api_base_url == "https://api.northflank.com"
    assert settings.command == "/nf"
    assert settings.watch_interval == 5
    assert settings.port == 3000
    assert settings.host == "0.0.0.0"
    assert settings.redis_url is None
    assert str(settings.data_dir) == ".bot-data"
    assert str(settings.permissions_file) == "permissions.yaml"
    assert settings.run_url_template is None
    assert not settings.socket_mode


def test_missing_tokens_each_named() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings("http", environ={})

    problems = caught.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("SLACK_BOT_TOKEN: missing")
    assert problems[1].startswith("NORTHFLANK_API_TOKEN: missing")
    assert problems[2].startswith("SLACK_SIGNING_SECRET: missing")


def test_socket_mode_needs_no_signing_secret() -> None:
    environ = {**BASE, "SLACK_APP_TOKEN": "xapp-1"}
    del environ["SLACK_SIGNING_SECRET"]

    settings = load_settings("http", environ=environ)

    assert settings.socket_mode


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "http", "PORT"),
        ("PORT", "70000", "PORT"),
        ("BOT_WATCH_INTERVAL", "0", "BOT_WATCH_INTERVAL"),
        ("BOT_COMMAND", "nf", "must be a slash command"),
        ("SLACK_API_URL", "slack.com", "must be an http(s) URL"),
        ("NORTHFLANK_TEAM_ID", "My Team", "must be a Northflank team id"),
        ("BOT_RUN_URL_TEMPLATE", "https://x/{project}", "{project}"),
    ],
)
def test_invalid_value_named(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings("http", environ={**BASE, name: value})

    [problem] = caught.value.problems
    assert problem.startswith(name + ":")
    assert message in problem


def test_serve_exits_with_one_line_per_problem(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        env={"PATH": "/usr/bin:/bin", "PORT": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [line for line in lines if line.startswith("error: ")]
    assert any(line.startswith("error: PORT:") for line in lines)
    assert any(line.startswith("error: SLACK_BOT_TOKEN: missing") for line in lines)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SLACK_BOT_TOKEN", "xoxp-user-token-SECRET", "must be a bot token"),
        (
            "SLACK_APP_TOKEN",
            "xoxb-not-an-app-token-SECRET",
            "must be an app-level token",
        ),
    ],
)
def test_wrong_token_kind_is_named_not_shown(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings("http", environ={**BASE, name: value})

    [problem] = caught.value.problems
    assert problem.startswith(name + ":")
    assert message in problem
    assert "SECRET" not in problem
