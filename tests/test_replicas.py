"""Two `python -m bot serve` processes that share one Redis."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox.northflank import NorthflankSandbox
from bot.sandbox.slack import SlackStandIn, event_body
from tests.bot_process import BotSubprocess
from tests.conftest import (
    BOT_TOKEN,
    CHANNEL,
    NORTHFLANK_TOKEN,
    ONCALL,
    PERMISSIONS,
    RESPONDER,
    SECRET_MARKER,
    SIGNING_SECRET,
    TEMPLATE,
)


@pytest.fixture
async def stand_ins(
    northflank: NorthflankSandbox, slack: SlackStandIn
) -> AsyncIterator[tuple[NorthflankSandbox, SlackStandIn]]:
    await northflank.start()
    await slack.start()
    try:
        yield northflank, slack
    finally:
        await slack.stop()
        await northflank.stop()


@pytest.fixture
async def replicas(
    stand_ins: tuple[NorthflankSandbox, SlackStandIn], redis_url: str, tmp_path: Path
) -> AsyncIterator[list[BotSubprocess]]:
    northflank, slack = stand_ins
    permissions = tmp_path / "permissions.yaml"
    permissions.write_text(json.dumps(PERMISSIONS), encoding="utf-8")
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "NORTHFLANK_API_TOKEN": NORTHFLANK_TOKEN,
        "NORTHFLANK_API_BASE_URL": northflank.url,
        "REDIS_URL": redis_url,
        "BOT_REDIS_PREFIX": f"nfbot-replicas-{secrets.token_hex(4)}:",
        "BOT_PERMISSIONS_FILE": str(permissions),
        "BOT_WATCH_INTERVAL": "0.3",
        "BOT_NORTHFLANK_DEADLINE": "1",
        "BOT_SHUTDOWN_GRACE": "3",
    }
    processes = [BotSubprocess(env, tmp_path / f"replica-{i}.log") for i in range(2)]
    try:
        await asyncio.gather(*(p.start() for p in processes))
        yield processes
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            assert SECRET_MARKER not in process.log(), "a token reached a replica's log"


async def wait_until(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.1)


async def test_twenty_clicks_across_replicas_one_post(
    replicas: list[BotSubprocess], stand_ins: tuple[NorthflankSandbox, SlackStandIn]
) -> None:
    northflank, slack = stand_ins
    northflank.add_run(TEMPLATE, status="running")
    slack.bot_url = replicas[0].events_url
    await slack.command(f"runs {TEMPLATE}", user=RESPONDER, channel=CHANNEL)
    listing = await slack.wait_for(lambda m: bool(m.buttons()) and not m.ephemeral)

    clicks = [
        slack.click(
            listing,
            user=(RESPONDER, ONCALL)[i % 2],
            action_id="abort_run",
            url=replicas[i % 2].events_url,
        )
        for i in range(20)
    ]
    replies = await asyncio.gather(*clicks)
    await slack.wait_for(lambda m: m.source == "chat.postMessage")

    async def all_answered() -> bool:
        duplicates = [m for m in slack.messages if "already aborting" in m.all_text()]
        return len(duplicates) == 19

    await wait_until(all_answered)
    assert all(r.status == 200 for r in replies)
    assert northflank.aborts() == 1
    assert len([m for m in slack.messages if m.source == "chat.postMessage"]) == 1


async def test_follow_lease_taken_over(
    replicas: list[BotSubprocess], stand_ins: tuple[NorthflankSandbox, SlackStandIn]
) -> None:
    northflank, slack = stand_ins
    northflank.polls_until_aborted = 10_000
    run_id = northflank.add_run(TEMPLATE, status="running")
    slack.bot_url = replicas[0].events_url
    await slack.command(f"runs {TEMPLATE}", user=RESPONDER, channel=CHANNEL)
    listing = await slack.wait_for(lambda m: bool(m.buttons()) and not m.ephemeral)
    await slack.click(listing, user=RESPONDER, action_id="abort_run")
    summary = await slack.wait_for(lambda m: m.source == "chat.postMessage")

    async def one_follower() -> bool:
        counts = [(await r.health())["following"] for r in replicas]
        return sorted(counts) == [0, 1]

    await wait_until(one_follower)
    for _ in range(5):
        await asyncio.sleep(0.3)
        assert await one_follower()
    counts = [(await r.health())["following"] for r in replicas]
    holder = replicas[counts.index(1)]
    survivor = replicas[counts.index(0)]

    holder.kill()

    async def survivor_follows() -> bool:
        return (await survivor.health())["following"] == 1

    await wait_until(survivor_follows)
    northflank.set_status(TEMPLATE, run_id, "aborted")

    async def summary_final() -> bool:
        return ":no_entry_sign: aborted" in summary.all_text()

    await wait_until(summary_final)
    assert "taken_over" in survivor.log()
    assert northflank.aborts() == 1


async def test_retried_event_processed_once_across_replicas(
    replicas: list[BotSubprocess], stand_ins: tuple[NorthflankSandbox, SlackStandIn]
) -> None:
    _, slack = stand_ins
    body = event_body(
        {
            "type": "app_mention",
            "user": RESPONDER,
            "text": "hi",
            "ts": "5.5",
            "channel": CHANNEL,
        },
        event_id="EvReplica1",
    )
    headers = {"Content-Type": "application/json"}

    first = await slack.send(body, headers=headers, url=replicas[0].events_url)
    retry = await slack.send(
        body, headers={**headers, "X-Slack-Retry-Num": "1"}, url=replicas[1].events_url
    )
    await slack.wait_for(lambda m: m.source == "chat.postMessage")
    await asyncio.sleep(0.5)

    assert first.status == 200
    assert retry.status == 200
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_sigterm_during_abort_finishes_and_exits_zero(
    replicas: list[BotSubprocess], stand_ins: tuple[NorthflankSandbox, SlackStandIn]
) -> None:
    northflank, slack = stand_ins
    northflank.polls_until_aborted = 10_000
    northflank.add_run(TEMPLATE, status="running")
    replica = replicas[0]
    slack.bot_url = replica.events_url
    await slack.command(f"runs {TEMPLATE}", user=RESPONDER, channel=CHANNEL)
    listing = await slack.wait_for(lambda m: bool(m.buttons()) and not m.ephemeral)
    northflank.inject("POST", "/abort$", status=200, delay=0.8)

    await slack.click(listing, user=RESPONDER, action_id="abort_run")
    await asyncio.sleep(0.2)
    replica.signal(signal.SIGTERM)
    code = await replica.wait()

    assert code == 0
    assert northflank.aborts() == 1
    assert [m for m in slack.messages if m.source == "chat.postMessage"]
    log = replica.log()
    assert "server.stopping" in log
    assert "follow.released" in log
    assert "server.stopped" in log

    async def other_follows() -> bool:
        return (await replicas[1].health())["following"] == 1

    await wait_until(other_follows)
