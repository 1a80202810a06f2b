"""Socket Mode against a local WebSocket stand-in."""

from __future__ import annotations

import httpx
import pytest

from bot.sandbox.harness import Harness
from bot.sandbox.slack import SlackStandIn
from tests.conftest import (
    BOT_TOKEN,
    CHANNEL,
    RESPONDER,
    SECRET_MARKER,
    SIGNING_SECRET,
    TEMPLATE,
    shown,
)

APP_TOKEN = f"xapp-{SECRET_MARKER}-app"


@pytest.fixture
def slack() -> SlackStandIn:
    return SlackStandIn(
        signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN, app_token=APP_TOKEN
    )


@pytest.fixture
def bot_env() -> dict[str, str]:
    return {"SLACK_APP_TOKEN": APP_TOKEN}


async def test_socket_mode_opens_connection(bot: Harness) -> None:
    [call] = bot.slack.calls_to("apps.connections.open")

    assert call.token == APP_TOKEN


async def test_socket_mode_acks_slash_command(bot: Harness) -> None:
    ack = await bot.slack.socket_command("help", user=RESPONDER, channel=CHANNEL)

    assert "envelope_id" in ack
    assert ack["envelope_id"] in {a["envelope_id"] for a in bot.slack.socket_acks}
    assert "/nf runs <templateId>" in shown(ack["payload"])


async def test_socket_mode_runs_slow_work_after_ack(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")

    ack = await bot.slack.socket_command(
        f"status {TEMPLATE} {run_id}", user=RESPONDER, channel=CHANNEL
    )
    await bot.settle()

    assert ack.get("payload") in (None, {}, "")
    [card] = [m for m in bot.slack.messages if m.user == RESPONDER]
    assert run_id in card.all_text()


async def test_socket_mode_still_serves_healthz(bot: Harness) -> None:
    async with httpx.AsyncClient() as client:
        health = await client.get(bot.url + "/healthz")
        events = await client.post(bot.url + "/slack/events", content=b"x")

    assert health.json()["mode"] == "socket"
    assert events.status_code == 404
