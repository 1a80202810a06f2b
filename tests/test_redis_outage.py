"""Redis outages: every command keeps working, and Redis is used again after."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bot.sandbox.harness import Harness, start_harness
from bot.sandbox.northflank import NorthflankSandbox
from bot.sandbox.slack import SlackStandIn, event_body
from tests.conftest import (
    CHANNEL,
    ONCALL,
    PERMISSIONS,
    RESPONDER,
    TEMPLATE,
    VIEWER,
    assert_no_secret_leaked,
    channel_posts,
    ephemeral_for,
    summaries,
)
from tests.redis_process import RedisProcess


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def bot_on_own_redis(
    own_redis: RedisProcess,
    northflank: NorthflankSandbox,
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[Harness]:
    caplog.set_level(logging.INFO)
    harness = await start_harness(
        permissions=PERMISSIONS,
        redis_url=own_redis.url,
        northflank=northflank,
        slack=slack,
    )
    try:
        yield harness
    finally:
        await harness.stop()
    assert_no_secret_leaked(slack, caplog.text)


async def health(bot: Harness) -> dict[str, object]:
    async with httpx.AsyncClient() as client:
        response = await client.get(bot.url + "/healthz")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


async def test_commands_work_while_redis_down(
    bot_on_own_redis: Harness, own_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    bot = bot_on_own_redis
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    own_redis.stop()

    assert (await health(bot))["redis"] == "down"
    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()
    await bot.slack.command(f"runs {TEMPLATE}", user=ONCALL, channel=CHANNEL)
    await bot.settle()

    [card] = ephemeral_for(bot.slack, VIEWER)
    assert run_id in card.all_text()
    [listing] = channel_posts(bot.slack)
    assert listing.buttons()


async def test_lock_falls_back_in_process(
    bot_on_own_redis: Harness, own_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    bot = bot_on_own_redis
    bot.northflank.add_run(TEMPLATE, status="running")
    await bot.slack.command(f"runs {TEMPLATE}", user=RESPONDER, channel=CHANNEL)
    await bot.settle()
    [listing] = channel_posts(bot.slack)
    own_redis.stop()

    await asyncio.gather(
        *(
            bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
            for _ in range(5)
        )
    )
    await bot.settle()

    assert bot.northflank.aborts() == 1
    assert len(summaries(bot.slack)) == 1
    assert caplog.text.count("abort_lock.local_fallback") == 1
    assert "duplicate aborts" in caplog.text


async def test_redis_used_again_after_restart(
    bot_on_own_redis: Harness, own_redis: RedisProcess
) -> None:
    bot = bot_on_own_redis
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    own_redis.stop()
    assert (await health(bot))["redis"] == "down"

    own_redis.start()
    assert (await health(bot))["redis"] == "up"
    for _ in range(2):
        await bot.slack.command(
            f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL
        )
        await bot.settle()

    assert bot.northflank.count("GET", f"/runs/{run_id}") == 1
    cached = await bot.services.store.get_run(TEMPLATE, run_id)
    assert cached is not None


async def test_events_deduplicated_while_redis_down(
    bot_on_own_redis: Harness, own_redis: RedisProcess
) -> None:
    bot = bot_on_own_redis
    own_redis.stop()
    body = event_body(
        {
            "type": "app_mention",
            "user": RESPONDER,
            "text": "hi",
            "ts": "1.1",
            "channel": CHANNEL,
        },
        event_id="EvDown1",
    )

    for retry in ("0", "1"):
        await bot.slack.send(
            body,
            headers={"Content-Type": "application/json", "X-Slack-Retry-Num": retry},
        )
        await bot.settle()

    assert len(bot.slack.calls_to("chat.postMessage")) == 1
