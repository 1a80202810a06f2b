"""Northflank and Slack faults, injected through the local stand-ins."""

from __future__ import annotations

import pytest

from bot.sandbox.harness import Harness
from tests.conftest import (
    CHANNEL,
    RESPONDER,
    TEMPLATE,
    VIEWER,
    ephemeral_for,
    post_run_list,
    summaries,
)

FAST_DEADLINE = {"BOT_NORTHFLANK_DEADLINE": "2", "BOT_NORTHFLANK_TIMEOUT": "0.5"}


async def test_ack_does_not_wait_for_northflank(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    bot.northflank.inject("GET", "/runs/", status=200, delay=3.0)

    reply = await bot.slack.command(
        f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL
    )

    assert reply.status == 200
    assert ephemeral_for(bot.slack, VIEWER) == []
    await bot.settle()
    [card] = ephemeral_for(bot.slack, VIEWER)
    assert run_id in card.all_text()


async def test_abort_retried_after_503(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    bot.northflank.inject("POST", "/abort$", status=503, times=2)

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    assert bot.northflank.aborts() == 3
    [summary] = summaries(bot.slack)
    assert "aborted" in summary.all_text()


@pytest.mark.parametrize("bot_env", [FAST_DEADLINE])
async def test_abort_timeout_may_have_reached(
    bot: Harness, bot_env: dict[str, str]
) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    bot.northflank.inject("POST", "/abort$", status=200, delay=1.5, times=10)

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    [warning] = [
        m for m in ephemeral_for(bot.slack, RESPONDER) if "abort" in m.all_text()
    ]
    assert "may have reached Northflank" in warning.all_text()
    [summary] = summaries(bot.slack)
    assert ":grey_question: unknown" in summary.all_text()
    assert "refresh_run" in [b["action_id"] for b in summary.buttons()]
    assert run_id in summary.all_text()


@pytest.mark.parametrize("bot_env", [FAST_DEADLINE])
async def test_unreachable_abort_did_not_reach(
    bot: Harness, bot_env: dict[str, str]
) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    await bot.northflank.stop()

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    [warning] = [
        m for m in ephemeral_for(bot.slack, RESPONDER) if "abort" in m.all_text()
    ]
    assert "did not reach Northflank" in warning.all_text()
    [summary] = summaries(bot.slack)
    assert ":grey_question: unknown" in summary.all_text()


async def test_abort_rate_limited_says_when(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    bot.northflank.inject(
        "POST", "/abort$", status=429, times=5, headers={"x-ratelimit-reset": "300"}
    )

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    assert bot.northflank.aborts() == 1
    [warning] = [
        m for m in ephemeral_for(bot.slack, RESPONDER) if "abort" in m.all_text()
    ]
    assert "did not reach Northflank" in warning.all_text()
    assert "try again in about 5 minutes" in warning.all_text()


async def test_abort_retried_after_short_429(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    bot.northflank.inject("POST", "/abort$", status=429, headers={"retry-after": "1"})

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    assert bot.northflank.aborts() == 2
    assert "aborted" in summaries(bot.slack)[0].all_text()


@pytest.mark.parametrize("bot_env", [{**FAST_DEADLINE, "BOT_CACHE_FRESHNESS": "0"}])
async def test_failed_read_uses_cache_with_age(
    bot: Harness, bot_env: dict[str, str]
) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()
    bot.northflank.inject("GET", "/runs/", status=502, times=20)

    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    first, second = ephemeral_for(bot.slack, VIEWER)
    assert "running" in second.all_text()
    assert "Showing the state cached" in second.all_text()
    assert " s ago" in second.all_text()


async def test_read_without_cache_reports_error(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    bot.northflank.inject("GET", "/runs/", status=500, times=1)

    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, VIEWER)
    assert "internal error (HTTP 500)" in answer.all_text()


async def test_low_budget_postpones_reads(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    bot.northflank.remaining = 40
    listing = await post_run_list(bot)
    requests_after_list = len(bot.northflank.requests)

    await bot.slack.command(f"runs {TEMPLATE}", user=RESPONDER, channel=CHANNEL)
    await bot.settle()
    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    # The follower keeps waiting for the budget, so wait for the summary only.
    await bot.slack.wait_for(lambda m: m.source == "chat.postMessage")

    reads = [
        r for r in bot.northflank.requests[requests_after_list:] if r.method == "GET"
    ]
    assert reads == []
    assert bot.northflank.aborts() == 1
    assert any(
        "saving Northflank's shared request budget" in m.all_text()
        for m in ephemeral_for(bot.slack, RESPONDER)
    )
    budget = await bot.services.store.get_budget()
    assert budget is not None
    assert budget.remaining < 50
    assert run_id in summaries(bot.slack)[0].all_text()


async def test_not_in_channel_tells_admin(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    bot.slack.channels_without_bot.add(CHANNEL)

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    assert bot.northflank.aborts() == 1
    hints = [m for m in bot.slack.messages if "Invite the bot" in m.all_text()]
    assert len(hints) == 1
    assert hints[0].ephemeral
    [posted] = [
        m
        for m in bot.slack.messages
        if m.source == "response_url" and "Template run" in m.all_text()
    ]
    assert not posted.ephemeral
    assert "Press Refresh to see when the run has stopped" in posted.all_text()
    assert bot.services.follower.following == []


async def test_channel_not_found_tells_admin(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    bot.slack.fail("chat.postMessage", "channel_not_found")

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    assert any("cannot see this channel" in m.all_text() for m in bot.slack.messages)


async def test_slack_ratelimited_is_retried(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    bot.slack.fail("chat.postMessage", "ratelimited", retry_after=1)

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    assert len(bot.slack.calls_to("chat.postMessage")) == 2
    assert len(summaries(bot.slack)) == 1


async def test_response_url_limit_falls_back(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()
    [card] = ephemeral_for(bot.slack, VIEWER)
    payload = bot.slack.click_payload(card, user=VIEWER, action_id="refresh_run")

    for _ in range(7):
        import json
        from urllib.parse import urlencode

        await bot.slack.send(urlencode({"payload": json.dumps(payload)}).encode())
        await bot.settle()

    response_url_posts = [
        b for b in bot.slack.response_posts if b.get("replace_original")
    ]
    assert len(response_url_posts) == 5
    assert len(bot.slack.calls_to("chat.postEphemeral")) == 2


async def test_echoed_token_never_reaches_slack(bot: Harness) -> None:
    token = bot.northflank.token
    envelope = {"error": {"status": 403, "message": f"token {token} <!channel> denied"}}
    bot.northflank.inject("GET", r"/runs$", status=403, body=envelope)

    await bot.slack.command(f"runs {TEMPLATE}", user=RESPONDER, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, RESPONDER)
    assert token not in answer.raw_text()
    assert "[redacted]" in answer.all_text()
    assert "<!channel>" not in answer.raw_text()


async def test_other_run_in_response_is_rejected(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    other = bot.northflank.add_run("db-migration", status="running")
    bot.northflank.runs[(TEMPLATE, run_id)] = bot.northflank.runs[
        ("db-migration", other)
    ]

    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, VIEWER)
    assert "could not read" in answer.all_text()
    assert other not in answer.all_text()
