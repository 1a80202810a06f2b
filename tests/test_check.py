"""`python -m bot check` against real Redis and the local Slack and Northflank
stand-ins on 127.0.0.1, one test per failing check."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from bot.check import run_check
from bot.sandbox.northflank import NorthflankSandbox
from bot.sandbox.slack import SlackStandIn
from bot.settings import Settings
from tests.conftest import (
    BOT_TOKEN,
    NORTHFLANK_TOKEN,
    PERMISSIONS,
    SECRET_MARKER,
    SIGNING_SECRET,
)
from tests.redis_process import free_port

REPOSITORY = Path(__file__).resolve().parent.parent

# The check timeout of most tests, generous for a loaded machine. The timeout
# tests pass shorter ones.
TIMEOUT_SECONDS = 3.0


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every bot variable, because the settings also read os.environ."""
    for name, field in Settings.model_fields.items():
        monkeypatch.delenv(field.alias or name, raising=False)
    for name in ("LOG_LEVEL", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def stand_ins(
    slack: SlackStandIn, northflank: NorthflankSandbox
) -> AsyncIterator[tuple[SlackStandIn, NorthflankSandbox]]:
    await slack.start()
    await northflank.start()
    try:
        yield slack, northflank
    finally:
        await slack.stop()
        await northflank.stop()


@pytest.fixture
def permission_text() -> str:
    """The permission file's content, which tests override with parametrize."""
    return yaml.safe_dump(PERMISSIONS)


@pytest.fixture
def permission_file(tmp_path: Path, permission_text: str) -> Path:
    path = tmp_path / "permissions.yaml"
    path.write_text(permission_text, encoding="utf-8")
    return path


@pytest.fixture
def environ(
    stand_ins: tuple[SlackStandIn, NorthflankSandbox],
    redis_url: str,
    permission_file: Path,
    tmp_path: Path,
) -> dict[str, str]:
    """A valid environment, with which every check passes."""
    slack, northflank = stand_ins
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "NORTHFLANK_API_TOKEN": NORTHFLANK_TOKEN,
        "NORTHFLANK_API_BASE_URL": northflank.url,
        "REDIS_URL": redis_url,
        "BOT_PERMISSIONS_FILE": str(permission_file),
        "BOT_DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A 127.0.0.1 URL whose server accepts connections and never responds."""
    connections: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in connections:
            writer.close()


async def check(
    environ: dict[str, str], *, timeout_seconds: float = TIMEOUT_SECONDS
) -> tuple[int, dict[str, list[str]]]:
    """Run the check in-process and return the exit code and lines by check."""
    out = io.StringIO()
    code = await run_check(environ, out, timeout_seconds=timeout_seconds)
    text = out.getvalue()
    assert SECRET_MARKER not in text, "a token reached the checklist"
    assert "Traceback" not in text

    by_name: dict[str, list[str]] = {}
    lines = text.splitlines()
    for line in lines[:-1]:
        name = line[5:].split(":", 1)[0]
        by_name.setdefault(name, []).append(line)
    by_name["summary"] = lines[-1:]
    return code, by_name


# -- all ok -------------------------------------------------------------------


async def test_all_checks_pass(
    environ: dict[str, str],
    stand_ins: tuple[SlackStandIn, NorthflankSandbox],
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack, northflank = stand_ins

    code, lines = await check(environ)

    assert code == 0
    assert lines["Settings"] == [
        "ok   Settings: environment is valid (HTTP mode, slash command /nf)"
    ]
    assert lines["Permission file"] == [
        f"ok   Permission file: {environ['BOT_PERMISSIONS_FILE']} maps 3 users and "
        "1 user group to 3 roles"
    ]
    assert lines["Redis"] == [f"ok   Redis: {redis_url} replied to PING"]
    assert lines["Slack token"] == [
        "ok   Slack token: auth.test accepted (team Sandbox, bot user U0BOTUSER)"
    ]
    assert lines["Northflank token"] == [
        f"ok   Northflank token: listed templates at {northflank.url}"
    ]
    assert lines["summary"] == ["all checks passed"]
    assert [call.method for call in slack.calls] == ["auth.test"]
    assert [(r.method, r.path, r.query) for r in northflank.requests] == [
        ("GET", "/v1/templates", {"per_page": "1"})
    ]
    assert SECRET_MARKER not in caplog.text


async def test_embedded_redis_when_url_unset(
    environ: dict[str, str], tmp_path: Path
) -> None:
    del environ["REDIS_URL"]

    code, lines = await check(environ)

    assert code == 0
    assert lines["Redis"] == [
        f"ok   Redis: the embedded server in {tmp_path / 'data'} replied to PING"
    ]


# -- settings -----------------------------------------------------------------


async def test_missing_secrets_fail_and_skip(environ: dict[str, str]) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "NORTHFLANK_API_TOKEN"):
        del environ[name]

    code, lines = await check(environ)

    assert code == 1
    assert lines["Settings"] == [
        "FAIL Settings: SLACK_BOT_TOKEN: missing; set it to the bot token (xoxb-...)",
        "FAIL Settings: NORTHFLANK_API_TOKEN: missing; set it to a Northflank API "
        "token",
        "FAIL Settings: SLACK_SIGNING_SECRET: missing; set it to the app's signing "
        "secret, or set SLACK_APP_TOKEN to use Socket Mode",
    ]
    assert lines["Slack token"] == [
        "skip Slack token: not checked because SLACK_BOT_TOKEN is missing"
    ]
    assert lines["Northflank token"] == [
        "skip Northflank token: not checked because NORTHFLANK_API_TOKEN is missing"
    ]


async def test_missing_token_still_checks_the_rest(
    environ: dict[str, str], stand_ins: tuple[SlackStandIn, NorthflankSandbox]
) -> None:
    slack, _ = stand_ins
    del environ["SLACK_BOT_TOKEN"]

    code, lines = await check(environ)

    assert code == 1
    assert lines["Settings"] == [
        "FAIL Settings: SLACK_BOT_TOKEN: missing; set it to the bot token (xoxb-...)"
    ]
    assert lines["Permission file"][0].startswith("ok   ")
    assert lines["Redis"][0].startswith("ok   ")
    assert lines["Northflank token"][0].startswith("ok   ")
    assert lines["Slack token"] == [
        "skip Slack token: not checked because SLACK_BOT_TOKEN is missing"
    ]
    assert slack.calls == []


async def test_invalid_setting_skips_every_check(
    environ: dict[str, str], stand_ins: tuple[SlackStandIn, NorthflankSandbox]
) -> None:
    slack, northflank = stand_ins
    environ["SLACK_API_URL"] = "slack.example"

    code, lines = await check(environ)

    assert code == 1
    [problem] = lines["Settings"]
    assert problem.startswith("FAIL Settings: SLACK_API_URL: must be an http(s) URL")
    for name in ("Permission file", "Redis", "Slack token", "Northflank token"):
        assert lines[name] == [
            f"skip {name}: not checked because the settings are invalid"
        ]
    assert lines["summary"][0].startswith("1 check failed, 4 skipped; fix the FAIL")
    assert slack.calls == []
    assert northflank.requests == []


# -- permission file ------------------------------------------------------------


async def test_missing_permission_file(environ: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    environ["BOT_PERMISSIONS_FILE"] = str(missing)

    code, lines = await check(environ)

    assert code == 1
    assert lines["Permission file"] == [
        f"FAIL Permission file: BOT_PERMISSIONS_FILE: {missing} not found; create it "
        "(see README) or point BOT_PERMISSIONS_FILE at it"
    ]


@pytest.mark.parametrize(
    ("permission_text", "expected"),
    [
        ("roles: [responder\n", "invalid YAML at line 2"),
        (
            "roles:\n  responder:\n    grants: [Delete everything]\n",
            "roles.responder.grants: unknown grant 'Delete everything'",
        ),
        ("users:\n  not-a-user: [responder]\n", "'not-a-user' is not a Slack user id"),
    ],
)
async def test_invalid_permission_file(
    environ: dict[str, str], permission_file: Path, expected: str
) -> None:
    code, lines = await check(environ)

    assert code == 1
    [line] = lines["Permission file"]
    assert line.startswith(f"FAIL Permission file: {permission_file}")
    assert expected in line
    assert line.endswith("; fix the file and run the check again")


@pytest.mark.parametrize("permission_text", ["roles: {}\n"])
async def test_empty_permission_file_warns(
    environ: dict[str, str], permission_file: Path
) -> None:
    code, lines = await check(environ)

    assert code == 0
    [line] = lines["Permission file"]
    assert line.startswith(f"warn Permission file: {permission_file} maps no users")
    assert lines["summary"] == ["all checks passed, with 1 warning"]


# -- Redis ----------------------------------------------------------------------


async def test_redis_unreachable(environ: dict[str, str]) -> None:
    port = free_port()
    environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"

    started = time.monotonic()
    code, lines = await check(environ)

    assert code == 1
    assert lines["Redis"] == [
        f"FAIL Redis: PING to redis://127.0.0.1:{port}/0 failed; start Redis there, "
        "or fix the host, port and password in REDIS_URL (unset it to use the "
        "embedded server)"
    ]
    assert time.monotonic() - started < TIMEOUT_SECONDS


async def test_redis_password_not_printed(environ: dict[str, str]) -> None:
    port = free_port()
    environ["REDIS_URL"] = f"redis://:pw-{SECRET_MARKER}@127.0.0.1:{port}/0"

    code, lines = await check(environ)

    assert code == 1
    [line] = lines["Redis"]
    assert f"PING to redis://127.0.0.1:{port}/0 failed" in line


async def test_redis_url_with_unknown_scheme(environ: dict[str, str]) -> None:
    environ["REDIS_URL"] = "memcached://127.0.0.1:11211"

    code, lines = await check(environ)

    assert code == 1
    [line] = lines["Redis"]
    assert line.startswith("FAIL Redis: REDIS_URL is not a Redis URL; use redis://")


# -- Slack ------------------------------------------------------------------------


async def test_bad_slack_token(
    environ: dict[str, str], stand_ins: tuple[SlackStandIn, NorthflankSandbox]
) -> None:
    slack, _ = stand_ins
    environ["SLACK_BOT_TOKEN"] = f"xoxb-{SECRET_MARKER}-revoked"

    code, lines = await check(environ)

    assert code == 1
    assert lines["Slack token"] == [
        "FAIL Slack token: Slack rejected SLACK_BOT_TOKEN (invalid_auth); set it to "
        "the Bot User OAuth Token (xoxb-...) from the app's OAuth & Permissions page"
    ]
    assert [call.method for call in slack.calls] == ["auth.test"]
    assert lines["Northflank token"][0].startswith("ok   ")


async def test_slack_error_code_named(
    environ: dict[str, str], stand_ins: tuple[SlackStandIn, NorthflankSandbox]
) -> None:
    slack, _ = stand_ins
    slack.fail("auth.test", "ekm_access_denied")

    code, lines = await check(environ)

    assert code == 1
    [line] = lines["Slack token"]
    assert line.startswith("FAIL Slack token: auth.test failed with ekm_access_denied")


async def test_slack_unreachable(environ: dict[str, str]) -> None:
    port = free_port()
    environ["SLACK_API_URL"] = f"http://127.0.0.1:{port}/api/"

    code, lines = await check(environ)

    assert code == 1
    assert lines["Slack token"] == [
        f"FAIL Slack token: could not reach Slack at http://127.0.0.1:{port}/api/ "
        "(ClientConnectorError); check SLACK_API_URL and the network"
    ]


async def test_slack_timeout(environ: dict[str, str], silent_server: str) -> None:
    environ["SLACK_API_URL"] = silent_server + "/api/"

    started = time.monotonic()
    code, lines = await check(environ, timeout_seconds=0.3)

    assert code == 1
    assert lines["Slack token"] == [
        f"FAIL Slack token: auth.test got no response from {silent_server}/api/ within "
        "0.3 s; check SLACK_API_URL and the network"
    ]
    assert time.monotonic() - started < 1.5


# -- Northflank -------------------------------------------------------------------


async def test_bad_northflank_token(environ: dict[str, str]) -> None:
    environ["NORTHFLANK_API_TOKEN"] = f"nf-{SECRET_MARKER}-expired"

    code, lines = await check(environ)

    assert code == 1
    assert lines["Northflank token"] == [
        "FAIL Northflank token: Northflank rejected the bot's API token; an admin "
        "must renew NORTHFLANK_API_TOKEN. Northflank said: Unauthorized: invalid or "
        "missing API token"
    ]
    assert lines["Slack token"][0].startswith("ok   ")


async def test_northflank_unreachable(environ: dict[str, str]) -> None:
    port = free_port()
    environ["NORTHFLANK_API_BASE_URL"] = f"http://127.0.0.1:{port}"

    started = time.monotonic()
    code, lines = await check(environ)

    assert code == 1
    assert lines["Northflank token"] == [
        f"FAIL Northflank token: could not reach Northflank at http://127.0.0.1:{port} "
        "(ConnectError); check NORTHFLANK_API_BASE_URL and the network"
    ]
    assert time.monotonic() - started < TIMEOUT_SECONDS


async def test_northflank_timeout(
    environ: dict[str, str], stand_ins: tuple[SlackStandIn, NorthflankSandbox]
) -> None:
    _, northflank = stand_ins
    northflank.inject("GET", r"/templates$", status=200, delay=0.8)

    started = time.monotonic()
    code, lines = await check(environ, timeout_seconds=0.2)

    assert code == 1
    assert lines["Northflank token"] == [
        f"FAIL Northflank token: listing templates at {northflank.url} timed out "
        "after 0.2 s; check NORTHFLANK_API_BASE_URL and the network"
    ]
    assert time.monotonic() - started < 0.7


async def test_northflank_unknown_team(
    environ: dict[str, str], stand_ins: tuple[SlackStandIn, NorthflankSandbox]
) -> None:
    environ["NORTHFLANK_TEAM_ID"] = "other-team"

    code, lines = await check(environ)

    assert code == 1
    assert lines["Northflank token"] == [
        "FAIL Northflank token: Northflank returned 404 for listing templates; check "
        "NORTHFLANK_TEAM_ID and NORTHFLANK_API_BASE_URL"
    ]


async def test_northflank_forbidden(
    environ: dict[str, str], stand_ins: tuple[SlackStandIn, NorthflankSandbox]
) -> None:
    _, northflank = stand_ins
    northflank.inject("GET", r"/templates$", status=403)

    code, lines = await check(environ)

    assert code == 1
    assert lines["Northflank token"] == [
        "FAIL Northflank token: Northflank returned 403 for listing templates; grant "
        "'Account > Templates > General > Read' to the API role of "
        "NORTHFLANK_API_TOKEN"
    ]


# -- command line -------------------------------------------------------------------


async def test_command_exits_non_zero_on_failure(
    environ: dict[str, str], tmp_path: Path
) -> None:
    environ["NORTHFLANK_API_TOKEN"] = f"nf-{SECRET_MARKER}-expired"
    process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environ}

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check",
        env=process_env,
        cwd=REPOSITORY,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    output = stdout.decode()

    assert process.returncode == 1, stderr.decode()
    assert "FAIL Northflank token: Northflank rejected the bot's API token" in output
    assert "ok   Slack token: auth.test accepted" in output
    assert SECRET_MARKER not in output
    assert SECRET_MARKER not in stderr.decode()
    assert "Traceback" not in stderr.decode()
