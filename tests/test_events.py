"""Events API: a mention gets the help, and a retried delivery runs once."""

from __future__ import annotations

import asyncio

from bot.sandbox.harness import Harness
from bot.sandbox.slack import event_body
from tests.conftest import CHANNEL, RESPONDER

JSON = {"Content-Type": "application/json"}


def mention(ts: str = "1700000000.000100") -> dict[str, object]:
    return {
        "type": "app_mention",
        "user": RESPONDER,
        "text": "<@U0BOTUSER> help",
        "ts": ts,
        "channel": CHANNEL,
        "event_ts": ts,
    }


async def test_mention_replies_in_thread(bot: Harness) -> None:
    reply = await bot.slack.send(event_body(mention(), event_id="Ev01"), headers=JSON)
    await bot.settle()

    assert reply.status == 200
    [call] = bot.slack.calls_to("chat.postMessage")
    assert call.args["thread_ts"] == "1700000000.000100"
    assert "runs" in str(call.args["blocks"])


async def test_retried_event_runs_once(bot: Harness) -> None:
    body = event_body(mention(), event_id="Ev02")

    first = await bot.slack.send(body, headers=JSON)
    retry = await bot.slack.send(
        body,
        headers={
            **JSON,
            "X-Slack-Retry-Num": "1",
            "X-Slack-Retry-Reason": "http_timeout",
        },
    )
    await bot.settle()

    assert first.status == 200
    assert retry.status == 200
    assert len(bot.slack.calls_to("chat.postMessage")) == 1


async def test_retry_header_alone_does_not_drop(bot: Harness) -> None:
    body = event_body(mention(), event_id="Ev03")

    reply = await bot.slack.send(body, headers={**JSON, "X-Slack-Retry-Num": "2"})
    await bot.settle()

    assert reply.status == 200
    assert len(bot.slack.calls_to("chat.postMessage")) == 1


async def test_distinct_events_both_run(bot: Harness) -> None:
    await asyncio.gather(
        bot.slack.send(event_body(mention("1.1"), event_id="Ev04"), headers=JSON),
        bot.slack.send(event_body(mention("1.2"), event_id="Ev05"), headers=JSON),
    )
    await bot.settle()

    assert len(bot.slack.calls_to("chat.postMessage")) == 2
