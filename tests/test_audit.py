"""The audit trail: one entry per abort attempt, and `/nf audit` to read it."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from bot.audit import AuditEntry
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
)


async def stream(bot: Harness) -> list[AuditEntry]:
    rows = await bot.services.store.read_audit(scan=1000)
    return [AuditEntry.from_fields(fields) for fields in reversed(rows)]


async def test_aborted_attempt_recorded(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    entries = await stream(bot)
    assert [e.outcome for e in entries] == ["requested", "aborted"]
    for entry in entries:
        assert entry.user_id == RESPONDER
        assert entry.channel_id == CHANNEL
        assert entry.template_id == TEMPLATE
        assert entry.run_id == run_id
        assert entry.at > 0


async def test_denied_attempt_recorded(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)

    await bot.slack.click(listing, user=VIEWER, action_id="abort_run")
    await bot.settle()

    [entry] = await stream(bot)
    assert entry.outcome == "denied"
    assert entry.user_id == VIEWER


async def test_denied_abort_command_recorded(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")

    await bot.slack.command(
        f"abort {TEMPLATE} {run_id}", user=STRANGER, channel=CHANNEL
    )
    await bot.settle()

    [entry] = await stream(bot)
    assert entry.outcome == "denied"
    assert entry.detail == "abort command"


async def test_failed_attempt_keeps_error_id(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    envelope = {"error": {"status": 403, "message": "role lacks it", "id": "nf-err-42"}}
    bot.northflank.inject("POST", "/abort$", status=403, body=envelope)

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    requested, failed = await stream(bot)
    assert requested.outcome == "requested"
    assert failed.outcome == "failed"
    assert failed.error_id == "nf-err-42"
    assert "NorthflankForbidden" in (failed.detail or "")


async def test_duplicate_click_recorded_as_skipped(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)

    await asyncio.gather(
        bot.slack.click(listing, user=RESPONDER, action_id="abort_run"),
        bot.slack.click(listing, user=ONCALL, action_id="abort_run"),
    )
    await bot.settle()

    outcomes = sorted(e.outcome for e in await stream(bot))
    assert outcomes == ["aborted", "requested", "requested", "skipped"]


async def test_audit_log_line_per_event(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    records = [r for r in caplog.records if r.name == "bot.audit"]
    assert [r.audit["outcome"] for r in records] == ["requested", "aborted"]  # type: ignore[attr-defined]
    assert all(r.levelno == logging.INFO for r in records)
    assert "outcome=aborted" in records[1].getMessage()


@pytest.mark.parametrize("bot_env", [{"BOT_AUDIT_MAXLEN": "10"}])
async def test_stream_capped_by_length(bot: Harness, bot_env: dict[str, str]) -> None:
    for index in range(25):
        await bot.services.audit.record(
            "denied",
            user_id=VIEWER,
            channel_id=CHANNEL,
            template_id=TEMPLATE,
            run_id=f"run-{index}",
        )

    entries = await stream(bot)
    assert len(entries) == 10
    assert entries[-1].run_id == "run-24"


async def test_audit_command_lists_entries(bot: Harness) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    listing = await post_run_list(bot)
    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    await bot.slack.command(f"audit {TEMPLATE}", user=VIEWER, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, VIEWER)
    text = answer.all_text()
    assert "Last 2 abort attempts" in text
    assert "*aborted*" in text
    assert "*requested*" in text
    assert text.index("*aborted*") < text.index("*requested*")
    assert f"<@{RESPONDER}>" in text


async def test_audit_without_template_filters_by_scope(bot: Harness) -> None:
    for template in (TEMPLATE, "db-migration"):
        await bot.services.audit.record(
            "denied",
            user_id=VIEWER,
            channel_id=CHANNEL,
            template_id=template,
            run_id="3dd592f6-ce63-45ee-acf8-13dc5ec5235c",
        )

    await bot.slack.command("audit", user=SCOPED, channel=CHANNEL)
    await bot.settle()

    [answer] = ephemeral_for(bot.slack, SCOPED)
    assert f"`{TEMPLATE}`" in answer.all_text()
    assert "db-migration" not in answer.all_text()


async def test_audit_denied_without_read(bot: Harness) -> None:
    await bot.services.audit.record(
        "aborted",
        user_id=RESPONDER,
        channel_id=CHANNEL,
        template_id=TEMPLATE,
        run_id="x",
    )

    await bot.slack.command(f"audit {TEMPLATE}", user=STRANGER, channel=CHANNEL)
    await bot.slack.command("audit", user=STRANGER, channel=CHANNEL)
    await bot.settle()

    answers = ephemeral_for(bot.slack, STRANGER)
    assert len(answers) == 2
    for answer in answers:
        assert "Account > Templates > General > Read" in answer.all_text()
        assert "aborted" not in json.dumps(answer.blocks)
