"""Button scenarios: Abort, Refresh, and their permission checks per click."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.sandbox.harness import Harness
from tests.conftest import (
    CHANNEL,
    ONCALL,
    RESPONDER,
    SCOPED,
    STRANGER,
    TEMPLATE,
    VIEWER,
    ephemeral_for,
    post_run_list,
    summaries,
)


async def test_abort_click_aborts_and_posts_summary(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)

    reply = await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    assert reply.status == 200
    assert bot.northflank.aborts() == 1
    [summary] = summaries(bot.slack)
    text = summary.all_text()
    assert "Nightly Backup" in text
    assert TEMPLATE in text
    assert run_id in text
    assert f"<@{RESPONDER}>" in text
    assert "<!date^" in text
    assert "refresh_run" in [b["action_id"] for b in summary.buttons()]


async def test_summary_follows_run_until_aborted(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    [summary] = summaries(bot.slack)
    first_text, _ = summary.history[0]
    assert "aborting" in first_text
    assert ":no_entry_sign: aborted" in summary.all_text()
    assert "Template run aborted" in summary.all_text()
    assert bot.slack.calls_to("chat.update")
    assert bot.services.follower.following == []


async def test_clicked_card_loses_abort_button(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    other = bot.northflank.add_run(TEMPLATE, status="queued")
    listing = await post_run_list(bot)

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run", index=0)
    await bot.settle()

    values = [b["value"] for b in listing.buttons()]
    assert len(values) == 1
    assert other in values[0]
    assert f"abort sent by <@{RESPONDER}>" in listing.all_text()
    assert run_id in listing.all_text()


async def test_abort_click_denied_for_viewer(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)

    await bot.slack.click(listing, user=VIEWER, action_id="abort_run")
    await bot.settle()

    [denial] = ephemeral_for(bot.slack, VIEWER)
    assert "Account > Templates > Runs > Abort" in denial.all_text()
    assert bot.northflank.aborts() == 0
    assert summaries(bot.slack) == []


async def test_poster_grants_nothing_to_clicker(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot, user=RESPONDER)

    await bot.slack.click(listing, user=STRANGER, action_id="abort_run")
    await bot.settle()

    [denial] = ephemeral_for(bot.slack, STRANGER)
    assert "You need the permission" in denial.all_text()
    assert bot.northflank.aborts() == 0


async def test_usergroup_member_click_aborts(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)

    await bot.slack.click(listing, user=ONCALL, action_id="abort_run")
    await bot.settle()

    assert bot.northflank.aborts() == 1
    [summary] = summaries(bot.slack)
    assert f"<@{ONCALL}>" in summary.all_text()


async def test_concurrent_clicks_make_one_post(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)

    clickers = [RESPONDER, ONCALL] * 5
    replies = await asyncio.gather(
        *(
            bot.slack.click(listing, user=user, action_id="abort_run")
            for user in clickers
        )
    )
    await bot.settle()

    assert all(r.status == 200 for r in replies)
    assert bot.northflank.aborts() == 1
    assert len(summaries(bot.slack)) == 1
    duplicates = [
        m
        for m in bot.slack.messages
        if m.ephemeral and "already aborting" in m.all_text()
    ]
    assert len(duplicates) == 9
    assert all("started by <@" in m.all_text() for m in duplicates)


async def test_edited_button_value_is_rejected(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    forged = json.dumps({"template_id": "../../v1/secrets", "run_id": "x"})

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run", value=forged)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, RESPONDER)
    assert "does not name a valid template and run" in answer.all_text()
    assert bot.northflank.aborts() == 0


async def test_button_naming_forbidden_template(bot: Harness) -> None:
    run_id = bot.northflank.add_run("db-migration", status="running")
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    edited = json.dumps({"template_id": "db-migration", "run_id": run_id})

    await bot.slack.click(listing, user=SCOPED, action_id="abort_run", value=edited)
    await bot.settle()

    [denial] = ephemeral_for(bot.slack, SCOPED)
    assert "on template `db-migration`" in denial.all_text()
    assert bot.northflank.aborts() == 0


async def test_confirmation_card_abort(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    await bot.slack.command(
        f"abort {TEMPLATE} {run_id}", user=RESPONDER, channel=CHANNEL
    )
    await bot.settle()
    [card] = ephemeral_for(bot.slack, RESPONDER)

    await bot.slack.click(card, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    assert bot.northflank.aborts() == 1
    assert "abort_run" not in [b["action_id"] for b in card.buttons()]
    assert "Abort sent" in card.all_text()
    assert len(summaries(bot.slack)) == 1


async def test_click_on_concluded_run_shows_state(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    bot.northflank.set_status(TEMPLATE, run_id, "success")

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, RESPONDER)
    assert "already succeeded" in answer.all_text()
    assert summaries(bot.slack) == []


async def test_refresh_updates_status_card(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()
    [card] = ephemeral_for(bot.slack, VIEWER)
    bot.northflank.set_status(TEMPLATE, run_id, "failure")
    await bot.services.store.client.delete(
        bot.services.store.run_key("run", TEMPLATE, run_id)
    )

    await bot.slack.click(card, user=VIEWER, action_id="refresh_run")
    await bot.settle()

    assert card.edits == 1
    assert ":x: failure" in card.all_text()


async def test_refresh_denied_without_read(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()
    [card] = ephemeral_for(bot.slack, VIEWER)
    requests_before = len(bot.northflank.requests)

    await bot.slack.click(card, user=STRANGER, action_id="refresh_run")
    await bot.settle()

    [denial] = ephemeral_for(bot.slack, STRANGER)
    assert "Account > Templates > General > Read" in denial.all_text()
    assert card.edits == 0
    assert len(bot.northflank.requests) == requests_before


@pytest.mark.parametrize(
    "bot_env",
    [
        {
            "BOT_RUN_URL_TEMPLATE": "https://app.northflank.com/t/acme/templates/{template_id}/runs/{run_id}"
        }
    ],
)
async def test_summary_links_to_northflank(
    bot: Harness, bot_env: dict[str, str]
) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    [summary] = summaries(bot.slack)
    links = [b["url"] for b in summary.buttons() if b.get("url")]
    assert links == [
        f"https://app.northflank.com/t/acme/templates/{TEMPLATE}/runs/{run_id}"
    ]


async def test_summary_escapes_template_text(bot: Harness) -> None:
    bot.northflank.add_template(
        "evil-template",
        "Evil Template",
        "<!channel> see <https://evil.example|docs> & more",
    )
    run_id = bot.northflank.add_run("evil-template", status="running")
    await bot.slack.command(
        f"abort evil-template {run_id}", user=RESPONDER, channel=CHANNEL
    )
    await bot.settle()
    [card] = ephemeral_for(bot.slack, RESPONDER)

    await bot.slack.click(card, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    [summary] = summaries(bot.slack)
    raw = summary.raw_text()
    assert "<!channel>" not in raw
    assert "<https://evil.example" not in raw
    assert "&lt;!channel&gt; see &lt;https://evil.example|docs&gt; &amp; more" in raw
