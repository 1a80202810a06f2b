from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bot.sandbox.harness import Harness, start_harness
from bot.sandbox.northflank import NorthflankSandbox
from bot.sandbox.slack import SlackMessage, SlackStandIn
from tests.redis_process import RedisProcess

# Every token in the suite contains this marker, so a leak into a log line or
# a message body is caught wherever it happens.
SECRET_MARKER = "SECRETMARKER9f2c"
SIGNING_SECRET = f"signing-{SECRET_MARKER}"
BOT_TOKEN = f"xoxb-{SECRET_MARKER}-bot"
NORTHFLANK_TOKEN = f"nf-{SECRET_MARKER}-api"

CHANNEL = "C0INCIDENT"
OTHER_CHANNEL = "C0ELSEWHERE"
RESPONDER = "U01RESPOND"
VIEWER = "U02VIEWER"
ONCALL = "U03ONCALL"
STRANGER = "U09NOBODY"
SCOPED = "U04SCOPED"
ONCALL_GROUP = "S01ONCALL"
TEMPLATE = "nightly-backup"

PERMISSIONS: dict[str, Any] = {
    "roles": {
        "responder": {
            "grants": [
                "Account > Templates > Runs > Abort",
                "Account > Templates > General > Read",
            ],
        },
        "viewer": {"grants": ["Account > Templates > General > Read"]},
        "scoped": {
            "grants": [
                "Account > Templates > Runs > Abort",
                "Account > Templates > General > Read",
            ],
            "templates": ["nightly-*"],
            "channels": [CHANNEL],
        },
    },
    "users": {RESPONDER: ["responder"], VIEWER: ["viewer"], SCOPED: ["scoped"]},
    "usergroups": {ONCALL_GROUP: ["responder"]},
}


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server: REDIS_URL when set, else one started for the session."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def northflank() -> NorthflankSandbox:
    sandbox = NorthflankSandbox(token=NORTHFLANK_TOKEN)
    sandbox.add_template(TEMPLATE, "Nightly Backup", "Backs up the databases")
    sandbox.add_template("db-migration", "DB Migration", "Runs schema migrations")
    return sandbox


@pytest.fixture
def slack() -> SlackStandIn:
    stand_in = SlackStandIn(signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN)
    stand_in.usergroups[ONCALL_GROUP] = [ONCALL]
    return stand_in


@pytest.fixture
def bot_env() -> dict[str, str]:
    """Extra settings for the `bot` fixture; tests override it to change one."""
    return {}


@pytest.fixture
async def bot(
    redis_url: str,
    northflank: NorthflankSandbox,
    slack: SlackStandIn,
    bot_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[Harness]:
    caplog.set_level(logging.DEBUG)
    harness = await start_harness(
        permissions=PERMISSIONS,
        redis_url=redis_url,
        northflank=northflank,
        slack=slack,
        env=bot_env,
    )
    try:
        yield harness
    finally:
        await harness.stop()
    assert_no_secret_leaked(slack, caplog.text)


def assert_no_secret_leaked(slack: SlackStandIn, log_text: str) -> None:
    assert SECRET_MARKER not in log_text, "a token reached the log"
    for call in slack.calls:
        assert SECRET_MARKER not in repr(call.args), f"a token reached {call.method}"
    for body in slack.response_posts:
        assert SECRET_MARKER not in repr(body), "a token reached a response_url body"


def last_visible(
    slack: SlackStandIn, user: str, channel: str = CHANNEL
) -> SlackMessage:
    messages = slack.visible_to(user, channel)
    assert messages, f"no message visible to {user}"
    return messages[-1]


def ephemeral_for(slack: SlackStandIn, user: str) -> list[SlackMessage]:
    return [m for m in slack.messages if m.ephemeral and m.user == user]


def channel_posts(slack: SlackStandIn, channel: str = CHANNEL) -> list[SlackMessage]:
    return [m for m in slack.messages if not m.ephemeral and m.channel == channel]


def summaries(slack: SlackStandIn) -> list[SlackMessage]:
    return [m for m in slack.messages if m.source == "chat.postMessage"]


def shown(value: Any) -> str:
    """Return a JSON payload as a reader sees its text, with mrkdwn escapes decoded."""
    raw = json.dumps(value, ensure_ascii=False)
    return raw.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


async def post_run_list(bot: Harness, user: str = RESPONDER) -> SlackMessage:
    """Post the run list of TEMPLATE in CHANNEL and return it."""
    await bot.slack.command(f"runs {TEMPLATE}", user=user, channel=CHANNEL)
    await bot.settle()
    return channel_posts(bot.slack)[-1]
