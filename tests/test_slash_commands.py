"""Slash command scenarios through the real server, Bolt app and stand-ins."""

from __future__ import annotations

import pytest

from bot.sandbox.harness import Harness
from tests.conftest import (
    CHANNEL,
    ONCALL,
    OTHER_CHANNEL,
    RESPONDER,
    SCOPED,
    STRANGER,
    TEMPLATE,
    VIEWER,
    channel_posts,
    ephemeral_for,
    shown,
)

RUN_URL = "https://app.northflank.com/t/acme/templates/{template}/runs/{run}"


async def test_help_answers_in_the_ack(bot: Harness) -> None:
    reply = await bot.slack.command("help", user=STRANGER, channel=CHANNEL)

    assert reply.status == 200
    assert reply.body is not None
    assert reply.body["response_type"] == "ephemeral"
    text = shown(reply.body["blocks"])
    for subcommand in (
        "help",
        "whoami",
        "runs <templateId>",
        "status <templateId> <runId>",
        "abort <templateId> <runId>",
    ):
        assert f"/nf {subcommand}" in text
    assert bot.northflank.requests == []


async def test_empty_text_shows_help(bot: Harness) -> None:
    reply = await bot.slack.command("", user=STRANGER, channel=CHANNEL)

    assert reply.body is not None
    assert "/nf runs <templateId>" in shown(reply.body["blocks"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate", "Unknown subcommand"),
        ("runs", "needs a template id"),
        ("status nightly-backup", "needs a template id and a run id"),
        ("abort ../etc 3dd592f6-ce63-45ee-acf8-13dc5ec5235c", "is not a template id"),
        (
            "abort nightly-backup 3dd592f6-ce63-45ee-acf8-13dc5ec5235c/../x",
            "is not a run id",
        ),
        ("status nightly-backup %2F..%2F", "is not a run id"),
        ("whoami please", "takes no arguments"),
    ],
)
async def test_bad_input_gets_usage(bot: Harness, text: str, expected: str) -> None:
    reply = await bot.slack.command(text, user=RESPONDER, channel=CHANNEL)

    assert reply.status == 200
    assert reply.body is not None
    assert reply.body["response_type"] == "ephemeral"
    text = shown(reply.body["blocks"])
    assert expected in text
    assert "Usage: `/nf " in text
    await bot.settle()
    assert bot.northflank.requests == []


async def test_whoami_lists_roles(bot: Harness) -> None:
    await bot.slack.command("whoami", user=RESPONDER, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, RESPONDER)
    assert "responder" in answer.all_text()
    assert "Account > Templates > Runs > Abort" in answer.all_text()


async def test_whoami_includes_usergroup_roles(bot: Harness) -> None:
    await bot.slack.command("whoami", user=ONCALL, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, ONCALL)
    assert "responder" in answer.all_text()
    assert "S01ONCALL" in answer.all_text()


async def test_whoami_without_roles(bot: Harness) -> None:
    await bot.slack.command("whoami", user=STRANGER, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, STRANGER)
    assert "no roles" in answer.all_text()


async def test_runs_posts_active_runs_with_abort_buttons(bot: Harness) -> None:
    running = bot.northflank.add_run(TEMPLATE, status="running")
    queued = bot.northflank.add_run(TEMPLATE, status="queued")
    bot.northflank.add_run(TEMPLATE, status="success")

    await bot.slack.command(f"runs {TEMPLATE}", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    [posted] = channel_posts(bot.slack)
    buttons = posted.buttons()
    assert [b["action_id"] for b in buttons] == ["abort_run", "abort_run"]
    assert all(b["style"] == "danger" for b in buttons)
    assert running in buttons[0]["value"]
    assert queued in buttons[1]["value"]
    confirm = buttons[0]["confirm"]
    assert running in confirm["text"]["text"]
    assert "Nightly Backup" in confirm["text"]["text"]
    assert TEMPLATE in confirm["text"]["text"]
    [listing] = [r for r in bot.northflank.requests if r.method == "GET"]
    assert listing.path == f"/v1/templates/{TEMPLATE}/runs"
    assert listing.query["concluded"] == "false"


async def test_runs_without_active_runs(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="aborted")

    await bot.slack.command(f"runs {TEMPLATE}", user=RESPONDER, channel=CHANNEL)
    await bot.settle()

    [posted] = channel_posts(bot.slack)
    assert "No active runs" in posted.all_text()
    assert posted.buttons() == []


async def test_runs_denied_without_read(bot: Harness) -> None:
    await bot.slack.command(f"runs {TEMPLATE}", user=STRANGER, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, STRANGER)
    assert "Account > Templates > General > Read" in answer.all_text()
    assert channel_posts(bot.slack) == []
    assert bot.northflank.requests == []


async def test_runs_of_missing_template(bot: Harness) -> None:
    await bot.slack.command("runs no-such-template", user=RESPONDER, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, RESPONDER)
    assert "no such template or run" in answer.all_text()
    assert "Template no-such-template not found" in answer.all_text()


async def test_status_is_ephemeral_with_refresh(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")

    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    [card] = ephemeral_for(bot.slack, VIEWER)
    assert run_id in card.all_text()
    assert ":arrow_forward: running" in card.all_text()
    assert [b["action_id"] for b in card.buttons()] == ["refresh_run"]


async def test_status_within_freshness_is_cached(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")

    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()
    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    assert len(ephemeral_for(bot.slack, VIEWER)) == 2
    assert bot.northflank.count("GET", f"/runs/{run_id}") == 1


async def test_status_of_missing_run_is_404(bot: Harness) -> None:
    run_id = "3dd592f6-ce63-45ee-acf8-13dc5ec5235c"

    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, VIEWER)
    assert "no such template or run" in answer.all_text()


async def test_status_shows_unknown_status_as_is(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="hibernating")

    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    [card] = ephemeral_for(bot.slack, VIEWER)
    assert ":grey_question: hibernating" in card.all_text()
    assert "status the bot does not know" in card.all_text()


async def test_abort_command_shows_confirmation(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")

    await bot.slack.command(
        f"abort {TEMPLATE} {run_id}", user=RESPONDER, channel=CHANNEL
    )
    await bot.settle()

    [card] = ephemeral_for(bot.slack, RESPONDER)
    assert [b["action_id"] for b in card.buttons()] == ["abort_run", "refresh_run"]
    assert "running" in card.all_text()
    assert bot.northflank.aborts() == 0


@pytest.mark.parametrize(
    ("status", "word"),
    [
        ("aborted", "already aborted"),
        ("success", "already succeeded"),
        ("failure", "already failed"),
    ],
)
async def test_abort_of_concluded_run(bot: Harness, status: str, word: str) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status=status)

    await bot.slack.command(
        f"abort {TEMPLATE} {run_id}", user=RESPONDER, channel=CHANNEL
    )
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, RESPONDER)
    assert word in answer.all_text()
    assert answer.buttons() == []
    assert bot.northflank.aborts() == 0


async def test_abort_denied_for_viewer(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")

    await bot.slack.command(f"abort {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, VIEWER)
    assert "Account > Templates > Runs > Abort" in answer.all_text()
    assert bot.northflank.requests == []


async def test_scoped_role_denied_other_template(bot: Harness) -> None:
    run_id = bot.northflank.add_run("db-migration", status="running")

    await bot.slack.command(
        f"status db-migration {run_id}", user=SCOPED, channel=CHANNEL
    )
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, SCOPED)
    assert "on template `db-migration`" in answer.all_text()
    assert bot.northflank.requests == []


async def test_scoped_role_denied_other_channel(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")

    await bot.slack.command(
        f"status {TEMPLATE} {run_id}", user=SCOPED, channel=OTHER_CHANNEL
    )
    await bot.settle()

    [answer] = [m for m in bot.slack.messages if m.user == SCOPED]
    assert "in this channel" in answer.all_text()
    assert bot.northflank.requests == []


async def test_scoped_role_allowed_in_scope(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")

    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=SCOPED, channel=CHANNEL)
    await bot.settle()

    [card] = ephemeral_for(bot.slack, SCOPED)
    assert run_id in card.all_text()


async def test_usergroup_member_may_abort(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")

    await bot.slack.command(f"abort {TEMPLATE} {run_id}", user=ONCALL, channel=CHANNEL)
    await bot.settle()

    [card] = ephemeral_for(bot.slack, ONCALL)
    assert "abort_run" in [b["action_id"] for b in card.buttons()]
    assert len(bot.slack.calls_to("usergroups.users.list")) == 1


async def test_usergroup_members_are_cached(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")

    for _ in range(3):
        await bot.slack.command(
            f"status {TEMPLATE} {run_id}", user=ONCALL, channel=CHANNEL
        )
        await bot.settle()

    assert len(ephemeral_for(bot.slack, ONCALL)) == 3
    assert len(bot.slack.calls_to("usergroups.users.list")) == 1


async def test_pasted_run_url_is_understood(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    url = RUN_URL.format(template=TEMPLATE, run=run_id)

    await bot.slack.command(f"status <{url}>", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    [card] = ephemeral_for(bot.slack, VIEWER)
    assert run_id in card.all_text()


@pytest.mark.parametrize("bot_env", [{"NORTHFLANK_TEAM_ID": "acme"}])
async def test_team_routes_when_team_set(bot: Harness, bot_env: dict[str, str]) -> None:
    bot.northflank.team_id = "acme"
    run_id = bot.northflank.add_run(TEMPLATE, status="running")

    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    [request] = bot.northflank.requests
    assert request.path == f"/v1/teams/acme/templates/{TEMPLATE}/runs/{run_id}"
    [card] = ephemeral_for(bot.slack, VIEWER)
    assert run_id in card.all_text()
